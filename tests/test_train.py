"""Tests for rsengine.train: noise augmentation in pixel space before normalization, loss going
down, exact reproducibility for a seed, learning-rate schedules and argument validation."""
import copy
import math

import pytest
import torch
from torch import nn

from rsengine import InputRangeWarning
from rsengine.data import TensorImageDataset, dataset_stats, load_dataset
from rsengine.models import build_model
from rsengine.train import LR_SCHEDULES, train_model


def _toy_dataset(n=64, seed=0):
    """Two classes an MNIST CNN separates quickly: a bright top half or a bright bottom half."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = (torch.rand(n, 1, 28, 28, generator=gen) * 60).to(torch.uint8)
    images[labels == 0, :, :14] += 150
    images[labels == 1, :, 14:] += 150
    return TensorImageDataset(images, labels)


def _model(seed=0):
    torch.manual_seed(seed)
    return build_model("mnist_cnn")


def test_loss_decreases():
    history = train_model(_model(), _toy_dataset(), sigma=0.25, epochs=4, batch_size=16, lr=0.05)
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert history[-1]["accuracy"] > history[0]["accuracy"]
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in history)


def test_same_seed_reproduces_exactly():
    data, start = _toy_dataset(), _model()
    runs = []
    for _ in range(2):
        model = copy.deepcopy(start)
        runs.append((train_model(model, data, sigma=0.5, epochs=2, batch_size=8, seed=7,
                                 mean=(0.13,), std=(0.31,)), model))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1].parameters(), runs[1][1].parameters()):
        assert torch.equal(a, b)
    other = copy.deepcopy(start)
    assert train_model(other, data, sigma=0.5, epochs=2, batch_size=8, seed=8, mean=(0.13,), std=(0.31,)) != runs[0][0]


def test_leaves_global_rng_and_eval_mode():
    state = torch.get_rng_state()
    model = _model()
    train_model(model, _toy_dataset(16), sigma=0.1, epochs=1, batch_size=8)
    assert torch.equal(torch.get_rng_state(), state)
    assert not model.training


class _Recorder(nn.Module):
    """Records what the model sees; a fixed linear head keeps the loss differentiable."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.fc(x.flatten(1))


def test_noise_is_added_in_pixel_space_then_normalized():
    images = torch.full((4096, 1, 2, 2), 51, dtype=torch.uint8)  # pixel value 0.2
    data = TensorImageDataset(images, torch.zeros(4096, dtype=torch.long))
    model = _Recorder()
    train_model(model, data, sigma=0.5, epochs=1, batch_size=4096, lr=1e-6, mean=(0.1,), std=(2.0,))
    seen = model.seen[0]
    # (0.2 + 0.5 z - 0.1) / 2 has mean 0.05 and std 0.25 (normalizing first would give std 0.5).
    assert abs(seen.mean().item() - 0.05) < 0.01
    assert abs(seen.std().item() - 0.25) < 0.01


def test_sigma_zero_is_clean_training():
    data = TensorImageDataset(torch.full((8, 1, 2, 2), 255, dtype=torch.uint8), torch.zeros(8, dtype=torch.long))
    model = _Recorder()
    train_model(model, data, sigma=0.0, epochs=1, batch_size=8)
    assert torch.equal(model.seen[0], torch.ones(8, 1, 2, 2))


@pytest.mark.parametrize("schedule", LR_SCHEDULES)
def test_learning_rate_schedules(schedule):
    history = train_model(_model(), _toy_dataset(16), sigma=0.1, epochs=6, batch_size=16, lr=0.1,
                          lr_schedule=schedule)
    lrs = [r["lr"] for r in history]
    if schedule == "step":  # /10 every ceil(6 / 3) = 2 epochs
        expected = [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    else:  # one step per epoch: lr * (1 + cos(pi * e / 6)) / 2 at the start of epoch e
        expected = [0.1 * 0.5 * (1 + math.cos(math.pi * e / 6)) for e in range(6)]
    assert lrs == pytest.approx(expected, rel=1e-12)


def test_logs_one_line_per_epoch():
    lines = []
    train_model(_model(), _toy_dataset(16), sigma=0.1, epochs=2, batch_size=8, log=lines.append)
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2") and "loss" in lines[1]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"sigma": -0.1}, ValueError, "Expected `sigma` to be a finite number >= 0, got -0.1"),
        ({"sigma": float("nan")}, ValueError, "Expected `sigma`"),
        ({"sigma": None}, TypeError, "Expected `sigma`"),
        ({"epochs": 0}, ValueError, "Expected `epochs` to be an integer >= 1, got 0"),
        ({"batch_size": 2.0}, TypeError, "Expected `batch_size`"),
        ({"lr": 0.0}, ValueError, "Expected `lr`"),
        ({"momentum": 1.0}, ValueError, r"Expected `momentum` in \[0, 1\), got 1.0"),
        ({"weight_decay": -1e-4}, ValueError, "Expected `weight_decay`"),
        ({"lr_schedule": "linear"}, ValueError, "Expected `lr_schedule` to be one of 'cosine', 'step'"),
        ({"mean": (0.1,)}, ValueError, "both given or both None"),
        ({"mean": (0.1,), "std": (0.0,)}, ValueError, "Expected `std`"),
        ({"mean": (0.1, 0.2), "std": (0.3,)}, ValueError, "same non-zero length"),
        ({"seed": 1.5}, TypeError, "Expected `seed`"),
    ],
    ids=["negative-sigma", "nan-sigma", "none-sigma", "zero-epochs", "float-batch", "zero-lr", "momentum-1",
         "negative-wd", "bad-schedule", "mean-only", "zero-std", "length-mismatch", "float-seed"],
)
def test_validation(kwargs, error, match):
    args = {"sigma": 0.25, "epochs": 1, **kwargs}
    with pytest.raises(error, match=match):
        train_model(_model(), _toy_dataset(8), **args)


def test_empty_dataset():
    empty = TensorImageDataset(torch.zeros(0, 1, 28, 28, dtype=torch.uint8), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="non-empty"):
        train_model(_model(), empty, sigma=0.25, epochs=1)


def test_one_epoch_on_mnist_learns_under_noise():
    # The bundled model's recipe trains 30 epochs; one already gets most of the way.
    train, test = load_dataset("mnist", "train"), load_dataset("mnist", "test")
    mean, std = dataset_stats("mnist")
    model = _model()
    train_model(model, train, sigma=0.25, epochs=1, batch_size=64, lr=0.05, lr_schedule="cosine", mean=mean, std=std)
    x = test.images.float() / 255
    x = x + 0.25 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        accuracy = (model((x - mean[0]) / std[0]).argmax(1) == test.labels).float().mean().item()
    assert accuracy > 0.8


# --- the field's common mistakes: classifier outputs, normalized inputs, one mean --------------


class _Head(nn.Module):
    """A linear head on [B, 3, 2, 2] images whose logits come back as ``wrap(logits)``."""

    def __init__(self, wrap=lambda t: t):
        super().__init__()
        torch.manual_seed(0)
        self.fc, self.wrap = nn.Linear(12, 2), wrap

    def forward(self, x):
        return self.wrap(self.fc(x.flatten(1)))


class _Output:
    def __init__(self, logits):
        self.logits = logits


def _rgb(n=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return TensorImageDataset(torch.randint(0, 256, (n, 3, 2, 2), dtype=torch.uint8, generator=gen),
                              torch.arange(n) % 2)


@pytest.mark.parametrize("wrap", [lambda t: {"logits": t}, _Output], ids=["dict-with-logits", "object-with-logits"])
def test_trains_a_model_that_returns_a_dict_or_a_model_output(wrap):
    plain, wrapped = _Head(), _Head(wrap)
    expected = train_model(plain, _rgb(), sigma=0.25, epochs=2, batch_size=8)
    assert train_model(wrapped, _rgb(), sigma=0.25, epochs=2, batch_size=8) == expected
    assert torch.equal(wrapped.fc.weight, plain.fc.weight)


@pytest.mark.parametrize("wrap, error, match", [
    (lambda t: (t,), TypeError, "Expected the classifier to return a tensor .* got a tuple"),
    (lambda t: {"out": t}, TypeError, r"got a dict with keys \['out'\]"),
    (lambda t: t[..., None], ValueError, r"\[batch, num_classes\] = \[8, num_classes\], got \[8, 2, 1\]"),
], ids=["tuple", "dict-without-logits", "three-dimensional"])
def test_an_output_without_batch_by_class_logits_is_refused(wrap, error, match):
    with pytest.raises(error, match=match):
        train_model(_Head(wrap), _rgb(), sigma=0.25, epochs=1, batch_size=8)


@pytest.mark.parametrize("mean, std", [(0.4, 0.2), ((0.4,), [0.2])], ids=["numbers", "one-value-sequences"])
def test_one_mean_and_std_serve_every_channel(mean, std):
    per_channel, one = _Head(), _Head()
    expected = train_model(per_channel, _rgb(), sigma=0.25, epochs=2, batch_size=8, mean=(0.4,) * 3, std=(0.2,) * 3)
    assert train_model(one, _rgb(), sigma=0.25, epochs=2, batch_size=8, mean=mean, std=std) == expected
    assert torch.equal(one.fc.weight, per_channel.fc.weight)


def test_mean_of_neither_one_nor_c_values_is_refused_naming_both():
    with pytest.raises(ValueError, match=r"1 value or one per channel \(x.shape\[0\] = 3\), got 2"):
        train_model(_Head(), _rgb(), sigma=0.25, epochs=1, mean=(0.4, 0.4), std=(0.2, 0.2))


class _Normalized(torch.utils.data.Dataset):
    """A data set whose transform normalizes already (torchvision's Normalize(0.5, 0.25))."""

    def __init__(self, inner):
        self.inner = inner

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        x, y = self.inner[i]
        return (x - 0.5) / 0.25, y


def test_a_normalized_data_set_warns_when_train_normalizes_too():
    with pytest.warns(InputRangeWarning, match=r"the first training input lies in \[-1.86, 1.94\].*drop the Normalize"):
        train_model(_Head(), _Normalized(_rgb()), sigma=0.25, epochs=1, mean=0.5, std=0.25)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", InputRangeWarning)  # without mean/std the model takes what it is given
        train_model(_Head(), _Normalized(_rgb()), sigma=0.25, epochs=1)
