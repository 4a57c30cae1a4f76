"""rsengine: randomized-smoothing certification with fused Triton kernels."""
from setuptools import setup

setup(
    name="rsengine",
    version="0.1.0",
    description="Fast, exact randomized-smoothing certification (Cohen et al. 2019) with fused Triton kernels",
    python_requires=">=3.10",
    # The Triton kernels live in ./kernels but install as rsengine.kernels: a top-level
    # package named `kernels` would collide with another project of that name.
    packages=["rsengine", "rsengine.kernels"],
    package_dir={"rsengine": "rsengine", "rsengine.kernels": "kernels"},
    # cpu_noise.c is compiled on first use by rsengine.kernels.cpu_build (a C compiler, no headers);
    # digits/ holds the embedded MNIST digits as arrays (digits/make_digits.py says whence).
    package_data={"rsengine": ["weights/*.pt", "digits/*.npz", "classes/*.txt"], "rsengine.kernels": ["*.c"]},
    install_requires=[
        "torch>=2.4",
        "numpy>=1.24",
        "scipy>=1.11",
    ],
    # Plots are the one use of matplotlib: a run without --plot needs none (the embedded default
    # skips its plot with a note when it is missing).
    extras_require={
        "plot": ["matplotlib>=3.7"],
        "triton": ["triton>=3.0"],
        # Image folders, ImageNet, torchvision:NAME and timm:NAME models (rsengine.vision).
        "vision": ["torchvision>=0.19", "timm>=1.0", "pillow>=9"],
        "test": ["pytest>=8", "pytest-benchmark>=4", "statsmodels>=0.14", "hypothesis>=6", "triton>=3.0",
                 "matplotlib>=3.7", "pillow>=9"],
    },
    entry_points={"console_scripts": ["rsengine=rsengine.cli:console_main"]},
)
