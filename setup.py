"""cm_jax: consistency models (CD, CT, iCT, LCM) in JAX/Flax."""

import setuptools

setuptools.setup(
    name="cm_jax",
    version="0.1.0",
    description="Consistency models in JAX/Flax: CD, CT, iCT and LCM.",
    packages=setuptools.find_packages(include=["cm_jax", "cm_jax.*"]),
    # The real-image fixture of the :smoke configs and tests (400 CIFAR-10
    # images, scripts/make_cifar10_fixture.py).
    package_data={"cm_jax": ["data/fixtures/*.npz"]},
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.6,<0.12",
        "flax>=0.10,<0.13",
        "optax>=0.2.4,<0.3",
        "orbax-checkpoint>=0.11,<0.13",
        "chex>=0.1.88,<0.2",
        "ml-collections>=1.0,<2",
        "clu>=0.0.12,<0.1",
        "tensorflow-datasets>=4.9.6,<5",
        "importlib_resources",  # tfds builders (download=True) import it
        "scikit-learn>=1.3,<2",  # ships the embedded `digits` data set
        "numpy>=1.26",
        "pillow>=10",
        "absl-py>=2",
    ],
    extras_require={
        # clu's TensorBoard writer imports TensorFlow and tensorboard; without
        # them cm_jax logs to metrics.jsonl only.
        "tensorboard": ["tensorflow-cpu>=2.16", "tensorboard>=2.16"],
        "test": ["pytest>=8", "pytest-xdist>=3"],
    },
)
