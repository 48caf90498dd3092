"""Data-parallel training under torchrun (cnnlab.distributed): the loader's sharding, the
equivalence of 2 processes with one, and what each process writes.

The torchrun tests start 2 CPU processes (gloo) on a small synthetic dataset: ~20 s together.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from cnnlab.data.augment import build_augment
from cnnlab.data.loader import BatchLoader
from cnnlab.recipes import AugmentConfig, RecipeError

# the worker every torchrun process runs: train a recipe on a fixed synthetic dataset, then
# report (rank 0) whether every process ended with the same weights and buffers (rank 0's model
# then holds the best epoch's weights, the others the last epoch's: runs of 1 epoch compare)
WORKER = textwrap.dedent('''
    import json, sys, torch, torch.distributed as dist
    from cnnlab.distributed import shutdown
    from cnnlab.runs import train

    recipe, run_dir, overrides, tests_dir = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
    sys.path.insert(0, tests_dir)
    from test_distributed import synthetic_dataset
    ds = synthetic_dataset()
    resume = overrides.pop("resume", False)  # continue run_dir instead of starting it
    run = train(None if resume else recipe, overrides, dataset=ds, run_dir=None if resume else run_dir,
                resume=run_dir if resume else None, device="cpu", progress=False)
    flat = torch.cat([t.detach().double().flatten() for t in run.model.state_dict().values()
                      if t.is_floating_point()])
    gathered = [torch.zeros_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    if dist.get_rank() == 0:
        print("RESULT " + json.dumps({"same_on_every_process":
                                      all(torch.equal(gathered[0], t) for t in gathered),
                                      "test": run.test_metrics.get("accuracy")}))
    shutdown()  # leave the process group before exiting (else gloo's threads may abort the exit)
''')


def torchrun(tmp_path: Path, recipe: str, overrides: dict, nproc: int = 2):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CNNLAB_LAUNCHER": "0"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           str(script), recipe, str(tmp_path / "run"), json.dumps(overrides), str(Path(__file__).parent)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    result = json.loads(next(l for l in p.stdout.splitlines() if l.startswith("RESULT "))[7:])
    return p.stdout, result


def synthetic_dataset():
    """256 training and 64 test images of random pixels, 28x28x1, 10 classes: the same in every
    process (the torchrun worker imports this)."""
    from cnnlab.data.core import ImageDataset
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (320, 1, 28, 28), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 10, (320,), generator=g)
    return ImageDataset("synthetic", x[:256], y[:256], x[256:], y[256:], [str(i) for i in range(10)],
                        (0.5,), (0.25,), {"source": "random"})


def single_process(tmp_path: Path, recipe: str, overrides: dict):
    from cnnlab.runs import train
    return train(recipe, overrides, dataset=synthetic_dataset(), run_dir=tmp_path / "single", device="cpu",
                 progress=False, log=lambda m: None)


# --- the loader's part of each batch ---------------------------------------------------------

def _loader(rank=0, world=1, shuffle=True, augment=None, n=40, batch=8):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 1, 6, 6), generator=g, dtype=torch.uint8)
    return BatchLoader(x, torch.arange(n), batch, mean=[0.5], std=[0.25], shuffle=shuffle,
                       seed=3, augment=augment, rank=rank, world_size=world)


@pytest.mark.parametrize("shuffle", [True, False])
def test_processes_split_every_batch_of_the_shared_permutation(shuffle):
    whole = [y for _, y in _loader(shuffle=shuffle)]
    parts = [[y for _, y in _loader(r, 2, shuffle)] for r in range(2)]
    assert len(parts[0]) == len(parts[1]) == len(whole) == 5
    for i, batch in enumerate(whole):
        assert torch.equal(torch.cat([parts[0][i], parts[1][i]]), batch)


def test_a_large_seed_seeds_every_process():
    # (seed * 1_000_003 + epoch) * 65_537 + rank passed torch's 64 bits for seeds from about 2.8e8
    x = torch.zeros(8, 1, 6, 6, dtype=torch.uint8)
    loader = BatchLoader(x, torch.arange(8), 4, mean=[0.5], std=[0.25], shuffle=True, seed=2 ** 32 - 1,
                         rank=1, world_size=2)
    assert sum(len(y) for _, y in loader) == 4


def test_last_incomplete_batch_is_dropped_on_every_process():
    parts = [[y for _, y in _loader(r, 2, n=43)] for r in range(2)]  # 5 batches of 8, 3 left over
    assert [len(p) for p in parts] == [5, 5] and all(len(y) == 4 for p in parts for y in p)


def test_each_process_draws_its_own_augmentation():
    aug = build_augment(AugmentConfig(rotation=20, zoom=0.2))
    x0 = next(iter(_loader(0, 2, shuffle=False, augment=aug, n=8)))[0]
    x1 = next(iter(_loader(1, 2, shuffle=False, augment=aug, n=8)))[0]
    # the same 4 images on both ranks would get different transforms: compare on equal inputs
    plain0 = next(iter(_loader(0, 2, shuffle=False, n=8)))[0]
    plain1 = next(iter(_loader(1, 2, shuffle=False, n=8)))[0]
    assert not torch.allclose(x0 - plain0, x1 - plain1)
    # rank 0 of a 1-process loader keeps the stream of a plain loader (results stay reproducible):
    # the augmentation drawn from the generator seeded with seed * 1_000_003 + epoch
    x = next(iter(_loader(augment=aug, shuffle=False, n=8, batch=4)))[0]
    pixels = _loader(n=8).images[:4].float()
    expected = aug(pixels, torch.Generator().manual_seed(3 * 1_000_003 + 0)) / 255
    assert torch.allclose(x, (expected - 0.5) / 0.25, atol=1e-5)


def test_loader_rejects_batches_that_do_not_split_and_bad_ranks():
    with pytest.raises(ValueError, match="batch_size 9 does not divide into 2"):
        _loader(0, 2, batch=9)
    with pytest.raises(ValueError, match="rank 2 outside 0..1"):
        _loader(2, 2)


def test_recipe_batch_must_divide_by_the_processes(monkeypatch, tmp_path):
    from cnnlab import runs
    monkeypatch.setattr(runs.distributed, "setup", lambda device: (0, 3))
    with pytest.raises(RecipeError, match="batch_size 128 is the global batch .* 3 processes.*"
                                          "--set batch_size=126"):
        single_process(tmp_path, "mnist-lenet5", {"epochs": 1})


def test_a_gpu_named_by_index_under_torchrun_is_refused(monkeypatch):
    """--device cuda:1 put every process on GPU 1 (setup took LOCAL_RANK only without an index)."""
    from cnnlab import distributed
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda *a, **k: pytest.fail("joined"))
    with pytest.raises(ValueError, match=r"'cuda:1' under torchrun: .* \(this one: cuda:0\); use --device cuda"):
        distributed.setup(torch.device("cuda:1"))


# --- torchrun: 2 processes -------------------------------------------------------------------

def test_two_processes_train_like_one(tmp_path):
    # lenet5 has no BatchNorm and no dropout and the run no augmentation: 2 processes with 8
    # examples each must take the same 12 steps as 1 process with the 16 (to float rounding)
    over = {"epochs": 1, "batch_size": 16, "precision": "fp32", "val_fraction": 0.25,
            "channels_last": False}
    out, result = torchrun(tmp_path, "mnist-lenet5", over)
    one = single_process(tmp_path, "mnist-lenet5", over)
    assert result["same_on_every_process"]
    assert out.count("training mnist-lenet5") == 1 and "2 processes (DDP)" in out  # rank 0 logs
    from safetensors.torch import load_file
    ddp_w = load_file(tmp_path / "run" / "last.safetensors")
    one_w = load_file(tmp_path / "single" / "last.safetensors")
    assert ddp_w.keys() == one_w.keys()
    for k in one_w:
        torch.testing.assert_close(ddp_w[k], one_w[k], atol=2e-5, rtol=1e-4)
    # validation, split across the processes and summed, equals the one-process figures
    ddp_hist = [l.split(",") for l in (tmp_path / "run" / "metrics.csv").read_text().splitlines()]
    one_hist = [l.split(",") for l in (tmp_path / "single" / "metrics.csv").read_text().splitlines()]
    cols = ddp_hist[0]
    for a, b in zip(ddp_hist[1:], one_hist[1:]):
        for c in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert float(a[cols.index(c)]) == pytest.approx(float(b[cols.index(c)]), abs=1e-4)
    meta = json.loads((tmp_path / "run" / "recipe.json").read_text())
    assert meta["resolved"]["processes"] == 2 and meta["dataset"]["validation"] == 64
    assert result["test"] == one.test_metrics["accuracy"]
    assert (tmp_path / "run" / "test_metrics.json").exists()


def test_two_processes_keep_batchnorm_and_data_dependent_init_in_step(tmp_path):
    # airbench94: BatchNorm statistics differ per process (synced before validation) and the
    # whitening stem is set from the first batch (its covariance averaged over the processes);
    # with augmentation, Lookahead, bf16 and channels_last on top, and the stem's bias frozen
    # (after DDP was built: it must be rebuilt), every process must still end with identical
    # weights and buffers
    over = {"epochs": 1, "batch_size": 32, "val_fraction": 0.25, "precision": "bf16",
            "channels_last": True, "augment": {"rotation": 10, "crop_padding": 2},
            "lookahead": {"start_epoch": 0}, "tta": "none",
            "freeze_after": {"features.whiten.bias": 0}}
    _, result = torchrun(tmp_path, "mnist-best", over)
    assert result["same_on_every_process"]


def test_reproduce_refuses_to_run_under_torchrun(monkeypatch, capsys):
    from cnnlab.cli import main
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["reproduce", "mnist-cnn-small"]) == 2
    assert "torchrun ... -m cnnlab.cli train RECIPE" in capsys.readouterr().err


def test_a_killed_torchrun_job_resumes_on_every_process(tmp_path):
    over = {"epochs": 1, "batch_size": 16, "val_fraction": 0.25}
    torchrun(tmp_path, "mnist-cnn-small", over)  # (mnist-cnn-small: dropout on every process)
    out, result = torchrun(tmp_path, "mnist-cnn-small", {"resume": True, "epochs": 2})
    assert "resuming" in out and "epoch 2/2" in out and "epoch 1/2" not in out
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3  # header + the 2 epochs
    meta = json.loads((tmp_path / "run" / "recipe.json").read_text())
    assert meta["resumed"][0]["after_epoch"] == 1 and meta["resolved"]["processes"] == 2


def test_a_resumed_torchrun_job_continues_every_process_dropout_stream(tmp_path):
    # each process's random state is saved, so the resumed epoch draws the same dropout masks on
    # every process as the run that was never stopped (rank 1's were derived from rank 0's before)
    over = {"epochs": 2, "batch_size": 16, "val_fraction": 0.25}
    straight, cut = tmp_path / "straight", tmp_path / "cut"
    straight.mkdir(), cut.mkdir()
    torchrun(straight, "mnist-cnn-small", over)
    torchrun(cut, "mnist-cnn-small", {**over, "epochs": 1})
    torchrun(cut, "mnist-cnn-small", {"resume": True, "epochs": 2})

    def epochs(d):  # the per-epoch figures without the wall times
        head, *rows = (d / "run" / "metrics.csv").read_text().splitlines()
        keep = [i for i, k in enumerate(head.split(",")) if "time" not in k]
        return [[r.split(",")[i] for i in keep] for r in rows]
    assert epochs(cut) == epochs(straight)


@pytest.mark.realdata
def test_cnnlab_train_under_torchrun_on_real_mnist(tmp_path):
    # the user's command: 2 processes, the real MNIST files, one epoch of LeNet-5
    from conftest import real_data
    data = real_data("mnist")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CNNLAB_LAUNCHER": "0"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "cnnlab.cli", "train", "mnist-lenet5", "--epochs", "1", "--data-dir",
           str(data.parent), "--run-dir", str(tmp_path / "run")]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert p.stdout.count("training mnist-lenet5") == 1 and "2 processes (DDP)" in p.stdout
    test = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert test["total"] == 10_000 and test["accuracy"] > 0.95
    assert json.loads((tmp_path / "run" / "recipe.json").read_text())["dataset"]["validation"] == 12_000


def test_resume_on_more_gpu_processes_gives_each_its_own_cuda_stream(monkeypatch, tmp_path):
    # a state of 1 process on a GPU resumed by rank 1 of 2: its dropout (which draws from the CUDA
    # generator there) must be derived afresh, not rank 0's saved stream (every rank drew the same masks)
    from cnnlab import runs
    from cnnlab.runs import _restore_state, _training_state, prepare
    s = prepare(runs.get_recipe("mnist-lenet5", {"epochs": 1}), synthetic_dataset(), "cpu", log=lambda m: None,
                progress=False)
    state = _training_state(s, 0, 1.0, {"torch_rngs": [torch.get_rng_state()],
                                        "cuda_rngs": [torch.full((16,), 7, dtype=torch.uint8)]})
    cuda_calls = []
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda st, device=None: cuda_calls.append(("set", st)))
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: cuda_calls.append(("seed", seed)))
    monkeypatch.setattr(runs.distributed, "rank", lambda: 1)
    monkeypatch.setattr(runs.distributed, "world_size", lambda: 2)
    s.device = torch.device("cuda")
    _restore_state(s, state, lambda m: None)
    assert cuda_calls and cuda_calls[-1][0] == "seed", cuda_calls  # rank 1's own, after rank 0's was set
