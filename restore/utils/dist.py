"""torch.distributed helpers. Launch with `torchrun`; the env:// variables say rank and world size."""
import os

import torch
import torch.distributed as dist

from restore.utils.errors import RestoreError


def get_dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_dist(backend: str | None, use_cuda: bool) -> tuple[int, int]:
    """Initialise the process group from torchrun's environment (no-op when not launched by it).
    `use_cuda`: whether the run's device is a GPU (`runs_on_cuda(opt)`). It picks the
    default backend, NCCL for GPUs and gloo for the CPU (a `device: cpu` run on a GPU machine must not
    get NCCL, which moves no CPU tensors), and pins each rank to the GPU of its LOCAL_RANK."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return get_dist_info()
    if backend is None:
        backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        local_rank, gpus = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
        if local_rank >= gpus:
            raise RestoreError(f"torchrun: local rank {local_rank} has no GPU of its own on this machine "
                               f"({gpus} GPU(s)): use --nproc_per_node {gpus} or less, or device: cpu")
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, init_method="env://")
    return get_dist_info()


def close_dist(ok: bool) -> None:
    """Tear the process group down before the interpreter exits. Left to interpreter shutdown, gloo's
    threads are destroyed while still joinable and a rank can abort ("terminate called without an
    active exception", exit -6) after a run that succeeded. After a success the ranks meet first so that
    none leaves while another still talks to it; after an error they do not, since a rank that failed
    early would wait for the others forever."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    if ok:
        dist.barrier()
    dist.destroy_process_group()


def is_main_process() -> bool:
    return get_dist_info()[0] == 0


def barrier() -> None:
    if get_dist_info()[1] > 1:
        dist.barrier()


def all_gather_list(items: list) -> list:
    """Concatenate a picklable list from every rank (validation results)."""
    world = get_dist_info()[1]
    if world == 1:
        return items
    gathered = [None] * world
    dist.all_gather_object(gathered, items)
    return [x for part in gathered for x in part]


def broadcast_object(obj):
    if get_dist_info()[1] == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
