"""mechjax: mechanistic interpretability in JAX/Flax."""

from setuptools import find_packages, setup

setup(
    name="mechjax",
    version="0.1.0",
    description="JAX/Flax mechanistic interpretability: named sites, interventions as data, "
    "batched patching, clamped training.",
    packages=find_packages(include=["mechjax", "mechjax.*"]),
    # the zoo's trained weights, configs and tokenizers, and its circuits (JSON), ship inside
    # the package
    package_data={"mechjax.zoo": ["weights/*/*", "circuits/*.json"]},
    python_requires=">=3.11",
    install_requires=[
        "jax>=0.6",
        "flax>=0.10",
        "optax>=0.2.3",
        "orbax-checkpoint>=0.11",
        "chex>=0.1.88",
        "ml_collections>=1.0",
        "numpy>=1.26",
        "safetensors>=0.4",
        "tokenizers>=0.19",
        "matplotlib>=3.8",
        "tensorboardX>=2.6",
        "tqdm>=4.66",
    ],
    extras_require={
        # Test-only: parity against HF transformers needs torch. Install the CPU wheel first
        # (`pip install torch==2.13.0`), otherwise pip pulls a multi-GB CUDA build.
        "test": ["pytest>=8", "pytest-xdist>=3.5", "ruff>=0.5", "transformers>=4.45", "torch>=2.3"],
    },
    entry_points={"console_scripts": ["mechjax=mechjax.cli:main"]},
)
