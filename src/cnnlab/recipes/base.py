"""Recipes: every hyperparameter of a run in one visible, validated, frozen object.

A recipe is a pydantic model literal in one of this package's files. It states its source and
expected accuracy first (like the keras-io examples). ``--set key=value`` overrides are parsed as
JSON where possible and validated: unknown keys and wrong types are errors that say what is
allowed. The resolved recipe is saved in every run folder, so any result can be re-run.
"""
from __future__ import annotations

import difflib
import json
import math
import os
from typing import Any, Literal, Optional, Union

from pydantic import (BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator,
                      model_validator)

from ..registry import Registry, check_options


def model_kwargs_options(model: str) -> list[str] | None:
    """The keys a recipe's ``model_kwargs`` may hold for ``model``: the model's own options
    (:func:`cnnlab.models.base.model_options`) and ``binary``, cnnlab.runs' one-sigmoid-logit
    switch that every model takes; None where the options cannot be read (nothing is checked)."""
    from ..models.base import model_options
    options = model_options(model)
    return None if options is None else options + ["binary"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*")
    @classmethod
    def _finite(cls, value, info: ValidationInfo):
        # no inf or NaN (lr=inf passed its gt=0 and was saved as Infinity); a run saved before
        # this check still loads (Recipe.saved)
        numbers = value if isinstance(value, (list, tuple)) else [value]
        if not _saved(info) and any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
            raise ValueError(f"{value!r}: must be a finite number")
        return value


# what the callbacks can watch: the Trainer's epoch logs (val_* with a validation split)
MONITORS = ("val_accuracy", "val_loss", "accuracy", "loss")


def _saved(info: ValidationInfo) -> bool:
    """Whether a run's saved recipe is being read (:meth:`Recipe.saved`): checks added after a run
    was made must not lock its folder away."""
    return bool(info.context and info.context.get("saved"))


def _monitored(name: str, info: ValidationInfo) -> str:
    if name not in MONITORS and not _saved(info):
        close = difflib.get_close_matches(name, MONITORS, n=2, cutoff=0.5)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise ValueError(f"cannot monitor {name!r}{hint} (the epoch's metrics: {', '.join(MONITORS)})")
    return name


class EarlyStoppingConfig(_Strict):
    """``keras.callbacks.EarlyStopping`` arguments, with Keras' defaults."""
    monitor: str = Field("val_loss", description="the epoch metric watched")
    patience: int = Field(0, ge=0, description="epochs without improvement before training stops")
    min_delta: float = Field(0.0, description="smallest change that counts as an improvement")
    mode: Literal["auto", "min", "max"] = Field(
        "auto", description="min, max, or auto: max for accuracy, min for loss")
    baseline: Optional[float] = Field(None, description="stop unless the metric beats this within "
                                                        "patience epochs")
    restore_best_weights: bool = Field(False, description="load the best epoch's weights at the end "
                                       "(Keras); not applied in a recipe run, which tests its best "
                                       "checkpoint: the best epoch by the recipe's monitor")
    start_from_epoch: int = Field(0, ge=0, description="epochs before improvements are looked for")

    _monitor = field_validator("monitor")(_monitored)


class ReduceLROnPlateauConfig(_Strict):
    """``keras.callbacks.ReduceLROnPlateau`` arguments, with Keras' defaults."""
    monitor: str = Field("val_loss", description="the epoch metric watched")
    factor: float = Field(0.1, gt=0, lt=1, description="the learning rate is multiplied by this")
    patience: int = Field(10, ge=0, description="epochs without improvement before a cut")
    min_delta: float = Field(1e-4, description="smallest change that counts as an improvement")
    cooldown: int = Field(0, ge=0, description="epochs after a cut before patience counts again")
    min_lr: float = Field(0.0, ge=0, description="the rate is never cut below this")
    mode: Literal["auto", "min", "max"] = Field(
        "auto", description="min, max, or auto: max for accuracy, min for loss")

    _monitor = field_validator("monitor")(_monitored)


class LookaheadConfig(_Strict):
    """:class:`cnnlab.training.Lookahead` arguments (airbench94's defaults)."""
    start_epoch: int = Field(3, ge=0, description="first epoch (0-based) that averages")
    every: int = Field(5, ge=1, description="optimizer steps between updates")
    decay: float = Field(0.95, ge=0, le=1, description="per-step base of the averaging weight")
    decay_power: float = Field(3.0, ge=0, description="the weight grows as (step / steps) ** this")


class AugmentConfig(_Strict):
    """Batch augmentation, with the meaning of Keras' ``ImageDataGenerator`` options."""
    rotation: float = Field(0.0, ge=0, description="max rotation, degrees")
    width_shift: float = Field(0.0, ge=0, lt=1, description="max horizontal shift, fraction of width")
    height_shift: float = Field(0.0, ge=0, lt=1, description="max vertical shift, fraction of height")
    shear: float = Field(0.0, ge=0, description="max shear angle, degrees")
    zoom: float = Field(0.0, ge=0, lt=1, description="zoom in [1 - zoom, 1 + zoom]")
    elastic_alpha: float = Field(0.0, ge=0, description="elastic distortion scale, pixels (Simard et "
                                 "al. 2003; their MNIST value: 34); 0: none")
    elastic_sigma: float = Field(4.0, gt=0, description="elastic distortion smoothing (Gaussian std), "
                                 "pixels (Simard et al.: 4)")
    horizontal_flip: bool = Field(False, description="mirror a random half of the images left-right")
    alternate_flip: bool = Field(False, description="with horizontal_flip: mirror each image in every "
                                 "other epoch (a seeded random half of the images in even epochs, the "
                                 "other half in odd ones) instead of by a coin toss each epoch "
                                 "(airbench's alternating flip, Jordan 2024)")
    fill_mode: Literal["nearest", "constant", "reflect"] = Field(
        "nearest", description="how pixels that rotation, shift, shear and zoom bring in from "
                               "outside are filled (Keras' fill_mode; constant: zeros)")
    crop_padding: int = Field(0, ge=0, description="random crop to the input size after padding by "
                              "this many pixels (He et al. 2015 use 4 on CIFAR-10)")
    crop_mode: Literal["reflect", "zeros"] = Field("reflect", description="padding of the random crop "
                                                   "(He et al. 2015 pad with zeros)")
    cutout: int = Field(0, ge=0, description="side of a square zeroed at a random place, pixels "
                        "(DeVries & Taylor 2017)")
    noise_std: float = Field(0.0, ge=0, description="additive Gaussian noise std, in [0, 1] pixel units")

    @model_validator(mode="after")
    def _alternate_needs_flip(self):
        if self.alternate_flip and not self.horizontal_flip:
            raise ValueError("alternate_flip=true needs horizontal_flip=true (it says how images "
                             "are mirrored, not whether)")
        return self


class Recipe(_Strict):
    """A complete, reproducible training configuration.

    Accuracy figures are fractions of the official test split (top-1).
    """
    name: str = Field(description="the recipe's name, and the stem of its run folders")
    source: str = Field(description="where the experiment comes from (seed row, paper)")
    expected_accuracy: Optional[float] = Field(None, description="test top-1 the source reports")
    literature: Optional[str] = Field(None, description="published figure for this setting, with its source")
    test_informed: Optional[str] = Field(
        None, description="which of the recipe's choices was made after a test figure of an earlier "
                          "version was seen (the results table marks the row ¶: its figure is not a "
                          "clean held-out estimate); None: every choice was made on validation")
    kind: Literal["faithful", "fast", "best", "transfer"] = Field(
        "faithful", description="faithful: the seed as written; fast: the seed's model, a better "
        "schedule; best: the best per dataset; transfer: transfer learning (a backbone's "
        "pretraining, feature extraction, fine-tuning)")
    dataset: str = Field(description="registered dataset (`cnnlab list datasets`)")
    dataset_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="the dataset's options (`cnnlab data info NAME`), e.g. "
        "image-folder's size, color, resize, test_fraction")
    model: str = Field(description="registered model (`cnnlab list models`)")
    model_kwargs: dict[str, Any] = Field(default_factory=dict, description="the model's options "
                                         "(`cnnlab summary MODEL`), and binary: one sigmoid logit")
    epochs: int = Field(ge=1, description="passes over the training split")
    batch_size: int = Field(ge=1, description="training images per step (under torchrun: the "
                                              "global batch, over all processes)")
    eval_batch_size: int = Field(1000, ge=1, description="images per batch in validation and test")
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop", "adadelta"] = Field(
        "adam", description="Adam (Kingma & Ba 2015), AdamW (Loshchilov & Hutter 2019), SGD, "
                            "RMSprop (Keras' rho and eps, PyTorch's update: see "
                            "cnnlab.training.build_optimizer), Adadelta (Zeiler 2012)")
    lr: float = Field(1e-3, gt=0, description="learning rate")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD's momentum")
    nesterov: bool = Field(False, description="SGD with Nesterov momentum (Sutskever et al. 2013)")
    weight_decay: float = Field(0.0, ge=0, description="L2 penalty added to the gradient (Adam, SGD, "
                                "RMSprop) or decoupled weight decay (AdamW)")
    filter_bias_and_bn: bool = Field(False, description="no weight decay on biases and normalisation "
                                                        "weights (1-D parameters), as timm's option")
    eps: Optional[float] = Field(None, gt=0, description="Adam/AdamW/RMSprop/Adadelta epsilon; None: "
                                 "PyTorch's 1e-8 (Adam, AdamW) and 1e-6 (Adadelta), Keras' 1e-7 (RMSprop)")
    schedule: Literal["none", "step", "multistep", "exponential", "cosine", "onecycle"] = Field(
        "none", description="learning-rate schedule: step / multistep (x gamma at epochs), "
        "exponential (x gamma per epoch), cosine to 0 (Loshchilov & Hutter 2017), onecycle "
        "(Smith & Topin 2019, peak lr); cnnlab.training.build_scheduler")
    step_size: int = Field(30, ge=1, description="epochs between 'step' decays")
    milestones: list[float] = Field(default_factory=list,
                                    description="epochs at which 'multistep' multiplies the LR by gamma")
    gamma: float = Field(0.1, gt=0, le=1, description="decay factor of 'step'/'exponential'")
    warmup_epochs: float = Field(0.0, ge=0, description="linear warm-up of the learning rate from "
                                 "lr / steps up to lr over this many epochs, per step (Goyal et al. "
                                 "2017); with schedule none the rate stays at lr after it")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="cross-entropy against targets "
                                   "(1 - eps) one-hot + eps / K (Szegedy et al. 2016)")
    clip_grad_norm: Optional[float] = Field(
        None, gt=0, description="clip the gradients' global L2 norm to this before each step "
        "(Keras' global_clipnorm, timm's --clip-grad)")
    class_weight: Union[Literal["balanced"], dict[str, float], None] = Field(
        None, description="weights of the classes in the training loss, Keras' fit(class_weight=...): "
        "'balanced' (n / (K * count of the class) over the training split, scikit-learn's) or "
        "{class name or index: weight} (others 1); validation and test losses stay unweighted")
    augment: Optional[AugmentConfig] = Field(None, description="batch augmentation of the "
                                             "training images (augment.rotation=10, ...); None: none")
    mixup_alpha: float = Field(0.0, ge=0, description="MixUp (Zhang et al. 2018) of the training "
                               "batches, lam ~ Beta(alpha, alpha); 0: off (cnnlab.training.mix)")
    cutmix_alpha: float = Field(0.0, ge=0, description="CutMix (Yun et al. 2019), lam ~ Beta(alpha, "
                                "alpha); 0: off; with mixup_alpha too, each mixed batch is one or the other")
    mix_prob: float = Field(1.0, ge=0, le=1, description="share of the training batches mixed "
                            "(with mixup_alpha or cutmix_alpha)")
    norm_bias_lr_scale: float = Field(
        1.0, gt=0, description="learning-rate multiplier for normalisation-layer biases (airbench: 64); "
                               "their weight decay is divided by it (cnnlab.training.parameter_groups)")
    lookahead: Optional[LookaheadConfig] = Field(
        None, description="airbench's Lookahead averaging of the weights (cnnlab.training.Lookahead)")
    pretrained: Optional[str] = Field(
        None, description="weights to start from: a .safetensors or torchvision-format .pth "
        "state_dict, a run folder, or a recipe name (its newest run under runs/); "
        "cnnlab.transfer.load_pretrained")
    pretrained_part: Literal["features", "all"] = Field(
        "features", description="features: the convolutional base only (Keras' include_top=False); "
        "all: everything but a final layer for another number of classes")
    trainable_from: Optional[str] = Field(
        None, description="first module that trains; every parameter before it is frozen "
        "(feature extraction: 'classifier'; fine-tuning vgg16_bn's last block: 'features.34'); "
        "None: all train")
    features_bn_inference: bool = Field(
        False, description="BatchNorm layers in the features normalise with their running "
        "statistics and keep them, trainable or not (Keras' fine-tuning advice; "
        "cnnlab.transfer.keep_running_stats)")
    freeze_after: dict[str, int] = Field(
        default_factory=dict, description="parameter (or module) name -> epochs it trains before it "
        "is frozen, e.g. airbench's {'features.whiten.bias': 3} (cnnlab.training.FreezeAfter)")
    ema_decay: Optional[float] = Field(
        None, gt=0, lt=1, description="exponential moving average of the weights, updated every step "
                                      "(e.g. 0.999); validation, checkpoints and the test use it "
                                      "(Polyak & Juditsky 1992)")
    ema_warmup: bool = Field(False, description="the EMA's decay after n updates is min(ema_decay, "
                             "(1 + n) / (10 + n)) (TensorFlow's ExponentialMovingAverage num_updates)")
    tta: Literal["none", "flip", "flip-shift"] = Field(
        "none", description="test-time augmentation of the final test evaluation: 'flip' averages "
                            "the logits of each image and its mirror image, 'flip-shift' adds "
                            "one-pixel shifts as airbench (cnnlab.training.tta_logits); validation: none")
    val_fraction: float = Field(0.1, ge=0, lt=1, description="share of the training split held out")
    seed: int = Field(0, description="random seed of initialisation, split, shuffling and augmentation")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="bf16 autocast (weights stay fp32) or fp32; auto: bf16 where the CPU "
                            "or GPU computes it natively")
    channels_last: Optional[bool] = Field(None, description="None: on with bf16 and on the CPU, off for fp32 on a GPU")
    compile: bool = Field(False, description="torch.compile the model; the first steps pay the "
                                             "compile time (reported in the log)")
    fused_optimizer: bool = Field(True, description="Adam, AdamW and SGD in PyTorch's fused kernels "
                                                    "(one pass per parameter) on CPU and CUDA; false: "
                                                    "the multi-tensor foreach kernels")
    monitor: str = Field("val_accuracy", description="metric choosing the best checkpoint")
    early_stopping: Optional[EarlyStoppingConfig] = Field(
        None, description="Keras' EarlyStopping (early_stopping.patience=5, ...); None: off")
    reduce_lr: Optional[ReduceLROnPlateauConfig] = Field(
        None, description="Keras' ReduceLROnPlateau (reduce_lr.patience=10, ...); None: off")

    _monitor = field_validator("monitor")(_monitored)

    @model_validator(mode="after")
    def _reduce_lr_without_schedule(self, info: ValidationInfo):
        if self.reduce_lr is not None and (self.schedule != "none" or self.warmup_epochs) \
                and not _saved(info):
            what = f"the {self.schedule!r} schedule" if self.schedule != "none" else "the warm-up"
            raise ValueError(f"reduce_lr cuts the learning rate that {what} "
                             "sets again at its next step: use schedule=none and warmup_epochs=0 "
                             "with reduce_lr, or "
                             "reduce_lr=null (as Keras, where an optimizer with a schedule has no "
                             "settable rate)")
        return self

    @field_validator("class_weight", mode="before")
    @classmethod
    def _class_weight_form(cls, value):
        if value is None or value == "balanced":
            return value
        if isinstance(value, dict) and all(isinstance(k, (str, int)) and not isinstance(v, bool)
                                           and isinstance(v, (int, float)) for k, v in value.items()):
            return {str(k): float(v) for k, v in value.items()}
        raise ValueError("class_weight takes 'balanced' or {class name or index: weight}, e.g. "
                         "--set 'class_weight={\"dogs\": 2}'")

    @field_validator("milestones")
    @classmethod
    def _positive_epochs(cls, milestones: list[float], info: ValidationInfo) -> list[float]:
        if not _saved(info) and any(m <= 0 for m in milestones):
            raise ValueError(f"milestones {milestones}: epochs after the start, each > 0")
        return milestones

    @field_validator("seed")
    @classmethod
    def _seed_range(cls, seed: int, info: ValidationInfo) -> int:
        # numpy's split generator refuses a negative seed, and the loaders' per-epoch seeds
        # (seed * 1_000_003 + epoch) overflowed torch's 64 bits from the first epoch on
        if not _saved(info) and not 0 <= seed < 2 ** 32:
            raise ValueError(f"{seed}: a seed is an integer in [0, 2**32)")
        return seed

    @field_validator("name")
    @classmethod
    def _folder_stem(cls, name: str, info: ValidationInfo) -> str:
        # the stem of runs/<name>-<time>: a path in it would put the run folder elsewhere (a run
        # saved before this check still loads)
        if _saved(info):
            return name
        if not name.strip() or name in (".", "..") or any(c in name for c in "/\\\0"):
            raise ValueError(f"{name!r}: a recipe name is a run folder's stem: no '/' or '\\', "
                             "not empty, '.' or '..'")
        return name

    @field_validator("model")
    @classmethod
    def _registered(cls, name: str) -> str:
        from ..models import MODELS  # importing the package fills the registry
        try:
            MODELS.get(name)
        except KeyError as e:  # UnknownNameError, with close matches
            raise ValueError(str(e)) from None
        return name

    @field_validator("dataset_kwargs", "model_kwargs")
    @classmethod
    def _known_options(cls, kwargs: dict, info: ValidationInfo) -> dict:
        from ..data import DATASETS, dataset_options
        kind = info.field_name.removesuffix("_kwargs")
        name = info.data.get(kind)
        if name is None or (kind == "dataset" and name not in DATASETS):
            return kwargs  # the name failed validation, or a dataset passed in by the caller
        options = (dataset_options if kind == "dataset" else model_kwargs_options)(name)
        try:
            check_options(kind, name, kwargs, options)
        except ValueError as e:
            raise ValueError(f"{e}; --set {info.field_name}={{}} clears the recipe's") from None
        return kwargs

    @classmethod
    def saved(cls, data: dict) -> "Recipe":
        """The recipe a run folder's ``recipe.json`` holds, validated as when it was made: a
        pairing refused since (``reduce_lr`` with a schedule, an unknown ``monitor``) is taken,
        so the run can still be evaluated, explained and exported.

        Raises:
            pydantic.ValidationError: fields that are not a recipe's.
        """
        return cls.model_validate(data, context={"saved": True})

    def override(self, overrides: dict[str, Any] | list[str] | None) -> "Recipe":
        """A copy with ``overrides`` applied: ``{"epochs": 3}`` or ``["epochs=3", "lr=1e-3"]``.

        Dotted keys reach into sub-configs (``early_stopping.patience=3``); a sub-config that is
        off is switched on with its defaults first. ``early_stopping=null`` switches it off.

        Raises:
            RecipeError: unknown key (with close matches and the allowed keys) or a value of the
                wrong type or range (with the field's type and current value).
        """
        if not overrides:
            return self
        if isinstance(overrides, (list, tuple)):
            overrides = parse_overrides(overrides)
        data = self.model_dump()
        errors = set_all(data, overrides, type(self))
        try:
            recipe = type(self).model_validate(data)
        except ValidationError as e:
            errors += _explain(e, overrides, self)
        if len(errors) == 1 and not errors[0].startswith("--set"):  # one unknown key: one line
            raise RecipeError(errors[0])
        if errors:
            raise RecipeError("invalid recipe override:\n  " + "\n  ".join(errors))
        return recipe


class RecipeError(ValueError):
    """A bad recipe override: unknown key or wrong value. The message says what is allowed."""


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["epochs=3", "lr=1e-3", "augment.rotation=10"]`` -> ``{"epochs": 3, ...}``.

    Values are read as JSON when they parse (numbers, true/false, null, lists, objects) and as
    plain strings otherwise.

    Raises:
        RecipeError: an item without ``=``.
    """
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise RecipeError(f"--set expects key=value, got {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key.strip()] = value
    return out


def _sub_model(cls, name):
    ann = cls.model_fields[name].annotation
    for t in getattr(ann, "__args__", (ann,)):
        if isinstance(t, type) and issubclass(t, BaseModel):
            return t
    return None


# the names other tools give some recipe fields (Keras, timm, PyTorch), for "Did you mean"
_KNOWN_AS = {"learning_rate": "lr", "wd": "weight_decay", "batch": "batch_size", "bs": "batch_size",
             "smoothing": "label_smoothing", "lr_schedule": "schedule", "scheduler": "schedule",
             "opt": "optimizer", "validation_split": "val_fraction", "mixed_precision": "precision",
             "warmup": "warmup_epochs", "model_ema_decay": "ema_decay", "clipnorm": "clip_grad_norm",
             "global_clipnorm": "clip_grad_norm", "clip_grad": "clip_grad_norm"}


def set_all(data: dict, changes: dict[str, Any], cls) -> list[str]:
    """Apply every ``{dotted key: value}`` of ``changes`` to ``data`` (a model_dump of ``cls``)
    and return the messages of all unknown keys, so that a user sees every typo at once (the
    known keys are applied; the caller validates and raises)."""
    unknown, allowed = [], []
    for key, value in changes.items():
        try:
            _set_dotted(data, key, value, cls)
        except _UnknownKey as e:
            unknown.append(e.args[0])
            allowed += [e.allowed] if e.allowed not in allowed else []
    if len(unknown) == 1:
        return [f"{unknown[0]} {allowed[0]}"]
    return unknown + allowed


class _UnknownKey(RecipeError):
    """An unknown recipe key: ``args[0]`` names it (with close matches), ``allowed`` lists the keys."""

    def __init__(self, message: str, allowed: str):
        super().__init__(message)
        self.allowed = allowed


def _set_dotted(data: dict, key: str, value: Any, cls, outer: str = "") -> None:
    head, _, rest = key.partition(".")
    if head not in cls.model_fields:
        alias = _KNOWN_AS.get(head.lower().replace("-", "_"))
        close = ([alias] if alias in cls.model_fields else []) + [
            c for c in difflib.get_close_matches(head, cls.model_fields, n=3, cutoff=0.5) if c != alias]
        hint = f" Did you mean {', '.join(outer + c for c in close)}?" if close else ""
        raise _UnknownKey(f"unknown recipe key {outer + key!r}.{hint}", f"Allowed keys"
                          f"{' of ' + outer.rstrip('.') if outer else ''}: {', '.join(cls.model_fields)}")
    if not rest:
        data[head] = value
        return
    sub = _sub_model(cls, head)
    if sub is None:
        if isinstance(data.get(head), dict):  # free-form dict such as model_kwargs
            data[head] = {**data[head], rest: value}
            return
        raise RecipeError(f"recipe key {head!r} has no sub-keys; got {key!r}")
    if data.get(head) is None:
        data[head] = sub().model_dump()
    _set_dotted(data[head], rest, value, sub, f"{outer}{head}.")


def _explain(err: ValidationError, overrides: dict, recipe: Recipe) -> list[str]:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not isinstance(p, int))
        given = overrides.get(loc, e.get("input"))
        field = _field_info(type(recipe), loc)
        allowed = f" (field {loc}: {field})" if field else ""
        if not loc:  # a check across the recipe's fields: name the keys it is about
            msg = e["msg"].removeprefix("Value error, ")
            sets = " ".join(f"{k}={v!r}" for k, v in overrides.items() if k.split(".")[0] in msg)
            lines.append(f"{'--set ' + sets if sets else 'the recipe'}: {msg}")
            continue
        inner = {k: v for k, v in overrides.items() if k.startswith(loc + ".")}
        if isinstance(given, dict) and inner:  # a check across a sub-config's fields: name the
            sets = " ".join(f"{k}={v!r}" for k, v in inner.items())  # keys the user set
            lines.append(f"--set {sets}: {e['msg'].removeprefix('Value error, ')}")
            continue
        if e["type"] == "value_error":  # our validators' messages say what is allowed
            lines.append(f"--set {loc}={given!r}: {e['msg'].removeprefix('Value error, ')}")
            continue
        lines.append(f"--set {loc}={given!r}: {e['msg']}{allowed}")
    return lines


def _field_info(cls, loc: str) -> str:
    head, _, rest = loc.partition(".")
    if head not in cls.model_fields:
        return ""
    if rest:
        sub = _sub_model(cls, head)
        return _field_info(sub, rest) if sub else ""
    f = cls.model_fields[head]
    ann = getattr(f.annotation, "__name__", None) or str(f.annotation).replace("typing.", "")
    txt = f"{ann}"
    if f.description:
        txt += f", {f.description}"
    return txt


RECIPES: Registry[Recipe] = Registry("recipe")


def register_recipe(recipe: Recipe) -> Recipe:
    """Add a recipe to the registry under its ``name``."""
    return RECIPES.register(recipe.name, recipe)


def get_recipe(name: str | os.PathLike, overrides=None) -> Recipe:
    """The registered recipe ``name``, or the recipe in the file ``name`` (``.toml`` or ``.json``,
    :mod:`cnnlab.recipes.files`), with ``overrides`` applied.

    Raises:
        UnknownNameError: unknown recipe (close matches listed).
        FileNotFoundError: a recipe file that does not exist.
        RecipeError: a bad override, or a recipe file that does not parse or validate.
    """
    from .files import is_recipe_file, load_recipe_file
    if is_recipe_file(name):
        return load_recipe_file(name).override(overrides)
    return RECIPES.get(str(name)).override(overrides)
