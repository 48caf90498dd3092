"""Recipes from files: TOML/JSON with or without a registered base, and a run's recipe.json."""
import json
import sys

import pytest

import cnnlab
from cnnlab.recipes import RecipeError, get_recipe
from cnnlab.recipes.files import load_recipe_file
from helpers import toy_dataset

needs_tomllib = pytest.mark.skipif(sys.version_info < (3, 11), reason="TOML recipe files need tomllib")


@needs_tomllib
def test_a_toml_file_changes_a_registered_recipe_key_by_key(tmp_path):
    f = tmp_path / "my_lenet.toml"
    f.write_text('base = "mnist-lenet5-fast"\nepochs = 20\nlabel_smoothing = 0.05\n'
                 '[augment]\nrotation = 15\n')
    base = get_recipe("mnist-lenet5-fast")
    r = get_recipe(str(f))
    assert (r.name, r.epochs, r.label_smoothing, r.augment.rotation) == ("my_lenet", 20, 0.05, 15)
    assert r.augment.zoom == base.augment.zoom and r.augment.zoom > 0  # the base's other keys stay
    assert r.source == "mnist-lenet5-fast, changed by my_lenet.toml"
    assert r.model_dump(exclude={"name", "source", "epochs", "label_smoothing", "augment"}) == \
        base.model_dump(exclude={"name", "source", "epochs", "label_smoothing", "augment"})
    assert get_recipe(f, ["epochs=2"]).epochs == 2  # --set applies on top of the file


@needs_tomllib
def test_a_toml_file_without_base_needs_the_required_fields(tmp_path):
    f = tmp_path / "scratch.toml"
    f.write_text('dataset = "mnist"\nmodel = "lenet5"\nepochs = 3\nbatch_size = 128\n'
                 '[augment]\nrotation = 10\n')
    r = load_recipe_file(f)
    assert (r.name, r.dataset, r.model, r.epochs, r.batch_size) == ("scratch", "mnist", "lenet5", 3, 128)
    assert r.augment.rotation == 10 and r.augment.zoom == 0 and r.optimizer == "adam"
    f.write_text('dataset = "mnist"\nmodel = "lenet5"\nepochs = "three"\n')
    with pytest.raises(RecipeError, match=rf"recipe file {f}:\n  epochs='three': Input should be a valid "
                                          r"integer.*\n  batch_size is required \(or start from a registered"):
        load_recipe_file(f)


@needs_tomllib
def test_a_recipe_file_reports_every_bad_key_at_once(tmp_path):
    f = tmp_path / "r.toml"
    f.write_text('base = "mnist-lenet5-fast"\nepoch = 1\nlrr = 0.1\nbatch_size = "x"\n[augment]\nrotaton = 3\n')
    with pytest.raises(RecipeError) as e:
        load_recipe_file(f)
    lines = str(e.value).split("\n  ")
    assert lines[0] == f"recipe file {f}:"
    assert lines[1:4] == ["unknown recipe key 'epoch'. Did you mean epochs, warmup_epochs, eps?",
                          "unknown recipe key 'lrr'. Did you mean lr?",
                          "unknown recipe key 'augment.rotaton'. Did you mean augment.rotation?"]
    assert lines[4].startswith("Allowed keys: name, ") and lines[5].startswith("Allowed keys of augment: rotation, ")
    assert lines[6].startswith("batch_size='x': Input should be a valid integer") and len(lines) == 7


@needs_tomllib
@pytest.mark.parametrize("text, message", [
    ('base = "mnist-lenet5-fast"\nepoch = 1\n', "unknown recipe key 'epoch'. Did you mean epochs"),
    ('base = "mnist-lenet5-fast"\n[augment]\nrotaton = 1\n',
     "unknown recipe key 'augment.rotaton'. Did you mean augment.rotation\\? Allowed keys of augment: rotation"),
    ('dataset = "mnist"\nmodel = "lenet5"\nepochs = 1\nbatch_size = 8\n[augment]\nrotaton = 1\n',
     "unknown recipe key 'augment.rotaton'"),
    ('base = "mnist-lenet-fast"\n', "base: unknown recipe 'mnist-lenet-fast'; did you mean 'mnist-lenet5-fast'"),
    ('base = 3\n', "base must be a registered recipe's name, got 3"),
    ('epochs = = 3\n', "not valid TOML: Invalid value \\(at line 1, column 10\\)"),
    ('base = "mnist-lenet5-fast"\nlr = -1\n', "lr=-1: Input should be greater than 0"),
    ('base = "mnist-lenet5-fast"\nmodel = "lenet"\n', "unknown model 'lenet'; did you mean 'lenet5'"),
])
def test_a_bad_recipe_file_is_named_with_the_key_and_what_is_allowed(tmp_path, text, message):
    f = tmp_path / "r.toml"
    f.write_text(text)
    with pytest.raises(RecipeError, match=f"(?s)^recipe file {f}: .*{message}"):
        get_recipe(str(f))


def test_json_files_and_missing_files(tmp_path):
    f = tmp_path / "r.json"
    f.write_text(json.dumps({"base": "mnist-cnn-small-fast", "augment": {"rotation": 5}, "seed": 3}))
    r = get_recipe(str(f))
    assert (r.name, r.seed, r.augment.rotation, r.model) == ("r", 3, 5, "mnist-cnn-small")
    f.write_text("[1, 2]")
    with pytest.raises(RecipeError, match="expected an object of recipe keys, got list"):
        get_recipe(str(f))
    f.write_text('{"base": ')
    with pytest.raises(RecipeError, match=f"recipe file {f}: not valid JSON: Expecting value: line 1"):
        get_recipe(str(f))
    f.write_bytes(b'{"base": "\xff"}')
    with pytest.raises(RecipeError, match=f"recipe file {f}: not UTF-8 text \\(invalid start byte at byte 10\\)"):
        get_recipe(str(f))
    with pytest.raises(FileNotFoundError, match="recipe file .*nope.toml does not exist"):
        get_recipe(str(tmp_path / "nope.toml"))


def test_a_runs_recipe_json_is_that_runs_exact_recipe(tmp_path):
    recipe = get_recipe("mnist-cnn-small-fast", ["dataset=toy", "epochs=1", "batch_size=32",
                                                 "val_fraction=0.2", "early_stopping.patience=4"])
    cnnlab.train(recipe, dataset=toy_dataset(), run_dir=tmp_path / "run", log=lambda m: None)
    again = get_recipe(str(tmp_path / "run" / "recipe.json"))
    assert again == recipe
    assert get_recipe(tmp_path / "run" / "recipe.json", ["seed=1"]).seed == 1


@needs_tomllib
def test_cnnlab_train_takes_a_recipe_file(tmp_path, capsys, monkeypatch):
    """``cnnlab train FILE``: the run folder is named after the file, its recipe.json holds the
    file's recipe; a bad file is one line and exit code 2."""
    from cnnlab import runs
    from cnnlab.cli import main
    f = tmp_path / "tiny.toml"
    f.write_text('base = "mnist-cnn-small-fast"\ndataset = "toy"\nepochs = 1\nbatch_size = 32\n'
                 'val_fraction = 0.2\n')
    real_load = runs.load_dataset
    monkeypatch.setattr(runs, "load_dataset", lambda name, *a, **k: toy_dataset() if name == "toy"
                        else real_load(name, *a, **k))
    assert main(["train", str(f), "--run-dir", str(tmp_path / "run")]) == 0
    meta = json.loads((tmp_path / "run" / "recipe.json").read_text())
    assert meta["recipe"]["name"] == "tiny" and meta["recipe"]["epochs"] == 1
    f.write_text('base = "mnist-cnn-small-fast"\nepcohs = 1\n')
    assert main(["train", str(f)]) == 2
    assert "unknown recipe key 'epcohs'. Did you mean epochs" in capsys.readouterr().err


@pytest.mark.parametrize("full", [False, True])
def test_cnnlab_show_prints_a_recipe_file_that_loads_back_as_the_same_recipe(tmp_path, capsys, full):
    """Every registered recipe, shown (the fields it sets, or all) and read back as a file: the
    same training; without --full a recipe of its own, named by its file (an edited copy must not
    pass for the registered recipe in its run folder's name, compare or the results)."""
    from cnnlab.cli import main
    from cnnlab.recipes import RECIPES
    identity = {"name", "source", "kind", "literature"}
    for name in RECIPES.list():
        assert main(["show", name] + (["--full"] if full else [])) == 0
        f = tmp_path / "mine.json"
        f.write_text(capsys.readouterr().out)
        got, want = get_recipe(str(f)), get_recipe(name)
        if full:
            assert got == want, name
        else:
            assert got.model_dump(exclude=identity) == want.model_dump(exclude=identity), name
            assert (got.name, got.source, got.kind) == ("mine", "recipe file mine.json", "faithful")
    assert main(["show", "mnist-lenet5-fast", "--set", "epochs=20"] + (["--full"] if full else [])) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["epochs"] == 20 and ("momentum" in shown) == full and ("source" in shown) == full


def test_json_in_a_toml_file_is_named(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text('{\n  "epochs": 3\n}\n')
    with pytest.raises(RecipeError, match="mine.toml: not valid TOML.*looks like JSON.*name it .json"):
        get_recipe(str(f))
