"""Tests for rsengine.checkpoints: rsengine round trips, the original locuslab/smoothing format
(Sequential(NormalizeLayer, model), DataParallel for ResNet-50, legacy serialization), and every
CheckpointError case."""
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from rsengine.checkpoints import (
    CheckpointError,
    CheckpointNotFoundError,
    LoadedCheckpoint,
    load_checkpoint,
    load_classifier,
    save_checkpoint,
)
from rsengine.data import DATASET_STATS
from rsengine.models import ARCHITECTURES, build_model
from vision_extra import needs


class NormalizeLayer(nn.Module):
    """As in locuslab/smoothing's datasets.py: mean and std are plain attributes, not state."""

    def __init__(self, means, sds):
        super().__init__()
        self.means = torch.tensor(means).view(1, -1, 1, 1)
        self.sds = torch.tensor(sds).view(1, -1, 1, 1)

    def forward(self, x):
        return (x - self.means) / self.sds


class Opaque:
    """Not a type weights_only loading knows."""


def _randomized(arch, seed=0, num_classes=None):
    torch.manual_seed(seed)
    model = build_model(arch, num_classes)
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            c = module.num_features
            module.weight.data = torch.rand(c, generator=gen) + 0.5
            module.bias.data = torch.randn(c, generator=gen) * 0.1
            module.running_mean = torch.randn(c, generator=gen) * 0.1
            module.running_var = torch.rand(c, generator=gen) + 0.5
            module.num_batches_tracked.fill_(1234)
    return model.eval()


def _one_line(info, path):
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    return message


# ------------------------------------------------------------------------------ rsengine format


def test_round_trip_mnist(tmp_path):
    model = _randomized("mnist_cnn")
    path = tmp_path / "mnist.pt"
    save_checkpoint(path, model, "mnist_cnn", sigma=0.25, mean=(0.1307,), std=[0.3081],
                    extra={"history": [{"loss": 0.1}], "note": "x", "t": torch.ones(2)})
    loaded = load_checkpoint(path)
    assert isinstance(loaded, LoadedCheckpoint)
    assert (loaded.arch, loaded.num_classes, loaded.sigma) == ("mnist_cnn", 10, 0.25)
    assert loaded.mean == (0.1307,) and loaded.std == (0.3081,)
    assert loaded.extra["history"] == [{"loss": 0.1}] and torch.equal(loaded.extra["t"], torch.ones(2))
    assert not loaded.model.training
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))
    # Plain types only: torch's safe loader reads it without rsengine's help.
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"arch", "state_dict", "rsengine"}


def test_round_trip_without_metadata_and_custom_classes(tmp_path):
    model = _randomized("cifar_resnet20", num_classes=100)
    path = tmp_path / "c.pt"
    save_checkpoint(str(path), model, "cifar_resnet20")
    loaded = load_checkpoint(path)
    assert (loaded.num_classes, loaded.mean, loaded.std, loaded.sigma, loaded.extra) == (100, None, None, None, None)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))
    assert torch.equal(loaded.model.layer1[0].bn1.num_batches_tracked, torch.tensor(1234))


def test_save_unwraps_data_parallel(tmp_path):
    model = _randomized("mnist_cnn")
    save_checkpoint(tmp_path / "m.pt", nn.DataParallel(model), "mnist_cnn", sigma=0.0)
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert loaded.sigma == 0.0
    assert torch.equal(loaded.model.fc2.weight, model.fc2.weight)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"arch": "lenet"}, ValueError, "Expected `arch` to name a model source"),
        ({"arch": "cifar_resnet20"}, ValueError, "does not match arch 'cifar_resnet20'"),
        ({"sigma": -0.5}, ValueError, "Expected `sigma`"),
        ({"sigma": "0.25"}, TypeError, "Expected `sigma`"),
        ({"mean": (0.1,)}, ValueError, "both given or both None"),
        ({"mean": (0.1,), "std": (0.0,)}, ValueError, "Expected `std` to be a finite number > 0, got 0.0"),
        ({"mean": (0.1, 0.2), "std": (0.3,)}, ValueError, "same non-zero length"),
        ({"extra": {"obj": Opaque()}}, TypeError, "Expected `extra` to hold only"),
        ({"extra": [np.float64(0.1)]}, TypeError, "got float64 "),
    ],
    ids=["unknown-arch", "wrong-arch", "negative-sigma", "string-sigma", "mean-only", "zero-std",
         "length-mismatch", "opaque-extra", "numpy-scalar-extra"],
)
def test_save_checkpoint_validates(tmp_path, kwargs, error, match):
    args = {"arch": "mnist_cnn", **kwargs}
    with pytest.raises(error, match=match):
        save_checkpoint(tmp_path / "m.pt", build_model("mnist_cnn"), args.pop("arch"), **args)
    assert not (tmp_path / "m.pt").exists()


# ------------------------------------------------------------------------------ original format


def _save_original(path, arch, model, *, data_parallel=False, legacy=False, drop_num_batches_tracked=False):
    """A checkpoint as locuslab/smoothing's train.py wrote it."""
    mean, std = DATASET_STATS["imagenet" if arch == "resnet50" else "cifar10"]
    wrapped = nn.Sequential(NormalizeLayer(mean, std), model)
    state_dict = wrapped.state_dict()
    if data_parallel:  # Sequential(NormalizeLayer, DataParallel(resnet50))
        state_dict = {"1.module." + k[len("1."):]: v for k, v in state_dict.items()}
    if drop_num_batches_tracked:  # files written by PyTorch < 0.4.1
        state_dict = {k: v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    torch.save({"epoch": 90, "arch": arch, "state_dict": state_dict, "optimizer": optimizer.state_dict()},
               path, _use_new_zipfile_serialization=not legacy)
    return wrapped


@pytest.mark.parametrize("arch", ["cifar_resnet20", "cifar_resnet110"])
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_load_original_cifar_checkpoint(tmp_path, arch, legacy):
    model = _randomized(arch)
    path = tmp_path / "checkpoint.pth.tar"
    wrapped = _save_original(path, arch, model, legacy=legacy)
    loaded = load_checkpoint(path)
    assert (loaded.arch, loaded.num_classes, loaded.sigma) == (arch, 10, None)
    assert (loaded.mean, loaded.std) == DATASET_STATS["cifar10"]
    assert list(loaded.model.state_dict())[0] == "conv1.weight"
    pixels = torch.rand(3, 3, 32, 32)
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in (loaded.mean, loaded.std))
    with torch.no_grad():
        assert torch.equal(loaded.model((pixels - mean) / std), model((pixels - mean) / std))
        # The certified function is unchanged: noise-free pixels through the original wrapper.
        torch.testing.assert_close(loaded.model((pixels - mean) / std), wrapped(pixels))


@needs("torchvision")
def test_load_original_imagenet_checkpoint_into_torchvisions_resnet50(tmp_path):
    model = _randomized("resnet50")
    path = tmp_path / "checkpoint.pth.tar"
    _save_original(path, "resnet50", model, data_parallel=True)
    keys = list(torch.load(path, weights_only=True)["state_dict"])
    assert keys[0] == "1.module.conv1.weight"
    loaded = load_checkpoint(path)
    assert (loaded.arch, loaded.num_classes, loaded.sigma) == ("resnet50", 1000, None)
    assert (loaded.mean, loaded.std) == DATASET_STATS["imagenet"]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))


def test_load_original_checkpoint_without_num_batches_tracked(tmp_path):
    model = _randomized("cifar_resnet20")
    path = tmp_path / "old.pth.tar"
    _save_original(path, "cifar_resnet20", model, legacy=True, drop_num_batches_tracked=True)
    loaded = load_checkpoint(path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))


# --------------------------------------------------------------------------------------- errors


def test_missing_file(tmp_path):
    path = tmp_path / "nope.pt"
    with pytest.raises(CheckpointNotFoundError) as info:
        load_checkpoint(path)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, CheckpointError)
    assert isinstance(info.value, ValueError)
    _one_line(info, path)


def test_directory(tmp_path):
    with pytest.raises(CheckpointError, match="is a directory") as info:
        load_checkpoint(tmp_path)
    _one_line(info, tmp_path)


def _write_bytes(path, content):
    path.write_bytes(content)
    return path


def _truncated(path):
    save_checkpoint(path, build_model("mnist_cnn"), "mnist_cnn")
    return _write_bytes(path, path.read_bytes()[:2000])


@pytest.mark.parametrize(
    "make",
    [
        lambda p: _write_bytes(p, b"hello, I am a text file\n"),
        lambda p: _write_bytes(p, b""),
        _truncated,
        lambda p: _write_bytes(p, pickle.dumps({"arch": "mnist_cnn"}, protocol=2)),
    ],
    ids=["text", "empty", "truncated-zip", "plain-pickle"],
)
def test_not_a_torch_file(tmp_path, make):
    path = make(tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint or corrupt") as info:
        load_checkpoint(path)
    _one_line(info, path)


def test_unsafe_pickle_refused_then_trusted(tmp_path):
    model = _randomized("mnist_cnn")
    path = tmp_path / "unsafe.pt"
    torch.save({"arch": "mnist_cnn", "state_dict": model.state_dict(), "args": Opaque()}, path)
    with pytest.raises(CheckpointError, match=r"cannot be loaded safely: it needs .*Opaque.*trust_pickle=True") as info:
        load_checkpoint(path)
    _one_line(info, path)
    with pytest.warns(UserWarning, match="weights_only=False"):
        loaded = load_checkpoint(path, trust_pickle=True)
    assert torch.equal(loaded.model.conv1.weight, model.conv1.weight)


def test_whole_pickled_module_refused(tmp_path):
    path = tmp_path / "module.pt"
    torch.save(build_model("mnist_cnn"), path)
    with pytest.raises(CheckpointError, match=r"cannot be loaded safely: it needs rsengine\.models\.MnistCNN"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "content, match",
    [
        (torch.zeros(3), "expected a dict with 'arch' and 'state_dict', got Tensor"),
        ({"state_dict": {}}, "no 'arch' entry"),
        ({"arch": "mnist_cnn", "model": {}}, "no 'state_dict' entry"),
        ({"arch": "lenet5", "state_dict": {}}, "unknown arch 'lenet5': not rsengine's|neither rsengine's"),
        ({"arch": "mnist_cnn", "state_dict": [1, 2]}, "'state_dict' is a list"),
    ],
    ids=["not-a-dict", "no-arch", "no-state-dict", "unknown-arch", "state-dict-not-dict"],
)
def test_bad_structure(tmp_path, content, match):
    path = tmp_path / "bad.pt"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path)
    _one_line(info, path)


def test_bare_state_dict_says_how_to_name_its_model(tmp_path):
    path = tmp_path / "bare.pt"
    torch.save(build_model("mnist_cnn").state_dict(), path)
    with pytest.raises(CheckpointError, match=r"a plain state dict, which does not say its model: .*torchvision:NAME "
                                              r"--weights") as info:
        load_checkpoint(path)
    _one_line(info, path)


def test_a_dict_without_arch_lists_its_keys(tmp_path):
    path = tmp_path / "bare.pt"
    torch.save({"epoch": 3, "weights": build_model("mnist_cnn").state_dict()}, path)
    with pytest.raises(CheckpointError, match=r"no 'arch' entry.*this one epoch, weights; a file of weights alone"):
        load_checkpoint(path)


def test_state_dict_mismatches_listed(tmp_path):
    state_dict = dict(build_model("cifar_resnet20").state_dict())
    del state_dict["layer1.0.conv1.weight"]
    state_dict["layer9.0.conv1.weight"] = torch.zeros(1)
    state_dict["fc.weight"] = torch.zeros(7, 64)
    path = tmp_path / "mismatch.pt"
    torch.save({"arch": "cifar_resnet20", "state_dict": state_dict}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = _one_line(info, path)
    assert "state_dict does not match 'cifar_resnet20'" in message
    assert "1 missing keys (layer1.0.conv1.weight)" in message
    assert "1 unexpected keys (layer9.0.conv1.weight)" in message
    assert "1 shape mismatches (fc.weight (7, 64) != (10, 64))" in message


def test_wrong_arch_lists_a_few_keys(tmp_path):
    path = tmp_path / "wrong.pt"
    _save_original(path, "cifar_resnet110", _randomized("cifar_resnet20"))
    with pytest.raises(CheckpointError, match=r"missing keys \(layer1\.3\.conv1\.weight, [^)]*, \.\.\.\)") as info:
        load_checkpoint(path)
    _one_line(info, path)


def test_bad_rsengine_metadata(tmp_path):
    path = tmp_path / "meta.pt"
    torch.save({"arch": "mnist_cnn", "state_dict": build_model("mnist_cnn").state_dict(),
                "rsengine": {"version": 1, "num_classes": 10, "mean": [0.1], "std": None}}, path)
    with pytest.raises(CheckpointError, match="bad rsengine metadata: Expected `mean` and `std` both") as info:
        load_checkpoint(path)
    _one_line(info, path)


def test_every_architecture_round_trips_on_meta_shapes(tmp_path):
    # save_checkpoint checks shapes against a meta-device model; loading rebuilds the real one.
    for arch in ARCHITECTURES:
        if arch == "resnet50":
            continue  # torchvision's; covered by the original-format test above (100 MB per save)
        save_checkpoint(tmp_path / f"{arch}.pt", build_model(arch), arch)
        assert load_checkpoint(tmp_path / f"{arch}.pt").arch == arch


# ------------------------------------------------------------------------------ heads, any model, weights files


def test_an_original_checkpoint_with_another_head_loads_with_it(tmp_path):
    # The original format records no class count: it is read off the head's shapes.
    path = tmp_path / "checkpoint.pth.tar"
    _save_original(path, "cifar_resnet20", _randomized("cifar_resnet20", num_classes=100))
    loaded = load_checkpoint(path)
    assert loaded.num_classes == 100 and loaded.model.fc.out_features == 100


def test_a_factory_model_round_trips_with_num_classes(tmp_path):
    from model_factories import tiny_gray_net

    model = tiny_gray_net(num_classes=3)
    save_checkpoint(tmp_path / "m.pt", model, "model_factories:tiny_gray_net", num_classes=3,
                    mean=(0.5,), std=(0.25,))
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert (loaded.arch, loaded.num_classes, loaded.mean) == ("model_factories:tiny_gray_net", 3, (0.5,))
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))


def test_save_reads_the_head_when_the_model_does_not_say(tmp_path):
    model = build_model("cifar_resnet20", 7)
    del model.num_classes  # as torchvision's models: no num_classes attribute
    save_checkpoint(tmp_path / "m.pt", model, "cifar_resnet20")
    assert load_checkpoint(tmp_path / "m.pt").num_classes == 7


@pytest.mark.parametrize("wrap", [lambda sd: sd, lambda sd: {"state_dict": sd, "epoch": 3},
                                  lambda sd: {"model": sd, "args": "x"},
                                  lambda sd: {"module." + k: v for k, v in sd.items()}],
                         ids=["plain", "state_dict-entry", "model-entry", "data-parallel"])
def test_weights_files_load_into_a_named_model(tmp_path, wrap):
    model = _randomized("cifar_resnet20", num_classes=4)
    torch.save(wrap(model.state_dict()), tmp_path / "w.pt")
    loaded = load_classifier("cifar_resnet20", weights=tmp_path / "w.pt")
    assert (loaded.arch, loaded.num_classes, loaded.mean) == ("cifar_resnet20", 4, DATASET_STATS["cifar10"][0])
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))


def test_a_weights_file_that_holds_no_state_dict_says_what_it_holds(tmp_path):
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match=r"holds no state dict: .*but epoch, lr"):
        load_classifier("cifar_resnet20", weights=tmp_path / "w.pt")


def test_weights_go_with_a_model_source_not_a_checkpoint(tmp_path):
    save_checkpoint(tmp_path / "m.pt", build_model("mnist_cnn"), "mnist_cnn")
    with pytest.raises(ValueError, match="is a checkpoint file: weights go with a model source"):
        load_classifier(tmp_path / "m.pt", weights=tmp_path / "m.pt")


def test_a_whole_pickled_model_loads_when_trusted(tmp_path):
    path = tmp_path / "module.pt"
    model = _randomized("mnist_cnn")
    torch.save(model, path)
    with pytest.warns(UserWarning, match="runs any code the file contains"):
        loaded = load_classifier(path, trust_pickle=True)
    assert (loaded.arch, loaded.num_classes, loaded.mean) == ("MnistCNN", 10, None)
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))


@needs("torchvision")
def test_pytorch_imagenet_example_checkpoints_load_into_torchvision(tmp_path):
    import torchvision

    # examples/imagenet/main.py saves {"epoch", "arch", "state_dict" (of DataParallel), "best_acc1", ...}.
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=12).eval()
    state = {"module." + k: v for k, v in model.state_dict().items()}
    torch.save({"epoch": 90, "arch": "resnet18", "state_dict": state, "best_acc1": 70.0}, tmp_path / "ckpt.pth.tar")
    loaded = load_checkpoint(tmp_path / "ckpt.pth.tar")
    assert (loaded.arch, loaded.num_classes, loaded.mean) == ("torchvision:resnet18", 12, (0.485, 0.456, 0.406))
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))


@needs("torchvision")
def test_a_torchvision_model_saves_with_its_class_count(tmp_path):
    import torchvision

    model = torchvision.models.resnet50(num_classes=2)  # no num_classes attribute: read off fc
    save_checkpoint(tmp_path / "m.pt", model, "torchvision:resnet50", sigma=0.5)
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert (loaded.arch, loaded.num_classes, loaded.sigma) == ("torchvision:resnet50", 2, 0.5)


def test_a_sequential_models_own_1_prefix_is_kept(tmp_path):
    # nn.Sequential(Flatten, Linear) names its weights "1.weight": not the original code's wrapper.
    from model_factories import tiny_gray_net

    model = tiny_gray_net(10)
    for name, weights in (("plain.pt", model.state_dict()),
                          ("ddp.pt", {"module." + k: v for k, v in model.state_dict().items()})):
        torch.save(weights, tmp_path / name)
        loaded = load_classifier("model_factories:tiny_gray_net", weights=tmp_path / name, num_classes=10)
        assert torch.equal(loaded.model[1].weight, model[1].weight)
