import pytest

from cnnlab.data import DATASETS
from cnnlab.models import MODELS
from cnnlab.recipes import RECIPES, RecipeError, get_recipe


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_resolves(name):
    r = get_recipe(name)
    assert r.name == name and r.source
    assert r.model in MODELS and r.dataset in DATASETS


def test_overrides_apply_and_validate():
    r = get_recipe("mnist-cnn-small", ["epochs=3", "lr=5e-4", "early_stopping.patience=2",
                                       "reduce_lr.factor=0.5"])
    assert (r.epochs, r.lr, r.early_stopping.patience, r.reduce_lr.factor) == (3, 5e-4, 2, 0.5)
    assert r.early_stopping.monitor == "val_loss"  # switched on with Keras' defaults
    assert get_recipe("mnist-cnn-small").epochs == 10  # the registered recipe is untouched


@pytest.mark.parametrize("item, message", [
    ("epoch=3", "unknown recipe key 'epoch'. Did you mean epochs"),
    ("epochs=three", "epochs='three'.*valid integer"),
    ("lr=-1", "lr=-1.*greater than 0"),
    ("precision=fp16", "'auto', 'fp32' or 'bf16'"),
    ("early_stopping.patiense=1", "unknown recipe key 'early_stopping.patiense'. Did you mean early_stopping.patience\\? Allowed keys of early_stopping: monitor, patience"),
    ("noequals", "key=value"),
    # a check across a sub-config's fields names what was set, not the whole sub-config
    ("augment.alternate_flip=true", r"^invalid recipe override:\n  --set augment.alternate_flip=True: "
                                    "alternate_flip=true needs horizontal_flip=true"),
    ("lookahead.evry=3", "Did you mean lookahead.every"),
    # other tools' names for a field are suggested first
    ("learning_rate=0.1", "unknown recipe key 'learning_rate'. Did you mean lr, "),
    ("validation_split=0.2", "Did you mean val_fraction, "),
    ("norm_bias_lr_scale=0", "greater than 0"),
    # names and options are checked before any data is read
    ("model=lenet", r"--set model='lenet': unknown model 'lenet'; did you mean 'lenet5'"),
    ("model_kwargs.dropout=0.2", r"model 'mnist-cnn-small' has no option 'dropout'; did you mean "
                                 r"'dropout2', 'dropout1'\? \(its options: dropout1, dropout2, binary"),
    ("dataset_kwargs.size=32", r"dataset 'mnist' has no option 'size' \(its options: none"),
    # a name is a run folder's stem; numbers are finite; milestones are epochs
    ("name=../../escape", r"'../../escape': a recipe name is a run folder's stem: no '/'"),
    ("name=..", r"'..': a recipe name is a run folder's stem"),
    ("lr=inf", r"--set lr='inf': inf: must be a finite number"),
    ("augment.noise_std=inf", r"--set augment.noise_std='inf': inf: must be a finite number"),
    ("milestones=[-1]", r"--set milestones=\[-1\]: milestones \[-1.0\]: epochs after the start, each > 0"),
    # numpy's split refused a negative seed in words naming no field; a large one (a date-time)
    # overflowed the loaders' per-epoch seeds in the first epoch, after the run folder was written
    ("seed=-1", r"--set seed=-1: -1: a seed is an integer in \[0, 2\*\*32\)"),
    ("seed=20240101123456", r"--set seed=20240101123456: .*a seed is an integer in \[0, 2\*\*32\)"),
])
def test_bad_overrides_say_what_is_allowed(item, message):
    with pytest.raises(RecipeError, match=message):
        get_recipe("mnist-cnn-small", [item])


def test_every_bad_override_is_reported_at_once():
    with pytest.raises(RecipeError) as e:
        get_recipe("mnist-cnn-small", ["epoch=3", "lrr=0.1", "batch_size=x", "lr=-1"])
    lines = str(e.value).split("\n  ")
    assert lines[:3] == ["invalid recipe override:", "unknown recipe key 'epoch'. Did you mean epochs, "
                         "warmup_epochs, eps?", "unknown recipe key 'lrr'. Did you mean lr?"]
    assert lines[3].startswith("Allowed keys: name, ")  # once, not after each unknown key
    assert lines[4].startswith("--set batch_size='x': Input should be a valid integer")
    assert lines[5].startswith("--set lr=-1: Input should be greater than 0") and len(lines) == 6


@pytest.mark.parametrize("override, message", [
    ("monitor=val_acc", "cannot monitor 'val_acc'; did you mean val_accuracy"),
    ("early_stopping.monitor=acc", "cannot monitor 'acc'; did you mean accuracy"),
    ("reduce_lr.monitor=val_los", "cannot monitor 'val_los'; did you mean val_loss"),
])
def test_a_monitor_that_no_epoch_logs_is_refused_before_training(override, message):
    """It was a warning per epoch: the best checkpoint was never written, and the run failed
    after its last epoch (early stopping and LR cuts silently never acted)."""
    with pytest.raises(RecipeError, match=message):
        get_recipe("mnist-cnn-small", [override])


def test_reduce_lr_with_a_schedule_is_refused_naming_both_keys():
    with pytest.raises(RecipeError, match=r"--set reduce_lr.patience=2 schedule='cosine': reduce_lr "
                                          r"cuts the learning rate that the 'cosine' schedule"):
        get_recipe("mnist-cnn-small", ["reduce_lr.patience=2", "schedule=cosine"])


def test_reduce_lr_with_a_warm_up_is_refused():
    # the warm-up alone (schedule none) also sets the rate at every step of its epochs
    with pytest.raises(RecipeError, match=r"reduce_lr cuts the learning rate that the warm-up sets"):
        get_recipe("mnist-cnn-small", ["reduce_lr.patience=2", "warmup_epochs=1"])


def test_early_stopping_takes_keras_defaults_and_all_its_arguments():
    r = get_recipe("mnist-cnn-small", ["early_stopping.baseline=0.5", "early_stopping.start_from_epoch=2"])
    es = r.early_stopping
    assert (es.patience, es.restore_best_weights, es.baseline, es.start_from_epoch) == (0, False, 0.5, 2)


def test_runs_saved_before_the_name_and_number_checks_still_load():
    # Recipe.saved reads a run folder's recipe.json as it was made: evaluate, predict, explain
    from cnnlab.recipes import Recipe
    d = get_recipe("mnist-lenet5").model_dump()
    d.update(name="team/exp", milestones=[0, 5], clip_grad_norm=float("inf"))
    assert Recipe.saved(d).name == "team/exp"
    with pytest.raises(Exception, match="must be a finite number"):
        Recipe.model_validate(d)
