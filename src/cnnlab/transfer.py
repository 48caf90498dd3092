"""Transfer learning: start from pretrained weights, train only part of the network.

Two steps, as in Keras' transfer-learning guide and Chollet's cats-vs-dogs example (seed 001 §9):

* **feature extraction**: load a pretrained convolutional base, put a new classifier on it and
  train only the classifier (``trainable_from="classifier"``);
* **fine-tuning**: continue from that run with the top block of the base unfrozen as well
  (``trainable_from="features.34"`` for vgg16_bn's last block), at a small learning rate.

Weights come from a ``.safetensors`` file, a torchvision-format ``.pth`` state_dict (read with
``torch.load(weights_only=True)``: nothing but tensors is unpickled), a cnnlab run folder, or the
name of a recipe whose newest run folder holds them. cnnlab's VGG, ResNet and AlexNet models use
torchvision's parameter names, so torchvision's ImageNet files load as they are. Frozen
parameters get ``requires_grad=False`` (no gradient is computed for a frozen base at all) and
frozen BatchNorm layers keep their running statistics (Keras' ``trainable = False``).
Yosinski et al. 2014, "How transferable are features in deep neural networks?", NeurIPS.
"""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import torch
from torch import nn

from .checkpoint import _reason, read_safetensors
from .registry import UnknownNameError, did_you_mean

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")  # common checkpoint wrappers
_PREFIXES = ("module.", "_orig_mod.")  # DDP and torch.compile add these to every key


def find_weights(source: str | os.PathLike, runs_root: str | os.PathLike = "runs",
                 seed: int | None = None) -> Path:
    """The weights file ``source`` names.

    ``source`` is a weights file (``.safetensors``, ``.pth``, ``.pt``, ``.bin``), a run folder
    (its ``best.safetensors``), or a recipe name: the newest finished run folder of that recipe
    (by the name in its ``recipe.json``; finished: it has ``test_metrics.json``) under
    ``runs_root`` or one level deeper (``runs/<recipe>-<time>`` as ``cnnlab train`` writes it, any
    ``--run-dir`` there, ``cnnlab reproduce --keep-runs``'s); with ``seed``, the newest finished
    run with that seed where there is one (fine-tuning seed 1 continues feature extraction seed 1),
    else another seed's where that seed has no run at all.

    Raises:
        FileNotFoundError: no such weights file; nothing matches, or only runs that have not
            finished (the message says how to make the weights).
    """
    path = Path(source)
    if path.is_file():
        return path
    if path.is_dir() and (path / "recipe.json").is_file():  # a run folder
        best = path / "best.safetensors"
        if best.is_file():
            return best
        raise FileNotFoundError(f"pretrained: run folder {path} has no best.safetensors (did its "
                                "training finish an epoch?)")
    if path.suffix in WEIGHT_SUFFIXES:  # a file's name, not a recipe's: no `cnnlab train x.pth` to suggest
        raise FileNotFoundError(f"pretrained: weights file {path} not found")
    name = str(source)
    root = Path(runs_root)
    runs = [d for pattern in ("*", "*/*") for d in root.glob(pattern)
            if (d / "best.safetensors").is_file() and _run_recipe(d).get("name") == name]
    # finished runs (tested: test_metrics.json) only; one killed or still training is not a source
    finished = [d for d in runs if (d / "test_metrics.json").is_file()]
    mine = [d for d in runs if seed is not None and _run_recipe(d).get("seed") == seed]
    # where the seed's runs have none finished, another seed's run is not put in its place
    for group, who in ((runs, f"the runs of {name!r}"), (mine, f"the runs of {name!r} with seed {seed}")):
        if group and not any(d in finished for d in group):
            raise FileNotFoundError(f"pretrained: {who} under {root}/ have not finished "
                                    f"({', '.join(sorted(d.name for d in group)[:3])}): resume one "
                                    "(`cnnlab train --resume RUN_DIR`) or give a run folder or weights file")
    runs = [d for d in mine if d in finished] or finished
    if runs:
        return max(runs, key=lambda d: (d / "best.safetensors").stat().st_mtime) / "best.safetensors"
    raise FileNotFoundError(
        f"pretrained: {name!r} is not a weights file ({', '.join(WEIGHT_SUFFIXES)}), a run folder, "
        f"or a recipe with a finished run under {root}/; train it first (`cnnlab train {name}`) "
        "or give the path of a weights file")


def _run_recipe(run_dir: Path) -> dict:
    """The recipe saved in a run folder's ``recipe.json``; ``{}`` where there is none to read."""
    try:
        recipe = json.loads((run_dir / "recipe.json").read_text())["recipe"]
        return recipe if isinstance(recipe, dict) else {}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, on the CPU, with the prefixes DDP (``module.``) and
    ``torch.compile`` (``_orig_mod.``) add removed and a ``{"state_dict": ...}`` or
    ``{"model": ...}`` wrapper unwrapped.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a safetensors file / not a plain state_dict (``.pth`` files holding Python
            objects are refused, never unpickled), or an unknown suffix; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights {path} not found")
    if path.suffix == ".safetensors":
        state = read_safetensors(path)
    elif path.suffix in WEIGHT_SUFFIXES:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            raise ValueError(f"{path}: holds Python objects besides tensors, which cnnlab does not "
                             f"unpickle (torch.load weights_only=True): {_reason(e)}") from e
        except (RuntimeError, EOFError, OSError) as e:
            raise ValueError(f"{path}: not a readable PyTorch weights file ({type(e).__name__}: {_reason(e)})") from e
    else:
        raise ValueError(f"{path}: unknown weights format {path.suffix!r}; expected one of "
                         f"{', '.join(WEIGHT_SUFFIXES)}")
    if isinstance(state, dict):
        for key in _WRAPPER_KEYS:
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ValueError(f"{path}: not a state_dict (a dict of parameter name -> tensor)")
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def load_pretrained(model: nn.Module, source: str | os.PathLike, part: str = "features",
                    runs_root: str | os.PathLike = "runs", seed: int | None = None) -> dict:
    """Copy pretrained weights into ``model`` (in place, onto its device and dtype).

    Args:
        source, runs_root, seed: see :func:`find_weights`.
        part: ``"features"``: the convolutional base only (every tensor of ``model.features``,
            ``features.*`` or, for a model whose ``features`` is a view such as the ResNets,
            its modules' own names; Keras' ``include_top=False``): the classifier keeps its
            fresh initialisation. ``"all"``:
            every tensor, except the final layer (``model.info.classifier``) when its shape
            differs (another number of classes): that one stays new, as timm does.

    Returns:
        ``{"file", "loaded", "new", "unused"}``: the file read, how many tensors were copied, the
        names left at their initialisation, the file's names not used.

    Raises:
        FileNotFoundError, ValueError: see :func:`find_weights` / :func:`read_state_dict`.
        ValueError: ``part`` not ``"features"`` or ``"all"``; ``"features"`` for a model with no
            ``features.*`` tensors; a tensor the model needs is missing from the file or has another shape, or
            the file has a tensor the part loaded has no place for (a deeper network's; the
            message names the first few, with both shapes).
    """
    if part not in ("features", "all"):
        raise ValueError(f"pretrained part must be 'features' or 'all', got {part!r}")
    path = find_weights(source, runs_root, seed)
    state = read_state_dict(path)
    own = model.state_dict()
    head = getattr(getattr(model, "info", None), "classifier", None)
    wanted = list(own) if part == "all" else _keys_of(model, "features")
    if not wanted:
        raise ValueError(f"pretrained part 'features': {type(model).__name__} has no features.* "
                         "parameters; use part 'all'")
    # BatchNorm's batch counters are absent from files saved before PyTorch 0.4.1 (some of
    # torchvision's); load_state_dict accepts that, and so do we (the model's own count stays)
    missing = [k for k in wanted if k not in state and not k.endswith(".num_batches_tracked")]
    # the file's tensors the model has no place for, in the part loaded (load_state_dict's strict
    # "unexpected keys"): a deeper network's file (resnet34's into resnet18) is not taken in part
    roots = {k.split(".")[0] for k in wanted}
    unexpected = [k for k in state if k not in own and (part == "all" or k.split(".")[0] in roots)]
    new, mismatched, take = [], [], {}
    for k in wanted:
        if k in missing or k not in state:
            continue
        if state[k].shape == own[k].shape:
            take[k] = state[k]
        elif part == "all" and head and k.startswith(head + "."):
            new.append(k)  # a head for other classes: keep the model's fresh one
        else:
            mismatched.append(f"{k} {tuple(state[k].shape)} in the file, {tuple(own[k].shape)} in "
                              "the model")
    if missing or mismatched or unexpected:
        problems = ([f"missing {k}" for k in missing[:5]] + [f"unexpected {k}" for k in unexpected[:5]]
                    + mismatched[:5])
        more = len(missing) + len(unexpected) + len(mismatched) - len(problems)
        hint = " (part 'features' loads the convolutional base only)" if part == "all" else ""
        raise ValueError(f"{path}: weights do not fit {type(model).__name__}{hint}: "
                         + "; ".join(problems) + (f"; and {more} more" if more > 0 else ""))
    model.load_state_dict(take, strict=False)
    new += [k for k in own if k not in take and k not in new]
    unused = [k for k in state if k not in take]
    return {"file": str(path), "loaded": len(take), "new": new, "unused": unused}


def _keys_of(model: nn.Module, name: str) -> list[str]:
    """The model's state_dict keys of the tensors that submodule ``name`` holds, found by identity,
    so that views (a ResNet's ``features``, ``classifier``: its torchvision-named modules) work as
    registered containers do. ``[]`` where there is no such submodule."""
    try:
        sub = model.get_submodule(name)
    except AttributeError:
        return []
    ids = {id(t) for t in sub.state_dict(keep_vars=True).values()}
    return [k for k, t in model.state_dict(keep_vars=True).items() if id(t) in ids]


def freeze_before(model: nn.Module, trainable_from: str | None) -> tuple[int, int]:
    """Freeze every parameter registered before the module ``trainable_from``.

    Keras' "unfreeze from ``block5_conv1`` on": parameters are taken in the model's order
    (``model.named_parameters()``, i.e. the order of the layers); the first one inside
    ``trainable_from`` and all after it train, all before it are frozen (``requires_grad=False``).
    ``None``: everything trains. Feature extraction: ``"classifier"``. Parameters the
    architecture itself keeps fixed (``model.fixed_parameters``, recorded by
    :func:`~cnnlab.models.create_model`: LeNet-5's RBF prototypes, airbench's BatchNorm scales)
    stay fixed; anything else frozen before, by hand or by an earlier call, follows the rule.

    Returns:
        (trainable, frozen) parameter counts (numbers of scalars).

    Raises:
        UnknownNameError: no module or parameter of that name (with close matches).
    """
    names = [n for n, _ in model.named_parameters()]
    if trainable_from is None:
        start = 0
    else:
        inside = [i for i, n in enumerate(names)
                  if n == trainable_from or n.startswith(trainable_from + ".")]
        if not inside:  # a view (a ResNet's "classifier" is its fc): its parameters by identity
            keys = set(_keys_of(model, trainable_from))
            inside = [i for i, n in enumerate(names) if n in keys]
        if not inside:
            modules = [n for n, m in model.named_modules() if n and any(True for _ in m.parameters())]
            raise UnknownNameError(f"trainable_from: no module or parameter {trainable_from!r} with "
                                   f"parameters in {type(model).__name__}"
                                   f"{did_you_mean(trainable_from, modules)}")
        start = inside[0]
    fixed = getattr(model, "fixed_parameters", frozenset())
    counts = [0, 0]
    for i, (name, p) in enumerate(model.named_parameters()):
        p.requires_grad_(i >= start and name not in fixed)
        counts[not p.requires_grad] += p.numel()
    return counts[0], counts[1]


def keep_running_stats(model: nn.Module, prefix: str = "features") -> int:
    """Mark every BatchNorm layer under ``prefix`` to normalise with its running statistics in
    training too, trainable or not: Keras' advice for fine-tuning (call the base with
    ``training=False``), since batch statistics of the new data would shift what the trained
    classifier sees. :func:`frozen_norms_eval` applies the mark; returns how many were marked."""
    try:
        base = model.get_submodule(prefix)  # a view too (a ResNet's features)
    except AttributeError:
        return 0
    n = 0
    for m in base.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.keep_running_stats = True
            n += 1
    return n


def frozen_norms_eval(model: nn.Module) -> int:
    """Put every BatchNorm layer whose affine parameters are all frozen, or that
    :func:`keep_running_stats` marked, in eval mode, so that it normalises with its running
    statistics and does not update them (Keras' BatchNormalization with ``trainable = False``).
    Its affine parameters still train where they are trainable. Call after ``model.train()``;
    returns how many were switched."""
    n = 0
    for m in model.modules():
        # a marked one without affine parameters too; unmarked, "all frozen" needs some to tell
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and (
                getattr(m, "keep_running_stats", False)
                or m.affine and not any(p.requires_grad for p in m.parameters(recurse=False))):
            m.eval()
            n += 1
    return n


__all__ = ["find_weights", "freeze_before", "frozen_norms_eval", "keep_running_stats", "load_pretrained",
           "read_state_dict"]
