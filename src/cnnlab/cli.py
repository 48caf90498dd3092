"""The ``cnnlab`` command line: one sub-command per task (train, lr-find, evaluate, explain,
predict, export, compare, summary, show, list, reproduce, bench, data). ``cnnlab COMMAND --help``
gives each one's options; the README's Commands section shows them together. Under torchrun,
``torchrun --nproc_per_node=N -m cnnlab.cli train RECIPE ...`` trains with DDP
(:mod:`cnnlab.distributed`).

Errors a user can fix (unknown names, bad overrides, missing or corrupt data) are printed as one
clear message and exit code 2, not as a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path


def _at_least(n: int):
    """An argparse type: an integer >= ``n`` (argparse names the option in its error)."""
    def parse(text: str) -> int:
        value = int(text)
        if value < n:
            raise argparse.ArgumentTypeError(f"must be at least {n}, got {value}")
        return value
    parse.__name__ = f"integer >= {n}"  # argparse's "invalid <name> value" for what is not a number
    return parse


def _add_common(p: argparse.ArgumentParser, device: bool = True) -> None:
    p.add_argument("--data-dir", default=None,
                   help="folder with the dataset files, or with one sub-folder per dataset "
                        "(default: $CNNLAB_DATA, then the cache; downloads when missing and online)")
    if device:  # not for the data commands, which compute nothing on a device
        p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: a GPU if any)")


def _add_overrides(p: argparse.ArgumentParser, help_: str) -> None:
    p.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   dest="overrides", help=help_)


def _add_weights(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", choices=("best", "last"), default="best",
                   help="the checkpoint: the best epoch's by the recipe's monitor (on the "
                        "validation split; the training split's without one) or the last epoch's")


def build_parser() -> argparse.ArgumentParser:
    """The ``cnnlab`` argument parser, one sub-command per ``cmd_*`` function (each returns the exit
    code; :func:`main` turns the errors a user can fix into a message and exit code 2)."""
    ap = argparse.ArgumentParser(prog="cnnlab", description="Train, evaluate and explain image classifiers.",
                                 epilog="cnnlab --no-launcher COMMAND ... (or CNNLAB_LAUNCHER=0): run without "
                                        "the launch settings (tcmalloc preloaded, OpenMP threads) the "
                                        "command applies where available")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a recipe and evaluate it on the test split",
                       epilog="On several GPUs or machines: torchrun --nproc_per_node=N -m "
                              "cnnlab.cli train RECIPE ... (DDP; the recipe's batch_size is the "
                              "global batch)")
    p.add_argument("recipe", nargs="?", help="recipe name (cnnlab list recipes), or a recipe file "
                   "(.toml or .json, e.g. a run folder's recipe.json)")
    _add_overrides(p, "override recipe fields, e.g. --set epochs=3 lr=1e-3 "
                      "early_stopping.patience=2 (repeated --set options add up)")
    p.add_argument("--run-dir", default=None,
                   help="run folder, new or without a run in it (default runs/<recipe>-<time>)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue an interrupted run from its last finished epoch")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=None,
                   help="shorthand for --set precision=...")
    p.add_argument("--epochs", type=int, default=None, help="shorthand for --set epochs=N")
    _add_common(p)

    p = sub.add_parser("lr-find", help="learning-rate range test: the loss as the learning rate "
                       "grows, and a suggested rate (fastai's lr_find)")
    p.add_argument("recipe", help="recipe name (cnnlab list recipes) or recipe file (.toml, .json)")
    _add_overrides(p, "override recipe fields, as for train")
    p.add_argument("--steps", type=int, default=100, help="training steps of the test (default 100)")
    p.add_argument("--start-lr", type=float, default=1e-7, help="the first rate (default 1e-7)")
    p.add_argument("--end-lr", type=float, default=10.0, help="the last rate (default 10)")
    p.add_argument("--out", default=None, help="the plot (default runs/<recipe>-lr_find.png)")
    _add_common(p)

    p = sub.add_parser("evaluate", help="re-evaluate a run's checkpoint on the test split")
    p.add_argument("run_dir", help="a run folder (cnnlab train wrote it)")
    _add_weights(p)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=None,
                   help="default: the run's")
    p.add_argument("--tta", choices=("none", "flip", "flip-shift"), default=None,
                   help="test-time augmentation (default: the run's recipe's)")
    p.add_argument("--folder", default=None, metavar="DIR", help="evaluate on your own labelled "
                   "images instead: DIR/CLASS/*.jpg|png, classes named as the run's")
    _add_common(p)

    p = sub.add_parser("explain", help="Grad-CAM heatmaps, first-layer filters and feature maps "
                       "of a run's model (PNGs in the run folder)")
    p.add_argument("run_dir", help="a run folder (cnnlab train wrote it)")
    p.add_argument("--images", type=int, default=8, help="how many test images to explain (default 8, at most 64)")
    p.add_argument("--select", choices=("random", "worst", "best"), default="random",
                   help="which: a seeded random sample, the most confident wrong predictions, or "
                        "the most confident correct ones")
    p.add_argument("--layer", default=None, help="Grad-CAM layer, a dotted name as `cnnlab summary` "
                   "prints it (default: the last activated map of at least 4x4)")
    _add_weights(p)
    p.add_argument("--seed", type=int, default=0, help="which test images are drawn")
    p.add_argument("--out", default=None, help="folder for the PNGs (default: the run folder)")
    _add_common(p)

    p = sub.add_parser("predict", help="classify image files with a run's model (top classes and "
                       "probabilities)")
    p.add_argument("run_dir", help="a run folder (cnnlab train wrote it)")
    p.add_argument("images", nargs="+", help="image files (JPEG, PNG, ...) or folders of them, "
                   "prepared as the run's data was: its channels, input size and normalisation")
    p.add_argument("--top-k", type=int, default=3, help="classes shown per image (default 3)")
    _add_weights(p)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=None,
                   help="default: the run's, as cnnlab evaluate")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: a GPU if any)")

    p = sub.add_parser("export", help="write a run's model, with its normalisation, as an ONNX file "
                       "(needs the onnx extra)")
    p.add_argument("run_dir", help="a run folder (cnnlab train wrote it)")
    p.add_argument("--out", default=None, help="the .onnx file, or a folder to write model.onnx in "
                   "(default: RUN_DIR/model.onnx)")
    _add_weights(p)

    p = sub.add_parser("compare", help="several runs side by side: a table of their figures and "
                       "one plot of their validation curves")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", default=None, help="the plot (default runs/compare.png)")

    p = sub.add_parser("summary", help="Keras-style table of a model's layers and parameters")
    p.add_argument("model")
    p.add_argument("--input-size", nargs="+", type=int, default=None, metavar="N",
                   help="C H W (or H W keeping the model's channels)")
    p.add_argument("--num-classes", type=_at_least(1), default=None)

    p = sub.add_parser("show", help="a recipe's settings as JSON: save and edit it as a recipe "
                       "file of your own")
    p.add_argument("recipe", help="recipe name (cnnlab list recipes) or recipe file")
    _add_overrides(p, "override recipe fields, as for train")
    p.add_argument("--full", action="store_true", help="every field, the defaults too (default: "
                   "the fields the recipe sets)")

    p = sub.add_parser("list", help="list registered models, datasets or recipes")
    p.add_argument("what", nargs="?", default=None, metavar="{models,datasets,recipes}",
                   help="what to list (default: all three); a pattern in its place searches all three")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. 'vgg*'")

    p = sub.add_parser("reproduce", help="run recipes in full over several seeds; update the results table")
    p.add_argument("pattern", nargs="?", default="*", help="recipe name pattern, e.g. 'mnist-*'")
    p.add_argument("--kind", choices=("faithful", "fast", "best", "transfer"), default=None)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--out-dir", default="benchmarks", help="where results/ and RESULTS.md go "
                   "(default: benchmarks, in the current folder)")
    p.add_argument("--keep-runs", default=None, help="keep each run folder under this folder")
    p.add_argument("--resume", action="store_true",
                   help="continue the unfinished runs kept in --keep-runs from their last finished "
                        "epoch (a long recipe in pieces); seeds without one start afresh")
    p.add_argument("--retest", default=None, metavar="KEPT_RUNS",
                   help="train nothing: re-evaluate the runs kept in this folder under the recipes' "
                        "current test-time augmentation and update their records")
    _add_overrides(p, "override recipe fields (repeated --set options add up); "
                      "such runs are listed apart from the plain recipes")
    _add_common(p)

    p = sub.add_parser("bench", help="training images/s of cnnlab vs a plain PyTorch loop on this machine")
    p.add_argument("models", nargs="*", help="model names (default: the four seed speed models)")
    p.add_argument("--rounds", type=_at_least(1), default=3,
                   help="timed samples of each runner, interleaved (default: 3)")
    p.add_argument("--steps", type=_at_least(1), default=20,
                   help="training steps per timed sample (default: 20)")

    p = sub.add_parser("data", help="inspect and verify datasets")
    dsub = p.add_subparsers(dest="data_command", required=True)
    dsub.add_parser("list", help="registered datasets")
    for name, help_ in (("info", "counts per class and split, shape, mean/std, source"),
                        ("verify", "check the files' checksums")):
        q = dsub.add_parser(name, help=help_)
        q.add_argument("name")
        _add_common(q, device=False)
    q = dsub.add_parser("plot", help="class-distribution bar and pie charts (PNG)")
    q.add_argument("name")
    q.add_argument("out", help="output PNG path")
    _add_common(q, device=False)
    for q in (dsub.choices["info"], dsub.choices["plot"]):
        _add_overrides(q, "the dataset's options, as a recipe's dataset_kwargs, e.g. --set size=64 "
                          "test_dir=val for image-folder")
    return ap


def cmd_train(a) -> int:
    """``cnnlab train``: train a recipe (or resume a run), print the test line; exit code 0."""
    from .runs import train
    overrides = list(a.overrides)
    if a.precision:
        overrides.append(f"precision={a.precision}")
    if a.epochs is not None:  # --epochs 0 is the recipe check's to refuse, not to ignore
        overrides.append(f"epochs={a.epochs}")
    if not a.recipe and not a.resume:
        raise UsageError("give a RECIPE to train (cnnlab list recipes) or --resume RUN_DIR")
    from .distributed import shutdown
    try:
        train(a.recipe, overrides, data_dir=a.data_dir, run_dir=a.run_dir, device=a.device, resume=a.resume)
    except BaseException:
        shutdown(wait=False)  # leave torchrun's process group, where this process had joined one
        raise
    shutdown()
    return 0


def cmd_lr_find(a) -> int:
    """``cnnlab lr-find``: the learning-rate range test on a recipe (:func:`cnnlab.runs.find_lr`);
    prints the suggestion and writes the plot."""
    from . import distributed
    from .recipes.files import is_recipe_file
    from .runs import find_lr
    if distributed.launched():
        raise UsageError("lr-find runs in one process: start it without torchrun (its curve is "
                         "the same for the recipe's global batch)")
    name = Path(a.recipe).stem if is_recipe_file(a.recipe) else a.recipe
    out = Path(a.out) if a.out else Path("runs") / f"{name}-lr_find.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    find_lr(a.recipe, a.overrides, data_dir=a.data_dir, device=a.device, steps=a.steps,
            start_lr=a.start_lr, end_lr=a.end_lr, plot=out)
    return 0


def cmd_evaluate(a) -> int:
    """``cnnlab evaluate``: re-evaluate a run's checkpoint on the test split and print it."""
    from .runs import evaluate_run, format_test_line
    if a.folder:
        from .inference import evaluate_folder
        if a.tta is not None:
            raise UsageError("--tta applies to the test split; --folder uses the run's own")
        m = evaluate_folder(a.run_dir, a.folder, weights=a.weights, device=a.device, precision=a.precision)
        print(format_test_line(m).replace("Test set:", f"{a.folder}:", 1))
    else:
        m = evaluate_run(a.run_dir, a.weights, data_dir=a.data_dir, device=a.device,
                         precision=a.precision, tta=a.tta)
        print(format_test_line(m))
    if "top5_accuracy" in m:
        print(f"top-5 accuracy: {100 * m['top5_accuracy']:.2f}%")
    from .report.classification import format_classification_report
    print(format_classification_report(m["classification_report"]))
    if m["most_confused"]:
        print("most confused (true -> predicted: count): "
              + ", ".join(f"{t} -> {p}: {n}" for t, p, n in m["most_confused"]))
    return 0


def cmd_compare(a) -> int:
    """``cnnlab compare``: print the runs' figures as a table and plot their validation curves."""
    from .report.compare import compare_runs, format_comparison
    out = Path(a.out) if a.out else Path("runs") / "compare.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    print(format_comparison(compare_runs(a.run_dirs, plot=out)))
    print(f"plot: {out}")
    return 0


def cmd_predict(a) -> int:
    """``cnnlab predict``: print the top classes of each image file (:func:`cnnlab.inference.predict`)."""
    from .inference import _predict
    # files in the folders given that are not readable images are skipped with a warning, as
    # training skips them; image files named alone must all be readable
    files, tops = _predict(a.run_dir, a.images, a.weights, a.top_k, a.device, skip_unreadable=True,
                           precision=a.precision)
    for path, top in zip(files, tops):
        if top is not None:
            print(f"{path}: " + ", ".join(f"{c} {100 * p:.1f}%" for c, p in top))
    return 0


def cmd_export(a) -> int:
    """``cnnlab export``: write the ONNX file (:func:`cnnlab.export.export_onnx`), checked with
    onnxruntime; exit code 2 where the onnx extra is missing or the check fails."""
    from .export import ExportCheckError, export_onnx
    try:
        out = export_onnx(a.run_dir, a.out, weights=a.weights)
    except (ModuleNotFoundError, ExportCheckError) as e:
        print(f"cnnlab export: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out['file']}\n  input  {out['input']}\n  output {out['output']}; classes "
          f"{', '.join(out['classes'])}\n  onnxruntime vs PyTorch: max |logit difference| "
          f"{out['max_abs_diff']:.2g} on a random batch")
    return 0


def cmd_explain(a) -> int:
    """``cnnlab explain``: write the Grad-CAM, filter and feature-map PNGs; print their paths."""
    from .explain import explain_run
    out = explain_run(a.run_dir, weights=a.weights, images=a.images, select=a.select, layer=a.layer,
                      out_dir=a.out, data_dir=a.data_dir, seed=a.seed, device=a.device)
    print(f"Grad-CAM at layer {out['layer']}: {out['gradcam']}")
    print(f"filters of {out['first_conv']}: {out['filters']}")
    print(f"feature maps at {out['first_conv']} and {out['layer']}: {out['feature_maps']}")
    return 0


def cmd_summary(a) -> int:
    """``cnnlab summary``: print a model's Keras-style layer table and its source."""
    from . import summary
    from .models import MODELS
    from .recipes.base import model_kwargs_options
    info = MODELS.get(a.model).info
    if a.input_size and min(a.input_size) < 1:
        raise UsageError(f"--input-size {' '.join(map(str, a.input_size))}: sizes are at least 1")
    if a.input_size and len(a.input_size) not in (len(info.input_size), len(info.input_size) - 1):
        raise UsageError(f"--input-size takes {'C H W (or H W)' if len(info.input_size) == 3 else 'C L (or L)'}")
    print(summary(a.model, a.input_size, num_classes=a.num_classes))
    print(f"Source: {info.paper}")
    options = model_kwargs_options(a.model)
    if options is not None:
        print(f"Options (--set model_kwargs.KEY=VALUE): {', '.join(options)}")
    return 0


def cmd_list(a) -> int:
    """``cnnlab list``: print registered models, datasets or recipes matching a pattern."""
    from .data import DATASETS
    from .models import MODELS
    from .recipes import RECIPES
    from .registry import did_you_mean
    groups = {"models": MODELS, "datasets": DATASETS, "recipes": RECIPES}
    if a.what is not None and a.what not in groups:  # `cnnlab list 'vgg*'`: a pattern for all three
        if a.pattern != "*":
            raise UsageError(f"{a.what!r} is not one of models, datasets, recipes"
                             f"{did_you_mean(a.what, list(groups))}")
        a.what, a.pattern = None, a.what
        import difflib  # `cnnlab list modles`: a misspelt group, not a pattern, where it matches nothing
        close = difflib.get_close_matches(a.pattern, list(groups), n=1, cutoff=0.7)
        if close and not any(reg.list(a.pattern) for reg in groups.values()):
            raise UsageError(f"{a.pattern!r} is not one of models, datasets, recipes; did you mean "
                             f"{close[0]!r}? (as a pattern it matches no name)")
    for what in ([a.what] if a.what else list(groups)):
        reg = groups[what]
        names = reg.list(a.pattern)
        print(f"{what} ({len(names)}):")
        if not names:  # a whole-name shell pattern: 'resnet20' matches no 'cifar10-resnet20'
            print(f"  none match {a.pattern!r}{did_you_mean(a.pattern, reg.list())} "
                  f"(a shell pattern: '*{a.pattern.strip('*')}*' matches names that contain it)")
        for n in names:
            obj = reg.get(n)
            desc = getattr(getattr(obj, "info", None), "paper", None) or getattr(obj, "description", None) \
                or getattr(obj, "source", "")
            print(f"  {n:<28} {desc}")
    return 0


def cmd_show(a) -> int:
    """``cnnlab show``: print a recipe (with overrides) as JSON, a valid recipe file. Without
    ``--full`` the recipe's identity (name, source, kind, literature) is left out, so that a copy
    saved to ``mine.json`` and edited is a recipe of its own: named by the file's stem, its source
    ``recipe file mine.json``."""
    import json
    from .recipes import get_recipe
    recipe = get_recipe(a.recipe, a.overrides)
    identity = set() if a.full else {"name", "source", "kind", "literature"}
    print(json.dumps(recipe.model_dump(exclude_defaults=not a.full, exclude=identity), indent=2,
                     ensure_ascii=False))
    return 0


def cmd_reproduce(a) -> int:
    """``cnnlab reproduce``: run recipes over seeds and rewrite benchmarks/RESULTS.md."""
    from pathlib import Path
    from .reproduce import reproduce
    from .recipes import parse_overrides
    from .distributed import launched
    if launched():
        raise UsageError("cnnlab reproduce runs its recipes in one process (its wall times are "
                         "this machine's); to train one recipe on several processes use "
                         "torchrun ... -m cnnlab.cli train RECIPE")
    print(reproduce(a.pattern, a.kind, a.seeds, a.data_dir, a.out_dir,
                    Path(a.keep_runs) if a.keep_runs else None,
                    overrides=parse_overrides(a.overrides) if a.overrides else None,
                    retest_from=Path(a.retest) if a.retest else None, device=a.device,
                    resume=a.resume))
    return 0


def cmd_bench(a) -> int:
    """``cnnlab bench``: time cnnlab against a plain PyTorch loop on this machine."""
    from .bench import SEED_MODELS, bench, format_rows, machine_line
    from .device import describe_machine
    models = [m for m in SEED_MODELS if not a.models or m[0] in a.models]
    from .models import MODELS
    for name in a.models:
        if name not in [m[0] for m in SEED_MODELS]:
            info = MODELS.get(name).info
            if len(info.input_size) != 3:  # the benchmark's batches are random uint8 images
                raise UsageError(f"bench times image models; {name} takes 1-D signals {tuple(info.input_size)}")
            models.append((name, 64, info.input_size))
    rows = bench(models, rounds=a.rounds, steps=a.steps)
    print(f"\n{machine_line(describe_machine())}\n")
    print(format_rows(rows))
    return 0


def cmd_data(a) -> int:
    """``cnnlab data``: list, describe, verify (exit code 1 on a checksum mismatch) or plot datasets."""
    from .data import DATASETS, dataset_options, load_dataset
    if a.data_command == "list":
        for n in DATASETS:
            print(f"  {n:<24} {DATASETS.get(n).description}")
        return 0
    from .data import info as dinfo
    if a.data_command == "verify":
        report = dinfo.verify_dataset(a.name, a.data_dir)
        print(dinfo.format_verification(report))
        return 1 if report.get("ok") is False else 0  # None: nothing to check against
    from .recipes import parse_overrides
    ds = load_dataset(a.name, a.data_dir, **parse_overrides(getattr(a, "overrides", [])))
    if a.data_command == "info":
        print(dinfo.dataset_info(ds))
        options = dataset_options(a.name)
        if options:
            print(f"options (here --set KEY=VALUE; in a recipe --set dataset_kwargs.KEY=VALUE): "
                  f"{', '.join(options)}")
    elif a.data_command == "plot":
        dinfo.plot_class_distribution(ds, a.out)
        print(f"wrote {a.out}")
    return 0


class UsageError(ValueError):
    """A command-line mistake; printed without a traceback."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cnnlab`` console script. Returns the exit code.

    When called as the console script (``argv`` None) it first re-executes itself with the
    launch settings of :mod:`cnnlab.launch` (tcmalloc, OpenMP threads) unless ``--no-launcher``
    or ``CNNLAB_LAUNCHER=0``.
    """
    if argv is None:
        argv = sys.argv[1:]
        if "--no-launcher" in argv:
            argv = [x for x in argv if x != "--no-launcher"]
            os.environ["CNNLAB_LAUNCHER"] = "0"
        from .launch import maybe_relaunch
        maybe_relaunch(argv)
    argv = [x for x in argv if x != "--no-launcher"]
    a = build_parser().parse_args(argv)  # before torch is imported: --help and typos answer at once
    try:
        return _run(a)
    except KeyboardInterrupt as e:
        run_dir = getattr(e, "run_dir", None)  # set by cnnlab.runs.train once training began
        if a.command == "reproduce":
            how = ("the same command with --resume continues it" if a.keep_runs else
                   "with --keep-runs DIR, a stopped run can be continued by --resume")
            how += " (the last finished epoch is saved)"
        elif a.command != "train":
            how = ""
        elif run_dir is None:
            how = "training had not begun" + (f"; {a.resume} is as it was" if a.resume else "")
        elif not getattr(e, "resumable", True):
            how = f"no epoch had finished, so {run_dir} holds nothing to resume"
        else:
            how = f"resume with `{_launcher()}train --resume {run_dir}` (the last finished epoch is saved)"
        if _first_on_machine():
            print(f"\ninterrupted{'; ' + how if how else ''}", file=sys.stderr)
        return 130


def _first_on_machine() -> bool:
    """Whether this process speaks for its machine: always, except the torchrun processes other
    than each machine's first (they would print the same interrupt message again)."""
    return os.environ.get("LOCAL_RANK", "0") == "0"


def _launcher() -> str:
    """How this command was launched, for the hints that repeat it: ``cnnlab `` or, under
    torchrun, ``torchrun --nproc_per_node=N -m cnnlab.cli ``."""
    world, n = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if world <= 1:
        return "cnnlab "
    nodes = world // max(n, 1)
    return f"torchrun {f'--nnodes={nodes} ' if nodes > 1 else ''}--nproc_per_node={n} -m cnnlab.cli "


def _warning_line(message, category, filename, lineno, line=None) -> str:
    """A warning as users of the command read it: ``warning: ...`` (cnnlab's own warnings say
    which file or setting they are about), without Python's file, line and source line; other
    libraries' warnings keep their origin."""
    if category.__module__.startswith("cnnlab") or filename.startswith(os.path.dirname(__file__)):
        return f"warning: {message}\n"
    return f"warning ({category.__name__}, {os.path.basename(filename)}:{lineno}): {message}\n"


def _run(a: argparse.Namespace) -> int:
    """Run the sub-command of the parsed arguments ``a``; the errors a user can fix become one
    line on stderr and exit code 2."""
    from .device import flush_denormals
    flush_denormals()  # first, so that every thread torch starts inherits it
    warnings.formatwarning = _warning_line
    from .data.idx import DataFileError
    from .recipes import RecipeError
    from .registry import UnknownNameError
    from .training import NonFiniteLossError
    handlers = {"train": cmd_train, "evaluate": cmd_evaluate, "summary": cmd_summary,
                "list": cmd_list, "data": cmd_data, "explain": cmd_explain, "predict": cmd_predict,
                "export": cmd_export, "lr-find": cmd_lr_find, "compare": cmd_compare,
                "show": cmd_show,
                "reproduce": cmd_reproduce,
                "bench": cmd_bench}
    try:
        return handlers[a.command](a)
    except BrokenPipeError:  # `cnnlab summary MODEL | head`: the reader left, nothing to report
        # stdout to /dev/null, so that Python's flush at exit does not fail again (Python's docs)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (UnknownNameError, RecipeError, DataFileError, FileNotFoundError, NonFiniteLossError,
            UsageError, ValueError, OSError) as e:
        # every process says its error (one process alone may fail, e.g. on its own batch);
        # under torchrun the others name their rank
        who = "" if _first_on_machine() else f"[rank {os.environ.get('RANK', '?')}] "
        print(f"{who}cnnlab {a.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
