"""Checks before training: every file readable, one real batch through the net, at the right scale.

Run before the experiment folder is made, so bad data, a wrong `scale` or an arch that does not fit
the data ends the run in seconds with one line instead of an error minutes (or a DataLoader worker)
later, and nothing is created or archived.
"""
import torch
from torch.utils.data import default_collate

from restore.utils.errors import RestoreError

CROP = 48  # LQ pixels a side: the scale and the channels are what is checked, so a crop keeps it quick


def check_data_and_net(model, train_set, sampler, val_sets: dict, scale: int) -> None:
    """Header check of every file of every dataset, then the first training batch (as the sampler
    draws it) and the first item of each validation set through the net in eval mode.

    Draws nothing from the global RNGs (items take their seeds from the sampler or their names), so
    a checked run trains exactly as an unchecked one.
    """
    for ds in (train_set, *val_sets.values()):
        ds.verify_files()
    first_batch = [train_set[item] for item, _ in zip(iter(sampler), range(sampler.batch_size))]
    samples = [("datasets.train", default_collate(first_batch))]
    samples += [(f"datasets.{phase}", default_collate([ds[0]])) for phase, ds in val_sets.items()]
    net = model.net_g
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            for where, batch in samples:
                lq = batch["lq"][..., :CROP, :CROP]
                out = net(model.to_device(lq))
                want = (batch["gt"].shape[1], lq.shape[-2] * scale, lq.shape[-1] * scale)
                if tuple(out.shape[1:]) != want:
                    raise RestoreError(f"{where}: the net turns a {tuple(lq.shape[1:])} input into "
                                       f"{tuple(out.shape[1:])}, but scale {scale} and the GT need {want} "
                                       f"(check scale, network_g.upscale and the channel counts)")
    finally:
        net.train(was_training)
