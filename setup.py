from setuptools import find_packages, setup

setup(
    name="restore",
    version="0.1.0",
    description="Image restoration toolkit (SR, denoising, JPEG deblocking) in the BasicSR style",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["restore", "restore.*"]),
    package_data={"restore.inference": ["weights/zoo.yml", "weights/*.safetensors"],  # the model zoo
                  "restore.data": ["dataset_manifest.json"]},  # test-set sources and checksums
    install_requires=[
        "torch>=2.1", "numpy", "opencv-python-headless", "lmdb", "scikit-image", "pyyaml",
        "tensorboard", "tqdm", "safetensors", "threadpoolctl",
    ],
    extras_require={
        "test": ["pytest", "pytest-timeout", "pytest-xdist", "scikit-learn", "onnx", "onnxruntime"],
        # published checkpoints (ESRGAN, SwinIR, HAT, ...) through spandrel; it needs torchvision,
        # which pins its own torch: docs/published-models.md
        "models": ["spandrel>=0.4.2", "torchvision"],
    },
    entry_points={"console_scripts": [
        "restore-train=restore.train:cli",
        "restore-test=restore.test:cli",
        "restore-flops=restore.cli.flops:cli",
        "restore-lmdb=restore.cli.create_lmdb:cli",
        "restore-extract-subimages=restore.cli.extract_subimages:cli",
        "restore-infer=restore.cli.infer:cli",
        "restore-bench=restore.cli.benchmark:cli",
        "restore-export=restore.cli.export:cli",
        "restore-convert=restore.cli.convert:cli",
        "restore-download-datasets=restore.cli.download_datasets:cli",
        "restore-csc-calibrate=restore.cli.csc_calibrate:cli",
        "restore-leaks=restore.cli.find_leaks:cli",
        "restore-probe-features=restore.cli.probe_features:cli",
    ]},
)
