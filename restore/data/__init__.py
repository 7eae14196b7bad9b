"""Datasets and data loaders. Every `*_dataset.py` module registers its classes in DATASET_REGISTRY.

`datasets.<phase>` option blocks hold two kinds of keys: loader keys (below, BasicSR's names) and the
dataset class's own constructor arguments, which the registry validates.
"""
import torch

from restore.data.sampler import EpochSampler
from restore.data.worker_signals import StopSafeDataLoader, init_worker
from restore.utils.options import LOADER_KEYS
from restore.utils.registry import DATASET_REGISTRY, Registry

Registry.import_all("restore.data", "_dataset.py")


def split_loader_options(opt: dict) -> tuple[dict, dict]:
    dataset_opt = {k: v for k, v in opt.items() if k not in LOADER_KEYS}
    loader_opt = {k: opt.get(k, default) for k, default in LOADER_KEYS.items()}
    return dataset_opt, loader_opt


def build_dataset(opt: dict, phase: str):
    dataset_opt, _ = split_loader_options(opt)
    dataset_opt.setdefault("name", phase)
    return DATASET_REGISTRY.build(dataset_opt, f"datasets.{phase}", phase=phase)


def build_dataloader(dataset, opt: dict, phase: str, seed: int = 0, rank: int = 0, world_size: int = 1):
    """Training: EpochSampler (shuffled, resumable, DDP-split). Validation: batch 1 in order."""
    _, lo = split_loader_options(opt)
    workers = lo["num_worker_per_gpu"]
    if phase == "train":
        sampler = EpochSampler(len(dataset), lo["batch_size_per_gpu"], lo["dataset_enlarge_ratio"],
                               shuffle=True, seed=seed, rank=rank, world_size=world_size)
        return StopSafeDataLoader(dataset, batch_size=lo["batch_size_per_gpu"], sampler=sampler,
                                  num_workers=workers, pin_memory=lo["pin_memory"], drop_last=False,
                                  persistent_workers=bool(lo["persistent_workers"] and workers > 0),
                                  worker_init_fn=init_worker)
    # validation: every rank takes every world_size-th image; results are gathered afterwards
    indices = list(range(rank, len(dataset), world_size))
    return StopSafeDataLoader(torch.utils.data.Subset(dataset, indices), batch_size=1, shuffle=False,
                              num_workers=workers, worker_init_fn=init_worker)


__all__ = ["DATASET_REGISTRY", "build_dataset", "build_dataloader", "LOADER_KEYS"]
