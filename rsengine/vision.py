"""The ``vision`` extra: torchvision's and timm's models, torchvision's ImageFolder and transforms.

rsengine's core needs neither package; image folders, ImageNet and ``torchvision:NAME`` or
``timm:NAME`` classifiers do. Each is imported on first use, and a missing one raises
:class:`MissingExtraError` naming the install command (``pip install "rsengine[vision]"``).

Images are returned in pixel space, float32 ``[C, H, W]`` in [0, 1] (``ToTensor``): rsengine adds
the noise there and normalizes inside its kernel, so no ``Normalize`` belongs in the transform.
A model's own normalization comes back with it (:func:`build_vision_model`) for ``Smooth``.

Example:
    >>> import os, tempfile
    >>> from PIL import Image
    >>> root = tempfile.mkdtemp()
    >>> os.mkdir(os.path.join(root, "cat"))
    >>> Image.new("L", (40, 30)).save(os.path.join(root, "cat", "0.png"))
    >>> folder = ImageFolder(root, resize=32, crop=28)
    >>> x, label = folder[0]
    >>> tuple(x.shape), label, folder.classes
    ((1, 28, 28), 0, ['cat'])
"""
from __future__ import annotations

import difflib
import functools
import importlib
import os
from importlib import resources
from typing import NamedTuple

import torch
from torch import nn
from torch.utils.data import Dataset

from rsengine.validation import check_choice, check_positive_int

__all__ = [
    "VISION_EXTRA",
    "VISION_SOURCES",
    "MissingExtraError",
    "VisionModel",
    "ImageFolder",
    "IMAGE_EXTENSIONS",
    "imagenet_wnids",
    "require",
    "build_vision_model",
]

VISION_EXTRA = 'pip install "rsengine[vision]"'
VISION_SOURCES = ("torchvision", "timm")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# PIL modes that hold one channel: a folder of them certifies one-channel inputs (MNIST exports).
_GRAY_MODES = ("1", "L", "LA")
_WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
_CLOSE_NAMES = 3  # suggestions for a misspelt model name


class MissingExtraError(ImportError):
    """An optional package is not installed; the one-line message says what to install."""


def require(package: str):
    """Import ``package`` (torchvision or timm) or raise :class:`MissingExtraError` saying how to get it.

    Example:
        >>> require("torchvision").__name__
        'torchvision'
    """
    check_choice("package", package, VISION_SOURCES)
    try:
        return importlib.import_module(package)
    except ImportError as error:
        raise MissingExtraError(f"{package} is not importable here ({error}); install it with {VISION_EXTRA}"
                                ) from None


class VisionModel(NamedTuple):
    """A torchvision or timm classifier and the normalization its published weights expect.

    Attributes:
        model: the network, randomly initialised, taking normalized input.
        num_classes: its number of logits.
        mean, std: per-channel statistics for ``Smooth(mean=..., std=...)``, ``None`` when the
            package records none for it.
    """

    model: nn.Module
    num_classes: int
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None


def _unknown(source: str, name: str, known: list[str]) -> ValueError:
    close = difflib.get_close_matches(name, known, n=_CLOSE_NAMES)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return ValueError(f"{source} has no classification model {name!r}{hint}")


def _torchvision_model(name: str, num_classes: int | None) -> VisionModel:
    torchvision = require("torchvision")
    known = torchvision.models.list_models(module=torchvision.models)  # classification models only
    if name not in known:
        raise _unknown("torchvision", name, known)
    model = torchvision.models.get_model(name, weights=None, **({} if num_classes is None else
                                                                 {"num_classes": num_classes}))
    # Every published weight of a model shares its preprocessing; its transforms carry mean and std.
    preprocessing = torchvision.models.get_model_weights(name).DEFAULT.transforms()
    return VisionModel(model, _logits(model, num_classes), tuple(preprocessing.mean), tuple(preprocessing.std))


def _timm_model(name: str, num_classes: int | None) -> VisionModel:
    timm = require("timm")
    known = timm.list_models()
    if name not in known:
        raise _unknown("timm", name, known)
    model = timm.create_model(name, pretrained=False, **({} if num_classes is None else {"num_classes": num_classes}))
    config = getattr(model, "pretrained_cfg", None) or {}
    mean, std = config.get("mean"), config.get("std")
    return VisionModel(model, _logits(model, num_classes), None if mean is None else tuple(map(float, mean)),
                       None if std is None else tuple(map(float, std)))


def _logits(model: nn.Module, num_classes: int | None) -> int:
    if num_classes is not None:
        return num_classes
    # The packages' own record of the head: torchvision's (and timm's) default is ImageNet's 1000.
    return int(getattr(model, "num_classes", 1000))


def build_vision_model(source: str, name: str, num_classes: int | None = None) -> VisionModel:
    """Build torchvision's or timm's model ``name`` with random weights and ``num_classes`` logits.

    Args:
        source: ``"torchvision"`` or ``"timm"``.
        name: the package's model name (``resnet50``, ``vit_b_16``; ``resnet18``, ``test_vit``).
        num_classes: the head's size; ``None`` keeps the package's default (1000).

    Raises:
        MissingExtraError: the package is not installed.
        ValueError: the package has no classification model of that name (close names suggested).

    Example:
        >>> built = build_vision_model("torchvision", "resnet18", num_classes=10)
        >>> built.num_classes, built.mean
        (10, (0.485, 0.456, 0.406))
    """
    check_choice("source", source, VISION_SOURCES)
    if num_classes is not None:
        check_positive_int("num_classes", num_classes)
    return (_torchvision_model if source == "torchvision" else _timm_model)(name, num_classes)


@functools.lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...]:
    """ImageNet-1k's 1,000 WordNet ids in class-index order (sorted, as ImageFolder orders them).

    Shipped in the package (``rsengine/classes/imagenet_wnids.txt``, the list timm ships) so that a
    folder holding some of ImageNet's classes gets each image's index in the 1,000-class head.

    Example:
        >>> wnids = imagenet_wnids()
        >>> len(wnids), wnids[0], wnids[-1]
        (1000, 'n01440764', 'n15075141')
    """
    text = (resources.files("rsengine") / "classes" / "imagenet_wnids.txt").read_text(encoding="ascii")
    return tuple(text.split())


def _class_indices(root: str, classes: list[str], num_classes: int | None, imagenet: bool) -> dict[str, int]:
    """Each class folder's label: its sorted position, unless the model's head has more classes.

    A folder with fewer classes than the head must say which of the head's classes it holds: class
    folders named by their index (``0``, ``7``, ``12``) or, with a 1,000-class head, ImageNet wnids.
    """
    wnids = imagenet_wnids()
    if imagenet or (num_classes == len(wnids) and len(classes) < num_classes and set(classes) <= set(wnids)):
        unknown = sorted(set(classes) - set(wnids))
        if unknown:
            raise ValueError(f"{root}: class folder {unknown[0]!r} is not an ImageNet-1k wnid (n01440764 ...); "
                             f"an ImageNet folder holds one folder per wnid")
        index = {wnid: i for i, wnid in enumerate(wnids)}
        return {name: index[name] for name in classes}
    if num_classes is None or len(classes) == num_classes:
        return {name: i for i, name in enumerate(classes)}
    if len(classes) > num_classes:
        raise ValueError(f"{root} has {len(classes)} class folders but the model has {num_classes} classes")
    if all(name.isascii() and name.isdigit() for name in classes):
        labels = {name: int(name) for name in classes}
        beyond = [name for name, label in labels.items() if label >= num_classes]
        if beyond:
            raise ValueError(f"{root}: class folder {beyond[0]!r} is beyond the model's {num_classes} classes "
                             f"(0 to {num_classes - 1})")
        if len(set(labels.values())) < len(labels):
            twins = sorted(name for name in labels if list(labels.values()).count(labels[name]) > 1)
            raise ValueError(f"{root}: class folders {twins[0]!r} and {twins[1]!r} name the same class index")
        # A model trained on all of them by an ImageFolder has them in text order ("10" before "2");
        # the index a name means is plain only where text and number order agree for every index.
        if num_classes > 10 and len({len(name) for name in classes}) > 1:
            raise ValueError(f"{root}: class folders named {min(classes, key=len)!r} and {max(classes, key=len)!r} "
                             f"sort differently as text and as numbers, so which of the model's {num_classes} "
                             f"classes each holds is unclear: zero-pad the names to one width "
                             f"({str(labels[min(classes, key=len)]).zfill(len(str(num_classes - 1)))})")
        return labels
    raise ValueError(f"{root} has {len(classes)} class folders ({classes[0]!r} ...) but the model has "
                     f"{num_classes} classes: name each folder by its class index (0 to {num_classes - 1}) "
                     f"or, for ImageNet classes, by its wnid, so each image gets its label in the model's head")


def _refuse_symlink_loops(root: str, classes: list[str]) -> None:
    """Refuse a class folder that reaches one of its folders twice through symbolic links (a link
    back to itself or above): os.walk, as torchvision's make_dataset runs it (followlinks=True),
    would list its images again at every level, 40 deep."""
    for name in classes:
        seen = set()
        for folder, _, _ in os.walk(os.path.join(root, name), followlinks=True):
            real = os.path.realpath(folder)
            if real in seen:
                raise ValueError(f"{folder} leads back to {real}, a folder already read, through a symbolic link, so "
                                 f"its images would be read twice (or at every level of a loop); remove the link")
            seen.add(real)


class ImageFolder(Dataset):
    """torchvision's ImageFolder, with its order and labels, read in pixel space by its transforms.

    Items are ``(x, label)``: ``x`` float32 ``[C, H, W]`` in [0, 1] after ``Resize(resize)`` and
    ``CenterCrop(crop)`` (either may be ``None``), converted to ``channels`` channels (1: gray, 3:
    RGB; ``None``: one when the first image is gray, else three, so every image gets the same).
    Index ``i`` is torchvision's image ``i`` (classes in sorted order, files sorted within each),
    the index the original code's results files use.

    Args:
        root: the folder holding one subfolder per class.
        resize: shorter side after resizing (PIL bilinear, as torchvision's ``Resize(int)``).
        crop: side of the center crop.
        channels: 1, 3 or ``None``.
        num_classes: the model's classes, when the folder may hold only some of them (labels are
            then the folders' names as indices, or ImageNet wnids' indices).
        imagenet: label every class folder by its ImageNet-1k wnid's index.

    Raises:
        MissingExtraError: torchvision is not installed.
        FileNotFoundError: ``root`` is not a directory or has no class folders with images.
        ValueError: class folders that do not say their label in a larger head.
    """

    def __init__(self, root: str | os.PathLike, *, resize: int | None = None, crop: int | None = None,
                 channels: int | None = None, num_classes: int | None = None, imagenet: bool = False):
        torchvision = require("torchvision")
        from torchvision import transforms  # deferred with torchvision itself

        self.root = os.fspath(root)
        for name, value in (("resize", resize), ("crop", crop), ("num_classes", num_classes)):
            if value is not None:
                check_positive_int(name, value)
        if channels is not None:
            check_choice("channels", channels, (1, 3))
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"No directory {os.path.abspath(self.root)}")
        self.classes = sorted(entry.name for entry in os.scandir(self.root) if entry.is_dir())
        if not self.classes:
            raise FileNotFoundError(f"No class folders in {os.path.abspath(self.root)}; expected <root>/<class>/<image>")
        self.class_to_idx = _class_indices(self.root, self.classes, num_classes, imagenet)
        _refuse_symlink_loops(self.root, self.classes)
        self.samples = torchvision.datasets.folder.make_dataset(self.root, self.class_to_idx, IMAGE_EXTENSIONS,
                                                                allow_empty=True)
        if not self.samples:
            raise FileNotFoundError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) in the class folders of "
                                    f"{os.path.abspath(self.root)}; expected <root>/<class>/<image>")
        self.resize, self.crop = resize, crop
        steps = ([transforms.Resize(resize)] if resize is not None else []) + \
                ([transforms.CenterCrop(crop)] if crop is not None else [])
        self.transform = transforms.Compose([*steps, transforms.ToTensor()])
        self.channels = channels if channels is not None else 1 if self._first_mode() in _GRAY_MODES else 3

    def _first_mode(self) -> str | None:
        """The mode of the first image that opens (a bad one is refused when it is read, by index)."""
        from PIL import Image  # torchvision's dependency, imported with it

        for path, _ in self.samples:
            try:
                with Image.open(path) as img:
                    return img.mode
            except (OSError, ValueError, Image.DecompressionBombError):
                continue
        return None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        path, label = self.samples[index]
        with Image.open(path) as img:
            if img.mode in _WIDE_MODES:  # PIL's conversion to 8 bits clips them instead of scaling
                raise ValueError(f"{img.mode} pixels (more than 8 bits per channel); convert the image to 8 bits")
            img = img.convert("L" if self.channels == 1 else "RGB")
        if self.crop is not None and self.resize is None and min(img.size) < self.crop:
            # torchvision's CenterCrop would pad it with zeros: pixels that are not the image's.
            raise ValueError(f"{path} is {img.size[0]}x{img.size[1]}, smaller than the {self.crop}x{self.crop} "
                             f"crop; resize it first (--resize)")
        return self.transform(img), label
