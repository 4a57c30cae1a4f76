"""Tests for rsengine.inputs: each way one input can be unusable gives one line naming the data set,
the index and the file, and what to do; good inputs come back as they are."""
import pickle

import numpy as np
import pytest
import torch

from rsengine.inputs import BadInputError, InputCheck, input_file


class Folder(list):
    """A list data set that says where its items come from, as torchvision's ImageFolder does."""

    @property
    def samples(self):
        return [(f"/data/c{label}/{i}.png", label) for i, (_, label) in enumerate(self)]


class Unreadable:
    """Item 1 fails the way PIL fails on a truncated file."""

    samples = [("/data/a/0.png", 0), ("/data/a/1.png", 0)]

    def __len__(self):
        return 2

    def __getitem__(self, index):
        if index == 1:
            raise OSError("image file is truncated (3 bytes not processed)")
        return torch.zeros(1, 2, 2), 0


def _refusal(check, index) -> BadInputError:
    with pytest.raises(BadInputError) as info:
        check.load(index)
    assert info.value.index == index and "\n" not in str(info.value)
    return info.value


def test_good_inputs_load_as_they_are_with_int_labels():
    data = Folder([(torch.rand(1, 2, 2), 0), (torch.rand(1, 2, 2), np.int64(1)), (torch.rand(1, 2, 2), torch.tensor(2))])
    check = InputCheck(data, "toy", num_classes=3)
    for index in range(3):
        x, label = check.load(index)
        assert torch.equal(x, data[index][0]) and label == index and type(label) is int


def test_an_unreadable_file_is_named_with_its_index():
    error = _refusal(InputCheck(Unreadable(), "imgs", 10), 1)
    assert str(error) == ("input 1 of data set 'imgs' (/data/a/1.png) cannot be read (image file is truncated (3 bytes "
                          "not processed)): replace or remove the file, or skip such inputs (rsengine certify: "
                          "--on-bad-input skip)")
    assert error.reason == "input 1 of data set 'imgs' (/data/a/1.png) cannot be read (image file is truncated (3 bytes " \
                           "not processed))"


def test_another_size_names_the_first_inputs_and_the_resize_options():
    check = InputCheck(Folder([(torch.zeros(1, 28, 28), 0), (torch.zeros(1, 32, 30), 1)]), "imgs", 10)
    check.load(0)
    assert str(_refusal(check, 1)) == ("input 1 of data set 'imgs' (/data/c1/1.png) is 1x32x30, not 1x28x28 like "
                                       "input 0: resize or crop the images to one size (rsengine certify: "
                                       "--resize/--crop) or remove it")


@pytest.mark.parametrize("item, problem", [
    ((torch.tensor([[0.5, float("nan")]]), 0), "holds NaN or infinite values"),
    ((torch.tensor([[0.5, float("inf")]]), 0), "holds NaN or infinite values"),
    ((torch.zeros(1, 2), 10), "has label 10, not a class of the model (0 to 9)"),
    ((torch.zeros(1, 2), -1), "has label -1, not a class of the model (0 to 9)"),
    ((torch.zeros(1, 2), 1.0), "has label 1.0, not a class of the model"),
    ((torch.zeros(1, 2), True), "has label True, not a class of the model"),
    ((torch.zeros(1, 2), "cat"), "has label 'cat', not a class of the model"),
    ((np.zeros((1, 2)), 0), "holds a ndarray, not a tensor"),
    ((torch.zeros(0, 2), 0), "is empty"),
    (torch.zeros(1, 2), "is a Tensor, not an (x, label) pair"),
])
def test_each_problem_is_one_line(item, problem):
    error = _refusal(InputCheck([item], "toy", 10), 0)
    assert str(error).startswith(f"input 0 of data set 'toy' {problem}")


def test_sound_mode_refuses_an_input_off_the_grid():
    check = InputCheck([(torch.full((1, 2), 0.5), 0), (torch.full((1, 2), 128 / 255), 0)], "toy", 10, sound=True)
    assert "is off the 1/255 grid" in str(_refusal(check, 0)) and "sound mode needs 8-bit images" in str(_refusal(check, 0))
    check.load(1)


def test_the_error_survives_pickling_between_ranks():
    error = _refusal(InputCheck(Unreadable(), "imgs", 10), 1)
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.reason, copy.index) == (str(error), error.reason, 1)


def test_input_file_is_none_where_the_data_set_does_not_say():
    assert input_file([(0, 0)], 0) is None and input_file(Folder([(0, 0)]), 5) is None


def test_another_dtype_is_refused_before_the_stack_casts_it():
    # torch.stack would turn the uint8 image's 255 into 255.0 among float pixels in [0, 1].
    check = InputCheck([(torch.rand(1, 2), 0), (torch.full((1, 2), 255, dtype=torch.uint8), 0)], "toy", 10)
    check.load(0)
    assert str(_refusal(check, 1)).startswith("input 1 of data set 'toy' is uint8, not float32 like input 0: give "
                                              "every input the same type")


def test_the_reference_is_the_first_input_that_passes_every_check():
    check = InputCheck([(torch.full((1, 2), float("nan")), 0), (torch.zeros(1, 3), 0), (torch.zeros(1, 2), 0)],
                       "toy", 10)
    _refusal(check, 0)
    check.load(1)
    assert check.reference.index == 1 and "like input 1" in str(_refusal(check, 2))
