"""Tests for rsengine.models: parameter counts, state_dict names against the published layouts,
forward shapes, forward semantics against a functional re-statement of the originals, and the
model sources (torchvision, timm, package.module:factory)."""
import pytest
import torch
import torch.nn.functional as F

from rsengine.models import ARCHITECTURES, CifarResNet, build_classifier, build_model, is_model_source
from vision_extra import marks, needs

BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _num_params(model):
    return sum(p.numel() for p in model.parameters())


def _bn(prefix):
    return [f"{prefix}.{k}" for k in BN_KEYS]


def _cifar_resnet_keys(depth):
    """Key order of locuslab/smoothing's archs/cifar_resnet.py (bearpaw's CIFAR ResNet)."""
    n = (depth - 2) // 6
    keys = ["conv1.weight", *_bn("bn1")]
    for stage in (1, 2, 3):
        for b in range(n):
            p = f"layer{stage}.{b}"
            keys += [f"{p}.conv1.weight", *_bn(f"{p}.bn1"), f"{p}.conv2.weight", *_bn(f"{p}.bn2")]
            if b == 0 and stage > 1:
                keys += [f"{p}.downsample.0.weight", *_bn(f"{p}.downsample.1")]
    return keys + ["fc.weight", "fc.bias"]


def _torchvision_resnet50_keys():
    keys = ["conv1.weight", *_bn("bn1")]
    for stage, blocks in zip((1, 2, 3, 4), (3, 4, 6, 3)):
        for b in range(blocks):
            p = f"layer{stage}.{b}"
            for i in (1, 2, 3):
                keys += [f"{p}.conv{i}.weight", *_bn(f"{p}.bn{i}")]
            if b == 0:
                keys += [f"{p}.downsample.0.weight", *_bn(f"{p}.downsample.1")]
    return keys + ["fc.weight", "fc.bias"]


def _randomize_bn(model, seed=0):
    # Default running statistics (0 and 1) would hide a mix-up between BN tensors.
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            c = module.num_features
            module.weight.data = torch.rand(c, generator=gen) + 0.5
            module.bias.data = torch.randn(c, generator=gen) * 0.1
            module.running_mean = torch.randn(c, generator=gen) * 0.1
            module.running_var = torch.rand(c, generator=gen) + 0.5
    return model.eval()


def _ref_bn(sd, p, x):
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"],
                        sd[f"{p}.bias"], training=False, eps=1e-5)


def _ref_cifar_resnet(sd, x, depth):
    """The original forward, restated functionally from the state_dict (AvgPool2d(8) at the end)."""
    x = F.relu(_ref_bn(sd, "bn1", F.conv2d(x, sd["conv1.weight"], padding=1)))
    for stage in (1, 2, 3):
        for b in range((depth - 2) // 6):
            p = f"layer{stage}.{b}"
            stride = 2 if (b == 0 and stage > 1) else 1
            out = F.relu(_ref_bn(sd, f"{p}.bn1", F.conv2d(x, sd[f"{p}.conv1.weight"], stride=stride, padding=1)))
            out = _ref_bn(sd, f"{p}.bn2", F.conv2d(out, sd[f"{p}.conv2.weight"], padding=1))
            if f"{p}.downsample.0.weight" in sd:
                x = _ref_bn(sd, f"{p}.downsample.1", F.conv2d(x, sd[f"{p}.downsample.0.weight"], stride=stride))
            x = F.relu(out + x)
    x = F.avg_pool2d(x, 8).flatten(1)
    return F.linear(x, sd["fc.weight"], sd["fc.bias"])


@pytest.fixture(scope="module")
def resnet50_model():
    torch.manual_seed(0)
    return build_model("resnet50")


def _cifar_param_count(n, classes=10):
    # conv1 + bn1; per stage: a BasicBlock of c channels has two 3x3 convs and two BNs; the
    # first block of stages 2 and 3 widens (c/2 -> c) and adds a 1x1 conv + BN shortcut.
    def block(c_in, c):
        shortcut = c_in * c + 2 * c if c_in != c else 0
        return 9 * c_in * c + 9 * c * c + 4 * c + shortcut

    total = 27 * 16 + 2 * 16
    for c_in, c in ((16, 16), (16, 32), (32, 64)):
        total += block(c_in, c) + (n - 1) * block(c, c)
    return total + 64 * classes + classes


@pytest.mark.parametrize(
    "arch, expected",
    [
        ("mnist_cnn", (25 * 8 + 8) + (25 * 8 * 16 + 16) + (256 * 64 + 64) + (64 * 10 + 10)),
        ("cifar_resnet20", 272_474),
        ("cifar_resnet110", 1_730_714),
    ],
    ids=["mnist_cnn", "cifar_resnet20", "cifar_resnet110"],
)
def test_build_model_param_count(arch, expected):
    assert _num_params(build_model(arch)) == expected


def test_cifar_param_count_matches_formula():
    assert _cifar_param_count(3) == 272_474
    assert _cifar_param_count(18) == 1_730_714


@needs("torchvision")
def test_resnet50_is_torchvisions_with_the_original_checkpoints_layout(resnet50_model):
    assert _num_params(resnet50_model) == 25_557_032


@pytest.mark.parametrize("depth", [20, 110], ids=["depth20", "depth110"])
def test_cifar_resnet_state_dict_keys_match_original(depth):
    model = build_model(f"cifar_resnet{depth}")
    assert list(model.state_dict()) == _cifar_resnet_keys(depth)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["conv1.weight"] == (16, 3, 3, 3)
    assert shapes["layer1.0.conv1.weight"] == (16, 16, 3, 3)
    assert shapes["layer2.0.conv1.weight"] == (32, 16, 3, 3)
    assert shapes["layer2.0.downsample.0.weight"] == (32, 16, 1, 1)
    assert shapes["layer3.0.downsample.0.weight"] == (64, 32, 1, 1)
    assert shapes["layer3.0.downsample.1.running_var"] == (64,)
    assert shapes["fc.weight"] == (10, 64)
    assert not any(k.endswith("bias") and "conv" in k for k in shapes), "convs have no bias"


@needs("torchvision")
def test_resnet50_state_dict_keys_are_the_original_checkpoints(resnet50_model):
    sd = resnet50_model.state_dict()
    assert list(sd) == _torchvision_resnet50_keys()
    assert len(sd) == 320
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    assert shapes["conv1.weight"] == (64, 3, 7, 7)
    assert shapes["layer1.0.conv1.weight"] == (64, 64, 1, 1)
    assert shapes["layer1.0.conv3.weight"] == (256, 64, 1, 1)
    assert shapes["layer1.0.downsample.0.weight"] == (256, 64, 1, 1)
    assert shapes["layer2.0.conv1.weight"] == (128, 256, 1, 1)
    assert shapes["layer3.5.conv2.weight"] == (256, 256, 3, 3)
    assert shapes["layer4.0.downsample.0.weight"] == (2048, 1024, 1, 1)
    assert shapes["fc.weight"] == (1000, 2048)
    # v1.5: the downsampling stride is on the 3x3 conv, not the first 1x1.
    assert resnet50_model.layer2[0].conv1.stride == (1, 1)
    assert resnet50_model.layer2[0].conv2.stride == (2, 2)
    assert resnet50_model.layer2[0].downsample[0].stride == (2, 2)


@pytest.mark.parametrize("arch", [pytest.param(arch, marks=marks("torchvision") if arch == "resnet50" else [])
                                  for arch in ARCHITECTURES])
def test_forward_shape_matches_arch_spec(arch, request):
    spec = ARCHITECTURES[arch]
    model = request.getfixturevalue("resnet50_model") if arch == "resnet50" else build_model(arch)
    with torch.no_grad():
        out = model.eval()(torch.rand(2, *spec.input_shape))
    assert out.shape == (2, spec.num_classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("depth", [20, 110], ids=["depth20", "depth110"])
def test_cifar_resnet_forward_matches_original_semantics(depth):
    # In float64: the random batch-norm statistics blow activations up to ~1e10 at depth 110,
    # where float32's summation order (which the CPU's conv kernels choose: AVX2 and AVX-512
    # differ) alone moves the logits by ~15 ulp. The test is about the same computation.
    torch.manual_seed(1)
    model = _randomize_bn(build_model(f"cifar_resnet{depth}")).double()
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), _ref_cifar_resnet(model.state_dict(), x, depth))


def test_mnist_cnn_forward_matches_relu_then_pool():
    torch.manual_seed(2)
    model = build_model("mnist_cnn").eval()
    sd = model.state_dict()
    x = torch.randn(4, 1, 28, 28)
    h = F.max_pool2d(F.relu(F.conv2d(x, sd["conv1.weight"], sd["conv1.bias"])), 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, sd["conv2.weight"], sd["conv2.bias"])), 2)
    h = F.relu(F.linear(h.flatten(1), sd["fc1.weight"], sd["fc1.bias"]))
    with torch.no_grad():
        torch.testing.assert_close(model(x), F.linear(h, sd["fc2.weight"], sd["fc2.bias"]))


@pytest.mark.parametrize("arch", ["mnist_cnn", "cifar_resnet20"])
def test_build_model_num_classes(arch):
    model = build_model(arch, num_classes=7)
    assert model.num_classes == 7
    shape = ARCHITECTURES[arch].input_shape
    assert model.eval()(torch.zeros(1, *shape)).shape == (1, 7)
    assert build_model(arch).num_classes == ARCHITECTURES[arch].num_classes


def test_build_model_unknown_arch_lists_known():
    with pytest.raises(ValueError, match="Expected `arch` to be one of") as info:
        build_model("resnet18")
    for name in ARCHITECTURES:
        assert repr(name) in str(info.value)
    assert "'resnet18'" in str(info.value)


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-3, ValueError), (2.5, TypeError), (True, TypeError)],
                         ids=["zero", "negative", "float", "bool"])
def test_build_model_rejects_bad_num_classes(bad, error):
    with pytest.raises(error, match="Expected `num_classes`"):
        build_model("mnist_cnn", num_classes=bad)


@pytest.mark.parametrize("depth", [0, 19, 2], ids=["zero", "not-6n+2", "no-blocks"])
def test_cifar_resnet_rejects_bad_depth(depth):
    with pytest.raises(ValueError, match="depth"):
        CifarResNet(depth)


def test_models_have_no_normalize_layer():
    # Normalization lives in rsengine's noise kernel: a zero input must reach conv1 unchanged.
    model = build_model("mnist_cnn").eval()
    seen = []
    model.conv1.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    model(torch.zeros(1, 1, 28, 28))
    assert torch.equal(seen[0], torch.zeros(1, 1, 28, 28))


# ------------------------------------------------------------------------------ model sources


@pytest.mark.parametrize("text, expected", [
    ("cifar_resnet20", True), ("torchvision:resnet50", True), ("timm:vit_tiny_patch16_224", True),
    ("my_pkg.models:make_net", True), ("model.pt", False), ("runs/model.pt", False), ("./m:x", False),
    ("resnet18", False), ("a:b:c", False)])
def test_is_model_source(text, expected):
    assert is_model_source(text) is expected


def test_a_factory_is_called_with_num_classes():
    built = build_classifier("model_factories:tiny_gray_net", num_classes=4)
    assert (built.num_classes, built.mean, built.std) == (4, None, None)
    assert built.model(torch.zeros(2, 1, 28, 28)).shape == (2, 4)


def test_a_factory_without_num_classes_leaves_them_unknown():
    built = build_classifier("model_factories:fixed_head_net", num_classes=7)
    assert built.num_classes is None  # not 7: the factory never heard of it; the forward pass decides
    assert built.model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)


@pytest.mark.parametrize("source, error, match", [
    ("model_factories:not_a_module", TypeError, "returned a Tensor, not a torch.nn.Module"),
    ("model_factories:nothing_here", ValueError, "model_factories has no function 'nothing_here'"),
    ("no_such_package_xyz.models:net", ValueError, "No module 'no_such_package_xyz' for the model source"),
    ("lenet", ValueError, "Expected a model source"),
])
def test_bad_factories_say_what_is_wrong(source, error, match):
    with pytest.raises(error, match=match):
        build_classifier(source)


@needs("torchvision")
def test_torchvision_models_come_with_their_weights_normalization():
    built = build_classifier("torchvision:resnet18", num_classes=3)
    assert built.num_classes == 3 and built.model.fc.out_features == 3
    assert (built.mean, built.std) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert build_classifier("torchvision:resnet18").num_classes == 1000


@needs("torchvision")
def test_a_misspelt_torchvision_model_is_named_with_close_ones():
    with pytest.raises(ValueError, match=r"torchvision has no classification model 'resnet5'; did you mean .*resnet50"):
        build_classifier("torchvision:resnet5")


@needs("timm")
def test_timm_models_come_with_their_pretrained_configs_normalization():
    built = build_classifier("timm:test_resnet", num_classes=5)
    assert built.num_classes == 5
    assert (built.mean, built.std) == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert built.model.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 5)
