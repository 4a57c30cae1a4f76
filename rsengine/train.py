"""Training base classifiers for smoothing: noise augmentation (Cohen et al. 2019) by default, or
a method on several noisy copies per input (``method=``: consistency, MACER, SmoothAdv, SmoothMix,
CAT-RS; their losses in rsengine.training_methods, their copies from rsengine.training_noise).

Every training batch is perturbed in pixel space, ``x + sigma * N(0, I)`` (or Laplace or uniform
noise of standard deviation sigma per value, ``noise=``, for the l1 certificates), then normalized,
``(x_noisy - mean) / std``, then fed to the model: the order rsengine's certification uses, so a
model trained at ``sigma`` is accurate on exactly the inputs its smoothed classifier sees.
Optimizer: SGD with momentum and weight decay; learning rate annealed by a cosine (per step)
or divided by 10 every third of the epochs ("step", the paper's 90-epoch schedule).

Runs are deterministic on CPU for a given ``seed``: the shuffling and the noise draw from their
own seeded generators, and the global torch RNG is seeded (and restored afterwards) for any
randomness inside the model.

The defaults, ``TRAINING_DEFAULTS``, are the paper's recipe (90 epochs, batch 256, learning
rate 0.1 divided by 10 every 30 epochs), shared by ``train_model`` and ``rsengine train``. The
bundled MNIST model used another, measured recipe, given explicitly: ``mnist_cnn`` trained at
``sigma = 0.25`` on the 4,000-image split with ``epochs = 30, batch_size = 64, lr = 0.05,
lr_schedule = "cosine"`` (seed 0) reaches 97.3% clean and 96.8% noisy (sigma = 0.25, mean of
20 draws) accuracy on the 1,000 test images, in 15 s on 2 idle CPU cores. When another
process keeps a core busy, PyTorch's spin-waiting OpenMP threads slow each step 20x or more
(measured: 447 ms instead of 13 ms); setting ``OMP_WAIT_POLICY=PASSIVE`` before torch starts
(21 ms) or ``torch.set_num_threads(1)`` (13-17 ms) avoids it.

Example:
    >>> from rsengine.data import dataset_stats, load_dataset
    >>> from rsengine.models import build_model
    >>> from rsengine.train import train_model
    >>> model = build_model("mnist_cnn")
    >>> mean, std = dataset_stats("mnist")
    >>> history = train_model(model, load_dataset("mnist", "train"), sigma=0.25, epochs=1,
    ...                       mean=mean, std=std)
    >>> sorted(history[0])
    ['accuracy', 'epoch', 'loss', 'lr']
"""
from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from rsengine.classifier import logits_of
from rsengine.kernels.contract import check_noise
from rsengine.noises import noise_named
from rsengine.normalization import per_channel, warn_if_normalized
from rsengine.training_methods import Batch, CatRS, Macer, Method, method_named
from rsengine.training_noise import MAX_TRAINING_STREAMS, EngineNoise
from rsengine.validation import (check_choice, check_mean_std, check_non_negative_float, check_positive_float,
                                 check_positive_int)

__all__ = ["LR_SCHEDULES", "TRAINING_DEFAULTS", "check_recipe", "resolve_method", "train_model"]

LR_SCHEDULES = ("cosine", "step")
# The paper's recipe (Cohen et al. 2019, all data sets): the one set of training defaults.
TRAINING_DEFAULTS = dict(epochs=90, batch_size=256, lr=0.1, momentum=0.9, weight_decay=5e-4, lr_schedule="step")


def _learning_rate(schedule: str, base_lr: float, step: int, total_steps: int, epoch: int,
                   epochs: int) -> float:
    if schedule == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
    return base_lr * 0.1 ** (epoch // max(1, math.ceil(epochs / 3)))


def _train_epoch(model, loader, optimizer, step: int, step_lr, noise, noise_gen, mean_t, std_t):
    """One pass over ``loader``; returns (summed loss, correct count) on the device and the next step."""
    device = noise_gen.device
    # Summed on the device and read once per epoch: no host sync per step.
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    for x, y in loader:
        for group in optimizer.param_groups:
            group["lr"] = step_lr(step)
        x, y = x.to(device), y.to(device)  # x: [B, C, H, W] pixels
        if noise is not None:  # None: sigma = 0, no noise
            x = x + noise.training_noise(x.shape, noise_gen)
        if mean_t is not None:
            x = (x - mean_t) / std_t
        logits = logits_of(model(x), len(x))
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
        step += 1
    return loss_sum, correct, step


class _Indexed(Dataset):
    """``(x, label, index)`` items: the methods that keep per-input state (CAT-RS) see which input."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        x, y = self.dataset[index]
        return x, y, index


def _method_epoch(model, loader, optimizer, step: int, step_lr, method: Method, copies: EngineNoise, classify,
                  epoch: int, epochs: int, sigma: float):
    """One pass of a multi-copy method; input number epoch * N + position draws stream of that number."""
    device = copies.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device)
    stream = epoch * len(loader.dataset)
    for x, y, index in loader:
        for group in optimizer.param_groups:
            group["lr"] = step_lr(step)
        x, y = x.to(device), y.to(device)  # x: [B, C, H, W] pixels
        noise = copies.draw(x, method.copies, stream)
        stream += len(x)
        loss, logits = method.loss(Batch(x, y, noise, classify, model, epoch, epochs, sigma, index.to(device)))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * len(y)
        # The accuracy of the noisy copies, each counted: a copy's top class against its label.
        correct += (logits.detach().argmax(2) == y[:, None]).float().mean(1).sum()
        step += 1
    return loss_sum, correct, step


def check_recipe(*, sigma, epochs, batch_size, lr, momentum=TRAINING_DEFAULTS["momentum"],
                 weight_decay=TRAINING_DEFAULTS["weight_decay"], lr_schedule, seed, noise="gaussian") -> tuple:
    """``train_model``'s checks of its numbers, for callers that check before costly work (the CLI
    before CAT-RS's pre-pass): (sigma, epochs, batch_size, lr, momentum, weight_decay) checked.

    Raises:
        ValueError, TypeError: naming the first one out of range or of the wrong type.
    """
    checked = (check_non_negative_float("sigma", sigma), check_positive_int("epochs", epochs),
               check_positive_int("batch_size", batch_size), check_positive_float("lr", lr),
               check_non_negative_float("momentum", momentum), check_non_negative_float("weight_decay", weight_decay))
    check_noise(noise)
    if checked[4] >= 1:
        raise ValueError(f"Expected `momentum` in [0, 1), got {momentum!r}")
    check_choice("lr_schedule", lr_schedule, LR_SCHEDULES)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"Expected `seed` to be an integer, got {seed!r}")
    return checked


def resolve_method(method: str | Method, sigma: float, noise: str, *, defaults_for: str = "cifar10",
                   dataset_size: int | None = None, epochs: int | None = None, seed: int = 0,
                   need_confidences: bool = True) -> Method:
    """``method`` (a name: with the published defaults of ``defaults_for`` at ``sigma``) checked
    against the run: noise to compare (sigma > 0), MACER's Gaussian noise, the engine's seed and
    stream range, CAT-RS's pre-pass table (one finite row per input; skipped with
    ``need_confidences=False``, for a caller about to compute it).

    Raises:
        ValueError, TypeError: one line naming what does not fit.
    """
    if isinstance(method, str):
        method = method_named(method, defaults_for, sigma)
    elif not isinstance(method, Method):
        raise TypeError(f"Expected `method` to be a method name or an rsengine.training_methods.Method, got "
                        f"{type(method).__name__}")
    if method.plain:
        return method  # torch's generator, no engine stream
    if sigma == 0:
        raise ValueError(f"Expected `sigma` > 0 for method {method.name!r} (its losses compare noisy copies)")
    if isinstance(method, Macer) and noise != "gaussian":
        raise ValueError(f"Expected `noise` 'gaussian' for method 'macer' (its robustness term is the Gaussian l2 "
                         f"radius), got {noise!r}")
    if not 0 <= seed < 2**63:
        raise ValueError(f"Expected `seed` in [0, 2**63) for the engine's training copies, got {seed}")
    if dataset_size is not None and epochs is not None and epochs * dataset_size > MAX_TRAINING_STREAMS:
        raise ValueError(f"Expected at most 2**32 training inputs in a run (epochs x data set size, one noise stream "
                         f"each), got {epochs} x {dataset_size}")
    if isinstance(method, CatRS) and need_confidences:
        table = method.confidences
        if table is None:
            raise ValueError("Expected CAT-RS's pre-pass: CatRS(..., confidences=catrs_confidences(...)), got none")
        if not isinstance(table, torch.Tensor) or table.ndim != 2 or not bool(torch.isfinite(table).all()) \
                or (dataset_size is not None and len(table) != dataset_size):
            shape = list(table.shape) if isinstance(table, torch.Tensor) else type(table).__name__
            raise ValueError(f"Expected CAT-RS's confidences: a finite [N = {dataset_size}, K] tensor, one row per "
                             f"training input, got {shape}")
    return method


def train_model(
    model: nn.Module,
    dataset: Dataset,
    *,
    sigma: float,
    epochs: int = TRAINING_DEFAULTS["epochs"],
    batch_size: int = TRAINING_DEFAULTS["batch_size"],
    lr: float = TRAINING_DEFAULTS["lr"],
    momentum: float = TRAINING_DEFAULTS["momentum"],
    weight_decay: float = TRAINING_DEFAULTS["weight_decay"],
    lr_schedule: str = TRAINING_DEFAULTS["lr_schedule"],
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    log: Callable[[str], None] | None = None,
    noise: str = "gaussian",
    method: str | Method = "gaussian",
    defaults_for: str = "cifar10",
    backend: str = "auto",
) -> list[dict]:
    """Train ``model`` in place with a training method (default: noise augmentation); return
    per-epoch records.

    Args:
        model: takes the normalized batch ``[B, C, H, W]`` and returns logits ``[B, K]`` (a tensor,
            or a dict or object holding one as "logits": rsengine.classifier.logits_of).
        dataset: items ``(x, label)`` with ``x`` ``[C, H, W]`` in pixel space ([0, 1]).
        sigma: noise standard deviation in pixel units, >= 0 (0 trains without noise).
        epochs: passes over ``dataset``.
        batch_size: images per SGD step (the last batch of an epoch may be smaller).
        lr: initial learning rate.
        momentum: SGD momentum in [0, 1).
        weight_decay: L2 penalty, >= 0.
        lr_schedule: ``"cosine"`` (annealed to 0 per step) or ``"step"`` (x0.1 every
            ``ceil(epochs / 3)`` epochs).
        mean, std: per-channel normalization applied after the noise; both or neither; one
            number (or 1-value sequence) serves every channel. With them, an input outside
            [0, 1] (a data set normalized already) gets an rsengine.normalization.InputRangeWarning.
        seed: seeds the shuffling, the noise and the global torch RNG during training.
        device: where to train; the model is moved there.
        log: called once per epoch with a one-line summary (e.g. ``print``).
        noise: "gaussian", "laplace" or "uniform" (rsengine.kernels.contract.NOISES), of
            standard deviation ``sigma`` per value: the noise the model will be certified with.
        method: a training method (rsengine.training_methods): a Method object, or its name
            ("gaussian", "consistency", "macer", "smoothadv", "smoothmix", "catrs") with the
            published defaults for ``defaults_for`` and ``sigma`` (method_named). Every method
            but "gaussian" draws its noisy copies from the engine's kernels (rsengine.training_noise)
            and needs sigma > 0.
        defaults_for: the data set whose published hyperparameters a method name takes
            ("mnist"; anything else: CIFAR-10's).
        backend: the kernels that draw the methods' copies (rsengine.backends.BACKENDS).

    Returns:
        One dict per epoch: ``epoch`` (1-based), ``lr`` (at the epoch's start), ``loss`` (the
        method's loss, mean over the epoch's inputs) and ``accuracy`` (of the noisy training
        copies the loss saw).
        The model is left in eval mode.

    Raises:
        ValueError, TypeError: an argument is out of range or of the wrong type, or the model's
            output holds no [B, K] logits tensor (rsengine.classifier.logits_of).

    Example:
        >>> import torch
        >>> from rsengine.data import TensorImageDataset
        >>> from rsengine.models import build_model
        >>> data = TensorImageDataset(torch.zeros(8, 1, 28, 28, dtype=torch.uint8),
        ...                           torch.arange(8) % 2)
        >>> len(train_model(build_model("mnist_cnn"), data, sigma=0.5, epochs=2, batch_size=4))
        2
    """
    sigma, epochs, batch_size, lr, momentum, weight_decay = check_recipe(
        sigma=sigma, epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum, weight_decay=weight_decay,
        lr_schedule=lr_schedule, seed=seed, noise=noise)
    mean, std = check_mean_std(mean, std)
    if len(dataset) == 0:
        raise ValueError(f"Expected `dataset` to be non-empty, got {dataset!r}")
    device = torch.device(device)
    method = resolve_method(method, sigma, noise, defaults_for=defaults_for, dataset_size=len(dataset), epochs=epochs,
                            seed=seed)
    training_noise = noise_named(noise, sigma) if sigma > 0 else None
    plain = method.plain

    model.to(device)
    shuffle_gen = torch.Generator().manual_seed(seed)
    noise_gen = torch.Generator(device=device).manual_seed(seed + 1)  # a stream apart from order
    loader = DataLoader(dataset if plain else _Indexed(dataset), batch_size=batch_size, shuffle=True,
                        generator=shuffle_gen)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                                weight_decay=weight_decay)
    mean_t = std_t = None
    if mean is not None:  # [C, 1, 1] for [B, C, H, W] batches, from the first input's channels
        first, _ = dataset[0]
        warn_if_normalized(first, "the first training input lies")
        mean_t, std_t = per_channel(torch.tensor(mean, device=device), torch.tensor(std, device=device), first.shape[0])
        mean_t, std_t = (t.view(-1, *(1,) * (first.ndim - 1)) for t in (mean_t, std_t))
    total_steps, step, history = epochs * len(loader), 0, []
    if not plain:
        copies = EngineNoise(training_noise, seed, device, backend)

        def classify(pixels: torch.Tensor) -> torch.Tensor:  # [N, *shape] pixels -> [N, K] logits
            if mean_t is not None:
                pixels = (pixels - mean_t) / std_t
            return logits_of(model(pixels), len(pixels))

    # fork_rng keeps the caller's global RNG state untouched while seeding it for the model.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model.train()
        for epoch in range(epochs):
            start = time.perf_counter()
            epoch_lr = _learning_rate(lr_schedule, lr, step, total_steps, epoch, epochs)

            def step_lr(step: int) -> float:
                return _learning_rate(lr_schedule, lr, step, total_steps, epoch, epochs)

            if plain:  # torch's generator, as the bundled checkpoint was trained
                loss_sum, correct, step = _train_epoch(model, loader, optimizer, step, step_lr, training_noise,
                                                       noise_gen, mean_t, std_t)
            else:
                loss_sum, correct, step = _method_epoch(model, loader, optimizer, step, step_lr, method, copies,
                                                        classify, epoch, epochs, sigma)
            seen = len(loader.dataset)
            record = {"epoch": epoch + 1, "lr": epoch_lr, "loss": loss_sum.item() / seen,
                      "accuracy": correct.item() / seen}
            history.append(record)
            if log is not None:
                log(f"epoch {epoch + 1}/{epochs}  lr {epoch_lr:.4g}  loss {record['loss']:.4f}  "
                    f"acc {record['accuracy']:.4f}  {time.perf_counter() - start:.1f}s")
    model.eval()
    return history
