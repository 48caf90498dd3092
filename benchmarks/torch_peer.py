"""Plain-PyTorch peer for benchmarks/speed.py: the seed notebooks' training loop as a JSON server.

Runs in a process of its own *without* cnnlab's launch settings (no tcmalloc preload), as a
notebook would. Same protocol as keras_peer.py: ``{"cmd": "build", "model", "batch"}``, then
``{"cmd": "run", "steps"}`` -> ``{"img_s"}``. The loop itself is ``cnnlab.bench.PlainTorchRunner``.
"""
import json
import sys

import torch

from cnnlab.bench import PlainTorchRunner
from cnnlab.models import MODELS


def main():
    runner = None
    for line in sys.stdin:
        req = json.loads(line)
        if req["cmd"] == "build":
            shape = MODELS.get(req["model"]).info.input_size
            runner = PlainTorchRunner(req["model"], req["batch"], shape, req.get("steps", 20))
            reply = {"ok": True, "torch": torch.__version__, "threads": torch.get_num_threads()}
        else:
            reply = {"img_s": runner.run()}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
