"""The shared argument checks: one message template, no silent clamping."""
import math

import numpy as np
import pytest
import torch

from rsengine.validation import (check_choice, check_int_at_least, check_mean_std, check_non_negative_float,
                                 check_positive_float, check_positive_int, check_probability)


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
        ("a", "b", TypeError, "Expected `mean` to be a sequence"),
    ],
    ids=["mean-only", "length-mismatch", "empty", "nan-mean", "negative-std", "string"],
)
def test_check_mean_std_rejects(mean, std, error, match):
    with pytest.raises(error, match=match):
        check_mean_std(mean, std)


def test_check_mean_std_accepts():
    assert check_mean_std(None, None) == (None, None)
    assert check_mean_std([0.5, 0.25], torch.tensor([1.0, 2.0])) == ((0.5, 0.25), (1.0, 2.0))
    assert check_mean_std(np.array([0.5]), [np.float32(2.0)]) == ((0.5,), (2.0,))
