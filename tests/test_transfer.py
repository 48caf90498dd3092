"""Transfer learning: pretrained weights from files cnnlab writes, feature extraction, fine-tuning."""
import json

import pytest
import torch
from safetensors.torch import save_file

import cnnlab
from cnnlab.recipes import Recipe
from cnnlab.registry import UnknownNameError
from cnnlab.transfer import (find_weights, freeze_before, frozen_norms_eval, load_pretrained,
                             read_state_dict)
from helpers import toy_dataset

MODEL = "fashion-cnn-bn"  # BatchNorm in its features and its classifier


class NotATensor:
    pass


def quiet(msg):
    pass


def trained_source(classes=4):
    """A model with weights that differ from any fresh initialisation (BN statistics included)."""
    torch.manual_seed(1)
    m = cnnlab.create_model(MODEL, num_classes=classes)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p))
        for name, b in m.named_buffers():
            if "running" in name:
                b.uniform_(0.5, 1.5)
    return m


def same(a, b):
    return a.shape == b.shape and torch.equal(a, b)


def test_torchvision_format_pth_loads_the_features_only(tmp_path):
    src = trained_source(classes=4)
    torch.save(src.state_dict(), tmp_path / "w.pth")  # what torchvision's files hold
    dst = cnnlab.create_model(MODEL, num_classes=2)
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    got = load_pretrained(dst, tmp_path / "w.pth", part="features")
    s, d = src.state_dict(), dst.state_dict()
    feats = [k for k in d if k.startswith("features.")]
    assert got["loaded"] == len(feats) and all(same(s[k], d[k]) for k in feats)
    # running statistics are part of what transfers
    assert any("running_var" in k for k in feats)
    assert got["new"] == [k for k in d if not k.startswith("features.")]
    assert all(same(before[k], d[k]) for k in got["new"])  # the classifier keeps its own init
    assert set(got["unused"]) == {k for k in s if k.startswith("classifier.")}


def test_part_all_keeps_a_new_head_for_other_classes(tmp_path):
    src = trained_source(classes=4)
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, tmp_path / "w.safetensors")
    dst = cnnlab.create_model(MODEL, num_classes=2)
    got = load_pretrained(dst, tmp_path / "w.safetensors", part="all")
    s, d = src.state_dict(), dst.state_dict()
    assert got["new"] == ["classifier.fc2.weight", "classifier.fc2.bias"]
    assert all(same(s[k], d[k]) for k in d if k not in got["new"])
    assert d["classifier.fc2.weight"].shape == (2, s["classifier.fc2.weight"].shape[1])
    assert set(got["unused"]) == {"classifier.fc2.weight", "classifier.fc2.bias"}


def test_wrapped_ddp_checkpoint_is_unwrapped(tmp_path):
    src = trained_source()
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}, "epoch": 3},
               tmp_path / "ddp.pt")
    state = read_state_dict(tmp_path / "ddp.pt")
    assert set(state) == set(src.state_dict())
    dst = cnnlab.create_model(MODEL, num_classes=4)
    load_pretrained(dst, tmp_path / "ddp.pt", part="all")
    assert all(same(v, dst.state_dict()[k]) for k, v in src.state_dict().items())


def test_shapes_that_do_not_fit_are_named(tmp_path):
    torch.save(trained_source().state_dict(), tmp_path / "w.pth")
    bigger = cnnlab.create_model(MODEL, num_classes=4, input_size=(32, 32))  # a wider flatten
    with pytest.raises(ValueError, match=r"w\.pth.*part 'features'.*classifier\.fc1\.weight "
                                         r"\(\d+, 3136\) in the file, \(\d+, 4096\) in the model"):
        load_pretrained(bigger, tmp_path / "w.pth", part="all")
    other = cnnlab.create_model("mnist-cnn-small")  # another architecture altogether
    with pytest.raises(ValueError, match=r"missing features\.conv1\.weight"):
        load_pretrained(other, tmp_path / "w.pth")


def test_a_deeper_networks_file_is_refused_not_loaded_in_part(tmp_path):
    """resnet56's blocks have resnet20's shapes: its file filled resnet20's first three blocks of each
    stage and left the rest out with no error, where load_state_dict(strict=True) names them."""
    torch.save(cnnlab.create_model("resnet56").state_dict(), tmp_path / "r56.pth")
    for part in ("all", "features"):
        with pytest.raises(ValueError, match=r"r56\.pth: weights do not fit .*unexpected layer1\.3\.conv1\.weight"):
            load_pretrained(cnnlab.create_model("resnet20"), tmp_path / "r56.pth", part)
    sd = trained_source().state_dict()
    torch.save({**sd, "features.block9.conv.weight": torch.ones(3)}, tmp_path / "extra.pth")
    with pytest.raises(ValueError, match=r"unexpected features\.block9\.conv\.weight"):
        load_pretrained(cnnlab.create_model(MODEL, num_classes=4), tmp_path / "extra.pth")
    # part 'features' leaves the file's head alone, whatever its names
    torch.save({**sd, "classifier.other.weight": torch.ones(3)}, tmp_path / "head.pth")
    load_pretrained(cnnlab.create_model(MODEL, num_classes=4), tmp_path / "head.pth")


def test_pickled_objects_are_refused_not_run(tmp_path):
    torch.save({"features.w": NotATensor()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match=r"evil\.pth: holds Python objects") as e:
        read_state_dict(tmp_path / "evil.pth")
    # the refused global named, on one line; not PyTorch's advice (with terminal escapes) to load it
    # with weights_only=False
    assert "Unsupported global: GLOBAL test_transfer.NotATensor was not an allowed global" in str(e.value)
    assert "\n" not in str(e.value) and "\x1b" not in str(e.value) and "can still be loaded" not in str(e.value)


@pytest.mark.parametrize("name, content, error", [
    ("cut.safetensors", None, r"cut\.safetensors: not a readable safetensors file"),
    ("cut.pth", None, r"cut\.pth: not a readable PyTorch weights file \(RuntimeError: PytorchStreamReader failed "
                      r"reading zip archive: failed finding central directory\)$"),
    ("empty.pth", b"", r"empty\.pth: not a readable PyTorch weights file \(EOFError: the file is empty or cut short\)"),
    ("w.h5", b"\x89HDF", r"w\.h5: unknown weights format '\.h5'"),
    ("list.pth", [torch.ones(2)], r"list\.pth: not a state_dict"),
])
def test_bad_weight_files_are_named(tmp_path, name, content, error):
    path = tmp_path / name
    if content is None:  # a truncated copy of a real file
        full = tmp_path / ("full" + path.suffix)
        state = {"features.w": torch.ones(64, 64)}
        save_file(state, full) if path.suffix == ".safetensors" else torch.save(state, full)
        path.write_bytes(full.read_bytes()[:100])
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(ValueError, match=error):
        read_state_dict(path)


def test_find_weights_by_file_run_folder_or_recipe_name(tmp_path):
    import os
    import time
    runs = tmp_path / "runs"
    older, newer = runs / "src-20260101-000000", runs / "keep" / "src-seed0"
    for i, d in enumerate((older, newer)):
        d.mkdir(parents=True)
        (d / "recipe.json").write_text(json.dumps({"recipe": {"name": "src", "seed": 0}}))
        (d / "best.safetensors").write_bytes(b"x")
        (d / "test_metrics.json").write_text("{}")  # finished
        os.utime(d / "best.safetensors", (time.time() + i, time.time() + i))
    assert find_weights(older, runs) == older / "best.safetensors"
    assert find_weights(older / "best.safetensors", runs) == older / "best.safetensors"
    assert find_weights("src", runs) == newer / "best.safetensors"  # the newest run of the recipe
    # a run trained with --run-dir runs/feat is found by the recipe name in its recipe.json
    mine = runs / "feat"
    mine.mkdir()
    (mine / "recipe.json").write_text(json.dumps({"recipe": {"name": "other", "seed": 0}}))
    (mine / "best.safetensors").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match=r"the runs of 'other' under .* have not finished \(feat\)"):
        find_weights("other", runs)  # killed or still training: not a source
    (mine / "test_metrics.json").write_text("{}")
    assert find_weights("other", runs) == mine / "best.safetensors"
    killed = runs / "src-killed"  # the newest run of src, unfinished: passed over
    killed.mkdir()
    (killed / "recipe.json").write_text(json.dumps({"recipe": {"name": "src", "seed": 0}}))
    (killed / "best.safetensors").write_bytes(b"x")
    os.utime(killed / "best.safetensors", (time.time() + 5, time.time() + 5))
    assert find_weights("src", runs) == newer / "best.safetensors"  # feat is newer, but not of src
    (older / "recipe.json").write_text(json.dumps({"recipe": {"name": "src", "seed": 1}}))
    assert find_weights("src", runs, seed=1) == older / "best.safetensors"  # the same seed's
    assert find_weights("src", runs, seed=2) == newer / "best.safetensors"  # none: the newest
    unfinished = runs / "src-seed3"  # seed 3's only run was killed: not another seed's in its place
    unfinished.mkdir()
    (unfinished / "recipe.json").write_text(json.dumps({"recipe": {"name": "src", "seed": 3}}))
    (unfinished / "best.safetensors").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match=r"the runs of 'src' with seed 3 .* have not finished"):
        find_weights("src", runs, seed=3)
    with pytest.raises(FileNotFoundError, match=r"`cnnlab train mnist-cnn-small`"):
        find_weights("mnist-cnn-small", runs)
    # README's torchvision file, not downloaded: a missing file, not a recipe to train
    with pytest.raises(FileNotFoundError, match=r"^pretrained: weights file vgg16_bn-b63d85b0.pth not found$"):
        find_weights("vgg16_bn-b63d85b0.pth", runs)
    (runs / "stopped").mkdir()
    (runs / "stopped" / "recipe.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"stopped has no best\.safetensors"):
        find_weights(runs / "stopped", runs)


def test_freeze_before_counts_and_names():
    m = cnnlab.create_model(MODEL, num_classes=4)
    total = sum(p.numel() for p in m.parameters())
    trainable, frozen = freeze_before(m, "classifier")
    head = sum(p.numel() for p in m.classifier.parameters())
    assert (trainable, frozen) == (head, total - head)
    assert all(not p.requires_grad for p in m.features.parameters())
    trainable, frozen = freeze_before(m, "features.block2")
    assert all(p.requires_grad for p in m.features.block2.parameters())
    assert not any(p.requires_grad for p in m.features.block1.parameters())
    assert freeze_before(m, None) == (total, 0)
    # parameters a model keeps fixed stay fixed: LeNet-5's RBF prototypes, airbench's BN scales
    for name, start in (("lenet5-original", "classifier"), ("airbench94", "features.block3")):
        m = cnnlab.create_model(name)
        fixed = {n for n, p in m.named_parameters() if not p.requires_grad}
        assert fixed, name
        trainable, frozen = freeze_before(m, start)
        assert fixed <= {n for n, p in m.named_parameters() if not p.requires_grad}
        assert trainable == sum(p.numel() for p in m.parameters() if p.requires_grad)
        freeze_before(m, None)
        assert fixed == {n for n, p in m.named_parameters() if not p.requires_grad}
        import copy
        assert copy.deepcopy(m).fixed_parameters == fixed  # a plain module attribute: it travels
    # frozen by hand (Keras' base.trainable = False), then unfrozen from a block on: it trains
    m = cnnlab.create_model(MODEL, num_classes=4)
    m.features.requires_grad_(False)
    freeze_before(m, "features.block2")
    assert all(p.requires_grad for p in m.features.block2.parameters())
    m = cnnlab.create_model(MODEL, num_classes=4)
    with pytest.raises(UnknownNameError, match=r"'features\.blok2'.*did you mean 'features\.block2'"):
        freeze_before(m, "features.blok2")


def test_frozen_batchnorm_keeps_its_statistics():
    m = cnnlab.create_model(MODEL, num_classes=4)
    freeze_before(m, "classifier")
    m.train()
    assert frozen_norms_eval(m) == 4  # the four in features (two per block)
    assert not m.features.block1.bn1.training and m.classifier.bn.training
    stats = m.features.block1.bn1.running_mean.clone()
    m(torch.rand(8, 1, 28, 28) * 3)
    assert torch.equal(stats, m.features.block1.bn1.running_mean)


def test_feature_extraction_then_fine_tuning_runs(tmp_path):
    """Pretrain on a 4-class task, then train a 2-class task's head on the frozen base, then
    fine-tune the last block: frozen weights and statistics stay exactly the pretrained ones."""
    base = Recipe(name="src", source="test", dataset="toy", model=MODEL, epochs=2, batch_size=64,
                  eval_batch_size=100, val_fraction=0.2, precision="fp32")
    cnnlab.train(base, dataset=toy_dataset(classes=4), run_dir=tmp_path / "src", log=quiet)
    src = load_sd(tmp_path / "src")
    target = toy_dataset(n_train=200, classes=2, seed=1)
    lines = []
    fx = base.model_copy(update=dict(name="fx", pretrained=str(tmp_path / "src"),
                                     trainable_from="classifier"))
    run = cnnlab.train(fx, dataset=target, run_dir=tmp_path / "fx", log=lines.append)
    got = load_sd(tmp_path / "fx")
    assert all(same(src[k], got[k]) for k in src if k.startswith("features."))
    assert not same(src["classifier.fc1.weight"], got["classifier.fc1.weight"])
    assert any(line.startswith(f"pretrained (features): {len([k for k in src if k.startswith('features.')])} "
                               f"tensors loaded from {tmp_path / 'src' / 'best.safetensors'}; the model's "
                               "own, initialised afresh: classifier.") for line in lines)
    assert any(line.startswith("trainable from classifier: ") for line in lines)
    assert run.test_metrics["accuracy"] > 0.9
    assert json.loads((tmp_path / "fx" / "recipe.json").read_text())["recipe"]["trainable_from"] == "classifier"

    ft = fx.model_copy(update=dict(name="ft", pretrained=str(tmp_path / "fx"), pretrained_part="all",
                                   trainable_from="features.block2", lr=1e-4))
    cnnlab.train(ft, dataset=target, run_dir=tmp_path / "ft", log=quiet)
    tuned = load_sd(tmp_path / "ft")
    assert all(same(got[k], tuned[k]) for k in got if k.startswith("features.block1."))
    assert not same(got["features.block2.conv1.weight"], tuned["features.block2.conv1.weight"])


def test_recipe_validates_the_new_fields():
    base = Recipe(name="r", source="t", dataset="toy", model=MODEL, epochs=1, batch_size=8)
    assert base.override(["pretrained=runs/x", "trainable_from=classifier"]).pretrained == "runs/x"
    with pytest.raises(ValueError, match="pretrained_part"):
        base.override(["pretrained_part=top"])


def load_sd(run_dir):
    from safetensors.torch import load_file
    return load_file(str(run_dir / "best.safetensors"))


def test_marked_batchnorm_trains_its_affine_but_keeps_its_statistics():
    m = cnnlab.create_model(MODEL, num_classes=4)
    freeze_before(m, "features.block2")
    from cnnlab.transfer import keep_running_stats
    assert keep_running_stats(m, "features") == 4
    m.train()
    assert frozen_norms_eval(m) == 4 and m.classifier.bn.training
    bn = m.features.block2.bn1
    assert bn.weight.requires_grad and not bn.training
    stats = bn.running_var.clone()
    m(torch.rand(8, 1, 28, 28)).sum().backward()
    assert torch.equal(stats, bn.running_var) and bn.weight.grad is not None


def test_a_marked_batchnorm_without_affine_parameters_keeps_its_statistics_too():
    """keep_running_stats counted it, and frozen_norms_eval left it training on the batches."""
    from cnnlab.transfer import keep_running_stats
    m = torch.nn.Module()
    m.features = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4, affine=False))
    m.classifier = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.BatchNorm1d(36, affine=False))
    assert keep_running_stats(m, "features") == 1
    m.train()
    assert frozen_norms_eval(m) == 1 and not m.features[1].training and m.classifier[1].training
    stats = m.features[1].running_mean.clone()
    m.features(torch.rand(4, 1, 5, 5) * 3)
    assert torch.equal(stats, m.features[1].running_mean)


def test_files_without_batchnorm_counters_load(tmp_path):
    """Files saved before PyTorch 0.4.1 (some of torchvision's) have no num_batches_tracked:
    load_state_dict accepts them, and so does load_pretrained."""
    src = trained_source()
    sd = {k: v for k, v in src.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(sd, tmp_path / "old.pth")
    m = cnnlab.create_model(MODEL, num_classes=4)
    got = load_pretrained(m, tmp_path / "old.pth", "all")
    assert all(same(v, m.state_dict()[k]) for k, v in sd.items())
    assert got["loaded"] == len(sd)


def test_lr_find_keeps_frozen_batchnorm_statistics():
    from cnnlab.training.lr_find import lr_find
    from cnnlab.training import build_optimizer
    m = cnnlab.create_model(MODEL, num_classes=4)
    freeze_before(m, "classifier")
    stats = m.features.block1.bn1.running_mean.clone()
    opt = build_optimizer([p for p in m.parameters() if p.requires_grad], "adam", 1e-3)
    batches = [(torch.rand(8, 1, 28, 28) * 3, torch.randint(0, 4, (8,)))]
    lr_find(m, opt, torch.nn.CrossEntropyLoss(), batches, steps=3)
    assert torch.equal(stats, m.features.block1.bn1.running_mean)


def test_a_resumed_fine_tuning_run_does_not_need_its_source_again(tmp_path):
    """The saved state replaces every weight on resume: the pretrained file may be gone. The
    file a run loaded is recorded in its recipe.json."""
    import shutil
    base = Recipe(name="src", source="test", dataset="toy", model=MODEL, epochs=1, batch_size=64,
                  eval_batch_size=100, val_fraction=0.2, precision="fp32")
    cnnlab.train(base, dataset=toy_dataset(classes=4), run_dir=tmp_path / "src", log=quiet)
    ft = base.model_copy(update=dict(name="ft", pretrained=str(tmp_path / "src"), epochs=2))

    def killer(msg):  # dies in epoch 2, after epoch 1's state was saved
        if msg.startswith("epoch 2/2"):
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        cnnlab.train(ft, dataset=toy_dataset(classes=4), run_dir=tmp_path / "ft", log=killer)
    meta = json.loads((tmp_path / "ft" / "recipe.json").read_text())
    assert meta["pretrained"]["file"] == str(tmp_path / "src" / "best.safetensors")
    shutil.rmtree(tmp_path / "src")
    run = cnnlab.train(None, resume=tmp_path / "ft", dataset=toy_dataset(classes=4), log=quiet)
    assert len(run.history) == 2
    assert json.loads((tmp_path / "ft" / "recipe.json").read_text())["pretrained"] == meta["pretrained"]


def test_resnet_views_work_for_freezing_and_loading_the_base(tmp_path):
    """A ResNet's features and classifier are views over torchvision-named modules (no
    features./classifier. prefix): freezing, loading the base and marking its BatchNorms find
    their tensors by identity, as for any other model."""
    from cnnlab.transfer import keep_running_stats
    src = cnnlab.create_model("resnet20", num_classes=10)
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, tmp_path / "r20.safetensors")
    m = cnnlab.create_model("resnet20", num_classes=4)
    got = load_pretrained(m, tmp_path / "r20.safetensors", "features")
    assert got["new"] == ["fc.weight", "fc.bias"] and sorted(got["unused"]) == ["fc.bias", "fc.weight"]
    assert all(same(v, src.state_dict()[k]) for k, v in m.state_dict().items() if not k.startswith("fc."))
    trainable, frozen = freeze_before(m, "classifier")
    assert [n for n, p in m.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]
    assert trainable == 64 * 4 + 4
    assert keep_running_stats(m, "features") == 19  # every BatchNorm of the base
