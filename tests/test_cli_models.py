"""The models users have, through the rsengine command (real subprocesses): torchvision, timm and
factory models with their weights files, ImageNet folders of gray and odd-sized images, the
original ImageNet checkpoint in torchvision's ResNet-50, whole pickled models, and the refusals."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rsengine.results import read_results
from vision_extra import needs

TESTS = Path(__file__).resolve().parent
WNIDS = ("n01440764", "n01443537", "n01484850")  # ImageNet-1k's classes 0, 1 and 2
FAST = ("--N0", 4, "--N", 16, "--batch", 16, "--alpha", 0.01)


def rsengine(*args, cwd, timeout=600):
    # tests/ on the path: model_factories.py is the package.module:factory source.
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "rsengine", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def one_line_error(result) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("note: ")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def tiny_imagenet(root: Path) -> Path:
    """root/val/<wnid>/: three of ImageNet's classes, gray and RGB images of odd sizes."""
    rng = np.random.default_rng(0)
    sizes = [((61, 47), "RGB"), ((40, 90), "L"), ((33, 33), "RGB"), ((120, 70), "L"), ((50, 64), "RGB"),
             ((45, 45), "RGB")]
    for i, ((w, h), mode) in enumerate(sizes):
        folder = root / "val" / WNIDS[i % 3]
        folder.mkdir(parents=True, exist_ok=True)
        shape = (h, w, 3) if mode == "RGB" else (h, w)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / f"{i}.png")
    return root


def record(out: Path) -> dict:
    return json.loads(Path(f"{out}.run.json").read_text())["arguments"]


@needs("torchvision")
def test_certify_imagenet_with_torchvisions_resnet50_and_a_weights_file(tmp_path):
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.resnet50().state_dict(), tmp_path / "W.pth")
    tiny_imagenet(tmp_path / "imagenet")
    out = tmp_path / "out.tsv"
    result = rsengine("certify", "imagenet", "torchvision:resnet50", 0.25, out, "--weights", tmp_path / "W.pth",
                      "--data-dir", tmp_path / "imagenet", "--resize", 40, "--crop", 32, *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = read_results(out)
    # Gray images are converted to RGB, every image resized and cropped; labels are the wnids' indices.
    assert table.idx.tolist() == [0, 1, 2, 3, 4, 5] and table.label.tolist() == [0, 0, 1, 1, 2, 2]
    arguments = record(out)
    assert (arguments["model"], arguments["resize"], arguments["crop"]) == ("torchvision:resnet50", 40, 32)
    assert len(arguments["weights_sha256"]) == 64 and arguments["checkpoint_sha256"] is None


@needs("torchvision", "timm")
def test_certify_imagenet_with_a_timm_model(tmp_path):
    import timm

    torch.manual_seed(0)
    # timm's checkpoints keep the weights under "state_dict" (its train.py) beside other entries.
    torch.save({"state_dict": timm.create_model("test_resnet").state_dict(), "epoch": 3}, tmp_path / "timm.pth.tar")
    tiny_imagenet(tmp_path / "imagenet")
    out = tmp_path / "out.tsv"
    result = rsengine("certify", "imagenet", "timm:test_resnet", 0.5, out, "--weights", tmp_path / "timm.pth.tar",
                      "--data-dir", tmp_path / "imagenet", "--resize", 36, "--crop", 32, "--max", 2, *FAST,
                      cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert read_results(out).idx.tolist() == [0, 1]


@needs("torchvision")
def test_certify_a_folder_with_a_factory_model_on_some_of_its_classes(tmp_path):
    # A gray folder holding classes 2 and 7 of a 10-class factory model, named by index.
    rng = np.random.default_rng(1)
    for name in ("2", "7"):
        (tmp_path / "digits" / name).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8), "L").save(tmp_path / "digits" / name / "0.png")
    torch.manual_seed(0)
    from model_factories import tiny_gray_net

    torch.save(tiny_gray_net(10).state_dict(), tmp_path / "w.pt")
    out = tmp_path / "out.tsv"
    result = rsengine("certify", "digits", "model_factories:tiny_gray_net", 0.25, out, "--weights", "w.pt",
                      "--num-classes", 10, "--mean", 0.1307, "--std", 0.3081, *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert read_results(out).label.tolist() == [2, 7]
    assert (record(out)["mean"], record(out)["num_classes"]) == ([0.1307], 10)


def test_certify_mnist_with_a_factory_model_and_no_extra(tmp_path):
    # The core install: a factory model on the embedded MNIST needs neither torchvision nor timm.
    out = tmp_path / "out.tsv"
    result = rsengine("certify", "mnist", "model_factories:tiny_gray_net", 0.25, out, "--max", 3, *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert read_results(out).idx.tolist() == [0, 1, 2]
    assert record(out)["model"] == "model_factories:tiny_gray_net"
    assert "note: model_factories:tiny_gray_net has random weights (give its weights with --weights FILE)" \
        in result.stderr.splitlines()


def test_a_factory_module_that_fails_on_import_is_one_line(tmp_path):
    (tmp_path / "broken_factories.py").write_text("def net(:\n")
    result = rsengine("certify", "mnist", "broken_factories:net", 0.25, tmp_path / "o.tsv", *FAST, cwd=tmp_path)
    assert one_line_error(result).startswith("rsengine certify: error: broken_factories failed as it was imported: "
                                             "SyntaxError")


@needs("torchvision")
def test_certify_the_original_imagenet_checkpoint_in_torchvisions_resnet50(tmp_path):
    import torchvision

    torch.manual_seed(0)
    state = {f"1.module.{k}": v for k, v in torchvision.models.resnet50().state_dict().items()}
    torch.save({"arch": "resnet50", "state_dict": state, "epoch": 90}, tmp_path / "checkpoint.pth.tar")
    tiny_imagenet(tmp_path / "imagenet")
    out = tmp_path / "out.tsv"
    result = rsengine("certify", "imagenet", tmp_path / "checkpoint.pth.tar", 0.25, out, "--data-dir",
                      tmp_path / "imagenet", "--resize", 40, "--crop", 32, "--max", 1, *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert read_results(out).idx.tolist() == [0]


def test_a_whole_pickled_model_certifies_with_trust_pickle(tmp_path):
    from model_factories import tiny_gray_net

    torch.save(tiny_gray_net(10), tmp_path / "whole.pt")
    out = tmp_path / "out.tsv"
    refused = rsengine("certify", "mnist", "whole.pt", 0.25, out, "--max", 2, *FAST, cwd=tmp_path)
    assert "pass trust_pickle=True (rsengine certify: --trust-pickle) only if you trust the file" in \
        one_line_error(refused)
    result = rsengine("certify", "mnist", "whole.pt", 0.25, out, "--max", 2, "--trust-pickle", *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert read_results(out).idx.tolist() == [0, 1]


@pytest.mark.parametrize("args, fragment", [
    (("mnist", "torchvisio:resnet50"), "No module 'torchvisio' for the model source 'torchvisio:resnet50', and no file"),
    (("mnist", "model_factories:nothing"), "model_factories has no function 'nothing'"),
    (("mnist", "model.pt"), "model.pt: no such checkpoint file"),
    (("mnist", "resnet18"), "resnet18: no such checkpoint file, nor a model source; a model is one of mnist_cnn, "
                            "cifar_resnet20, cifar_resnet110, resnet50, torchvision:NAME, timm:NAME or "
                            "package.module:factory (torchvision:resnet18?)"),
    (("mnist", "cifar_resnet20", "--weights", "missing.pt"), "missing.pt: no such checkpoint file"),
    (("mnist", "mnist_cnn", "--resize", "32"), "resize apply to image folders and ImageNet"),
    (("mnist", "mnist_cnn", "--mean", "0.1"), "Expected `mean` and `std` both given or both None"),
])
def test_model_refusals_are_one_line(tmp_path, args, fragment):
    dataset, model, *rest = args
    result = rsengine("certify", dataset, model, 0.25, tmp_path / "out.tsv", *rest, *FAST, cwd=tmp_path)
    assert fragment in one_line_error(result)


def test_a_folder_without_torchvision_names_the_extra(tmp_path):
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    env_blocker = tmp_path / "block"  # a torchvision that cannot be imported, as on a core install
    (env_blocker / "torchvision").mkdir(parents=True)
    (env_blocker / "torchvision" / "__init__.py").write_text("raise ImportError('not installed')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(env_blocker), str(TESTS)])}
    result = subprocess.run([sys.executable, "-m", "rsengine", "certify", "imgs", "mnist_cnn", "0.25", "o.tsv",
                             *map(str, FAST)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert 'install it with pip install "rsengine[vision]"' in one_line_error(result)
