import pytest

from cnnlab.registry import Registry, UnknownNameError


def test_register_get_list():
    r = Registry("thing")
    r.register("vgg16", 1)
    r.register("vgg19", 2)
    r.register("resnet20", 3)
    assert r.get("vgg16") == 1
    assert r.list("vgg*") == ["vgg16", "vgg19"]
    assert "resnet20" in r and len(r) == 3


def test_duplicate_is_an_error():
    r = Registry("thing")
    r.register("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        r.register("a", 2)


def test_unknown_name_suggests_close_matches():
    r = Registry("model")
    for n in ("mnist-cnn-small", "mnist-cnn-wide", "lenet5"):
        r.register(n, n)
    with pytest.raises(UnknownNameError, match="did you mean 'mnist-cnn-small'"):
        r.get("mnist-cnn-smal")


def test_unknown_name_suggestions_ignore_case():
    """'VGG16' and 'ZFNet', as papers write them, share too few letters with 'vgg16' and 'zfnet'
    case for case to be suggested at all."""
    r = Registry("model")
    for n in ("vgg16", "vgg16_bn", "zfnet", "zfnet-cifar", "resnet20"):
        r.register(n, n)
    with pytest.raises(UnknownNameError, match="did you mean 'vgg16'"):
        r.get("VGG16")
    with pytest.raises(UnknownNameError, match="did you mean 'zfnet'"):
        r.get("ZFNet")
    with pytest.raises(UnknownNameError, match="did you mean 'resnet20'"):
        r.get("ResNet-20")
