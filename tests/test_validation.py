"""The shared argument checks: one message template, no silent clamping."""
import math

import numpy as np
import pytest
import torch

from torch.utils.data import DataLoader, TensorDataset

from rsengine.validation import (check_choice, check_int_at_least, check_mean_std, check_non_negative_float,
                                 check_not_a_data_set, check_positive_float, check_positive_int, check_probability)


@pytest.mark.parametrize(
    "check, args, error, message",
    [
        (check_positive_int, ("n", 0), ValueError, "Expected `n` to be an integer >= 1, got 0"),
        (check_positive_int, ("n", True), TypeError, "Expected `n` to be an integer >= 1, got True"),
        (check_int_at_least, ("seed", -1, 0), ValueError, "Expected `seed` to be an integer >= 0, got -1"),
        (check_positive_float, ("sigma", math.inf), ValueError, "Expected `sigma` to be a finite number > 0, got inf"),
        (check_non_negative_float, ("radius", -0.5), ValueError,
         "Expected `radius` to be a finite number >= 0, got -0.5"),
        (check_probability, ("alpha", 1.5), ValueError, "Expected `alpha` in (0, 1), got 1.5"),
        (check_probability, ("alpha", math.nan), ValueError, "Expected `alpha` in (0, 1), got nan"),
        (check_choice, ("backend", "cuda", ("auto", "torch")), ValueError,
         "Expected `backend` to be one of 'auto', 'torch', got 'cuda'"),
    ],
    ids=["int-zero", "int-bool", "int-minimum", "float-inf", "non-negative", "probability", "probability-nan",
         "choice"],
)
def test_checks_raise_one_message_template(check, args, error, message):
    with pytest.raises(error) as info:
        check(*args)
    assert str(info.value) == message


def test_checks_return_values_unchanged():
    assert check_positive_int("n", np.int64(3)) == 3
    assert check_non_negative_float("radius", 0) == 0.0
    assert check_probability("alpha", 0.001) == 0.001


@pytest.mark.parametrize(
    "mean, std, error, match",
    [
        ((0.1,), None, ValueError, "both given or both None"),
        ((0.1, 0.2), (0.3,), ValueError, "same non-zero length"),
        ((), (), ValueError, "same non-zero length"),
        ((float("nan"),), (0.3,), ValueError, "Expected `mean` to hold finite numbers"),
        ((0.1,), (-1.0,), ValueError, "Expected `std` to be a finite number > 0, got -1.0"),
        ("a", "b", TypeError, "Expected `mean` to be a number or a sequence of numbers"),
        (0.5, (0.2, 0.3), ValueError, "same non-zero length"),
    ],
    ids=["mean-only", "length-mismatch", "empty", "nan-mean", "negative-std", "string", "number-and-two"],
)
def test_check_mean_std_rejects(mean, std, error, match):
    with pytest.raises(error, match=match):
        check_mean_std(mean, std)


def test_check_mean_std_accepts():
    assert check_mean_std(None, None) == (None, None)
    assert check_mean_std([0.5, 0.25], torch.tensor([1.0, 2.0])) == ((0.5, 0.25), (1.0, 2.0))
    assert check_mean_std(np.array([0.5]), [np.float32(2.0)]) == ((0.5,), (2.0,))


@pytest.mark.parametrize("mean, std", [(0.5, 0.25), (torch.tensor(0.5), np.float64(0.25)), ([0.5], (0.25,))],
                         ids=["numbers", "0-d-tensor-and-numpy-scalar", "one-value-sequences"])
def test_check_mean_std_takes_one_number_for_every_channel(mean, std):
    assert check_mean_std(mean, std) == ((0.5,), (0.25,))


_PAIRS = TensorDataset(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))


@pytest.mark.parametrize("data, got, argument", [
    (_PAIRS, "a torch Dataset (TensorDataset)", "dataset"),
    (DataLoader(_PAIRS, batch_size=2), "a torch DataLoader", "loader.dataset"),
    ([(torch.zeros(3), 0), (torch.zeros(3), 1)], "a list of (x, label) pairs", "dataset"),
], ids=["dataset", "dataloader", "pairs"])
def test_check_not_a_data_set_points_at_certify_dataset(data, got, argument):
    with pytest.raises(TypeError) as info:
        check_not_a_data_set("xs", data, "to be a tensor [M, *shape]")
    assert str(info.value).startswith(f"Expected `xs` to be a tensor [M, *shape], got {got}: ask of a data set "
                                      f"with rsengine.certify_dataset(smooth, {argument}, question)")


@pytest.mark.parametrize("value", [torch.zeros(2, 3), [torch.zeros(3), torch.zeros(3)], [], np.zeros((2, 3)), None],
                         ids=["tensor", "tensors", "empty-list", "numpy", "none"])
def test_check_not_a_data_set_leaves_other_values_to_the_caller(value):
    assert check_not_a_data_set("xs", value, "to be a tensor [M, *shape]") is None
