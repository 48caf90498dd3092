"""Run the three seed MNIST recipes in full and record test top-1 and wall time.

    python benchmarks/mnist_recipes.py [--seeds 0 1] [--data-dir ../shared/data]

Appends to benchmarks/results/<recipe>.json and rewrites benchmarks/RESULTS.md (machine, versions
and date included) through ``cnnlab reproduce``.
"""
import argparse
from pathlib import Path

from cnnlab.launch import relaunch_script
from cnnlab.reproduce import reproduce

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--data-dir", default=str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--recipes", nargs="+", default=["mnist-cnn-small", "mnist-cnn-wide", "mnist-lenet5"])
    a = ap.parse_args()
    relaunch_script()  # same launch settings (tcmalloc, threads) as the cnnlab command
    for name in a.recipes:
        print(reproduce(name, seeds=a.seeds, data_dir=a.data_dir, out_dir=HERE))
