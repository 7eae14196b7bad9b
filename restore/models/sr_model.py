"""Image-to-image restoration model: super-resolution, denoising and JPEG deblocking alike.

The network maps LQ to GT; the losses in `train.*_opt` compare them. Validation rounds outputs to
8-bit before the metrics, as the literature does.
"""
import os

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from restore.archs import after_optimizer_step
from restore.inference import inference_forward
from restore.losses import active_losses, build_losses
from restore.metrics import calculate_metric
from restore.models.base_model import BaseModel
from restore.models.memory_format import set_memory_format
from restore.utils.dist import all_gather_list
from restore.utils.img_io import imwrite, tensor2img
from restore.utils.registry import MODEL_REGISTRY


@MODEL_REGISTRY.register()
class SRModel(BaseModel):
    def __init__(self, opt):
        super().__init__(opt)
        if self.is_train:
            losses, self.loss_windows = build_losses(opt["train"])
            self.losses = {name: loss.to(self.device) for name, loss in losses.items()}
            self.nonfinite_in_a_row = 0
            self.nonfinite_total = 0

    def to_device(self, t: torch.Tensor) -> torch.Tensor:
        t = t.to(self.device, non_blocking=True)
        return t.contiguous(memory_format=torch.channels_last) if self.channels_last else t

    # --- one training step ---------------------------------------------------------------------
    def optimize_parameters(self, batch: dict, it: int | None = None) -> dict:
        """One optimizer step on `batch`. `it` (1-based) picks the losses whose start_iter/end_iter
        window holds it; without it (benchmarks, tests) every loss counts."""
        if self.channels_last is None:
            self.decide_memory_format(tuple(batch["lq"].shape))
        set_memory_format(self.net_g, self.channels_last)  # back from validation's format
        self.wrap_for_training()
        lq, gt = self.to_device(batch["lq"]), self.to_device(batch["gt"])
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            out = self.train_net(lq)
        out = out.float()
        names = self.losses if it is None else active_losses(self.loss_windows, it)
        logs = {f"l_{name}": self.losses[name](out, gt) for name in names}
        total = sum(logs.values())
        self.scaler.scale(total).backward()
        # Decide to skip on values that are identical on every rank (reduced loss, all-reduced grads)
        # so no rank steps while another skips.
        loss_value = total.detach().clone()
        if self.world_size > 1:
            dist.all_reduce(loss_value)
            loss_value /= self.world_size
        self.scaler.unscale_(self.optimizer)
        if self.grad_clip:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.net_g.parameters(), self.grad_clip)
        else:  # the norm for the finite check only: clipping at inf would also multiply every grad by 1
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in self.net_g.parameters() if p.grad is not None])
        if not (torch.isfinite(loss_value) and torch.isfinite(grad_norm)):
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.update()  # fp16: lowers the scale; otherwise a no-op
            self.nonfinite_in_a_row += 1
            self.nonfinite_total += 1
            return {"loss": float(loss_value), "skipped": 1}
        self.nonfinite_in_a_row = 0
        self.scaler.step(self.optimizer)
        self.scaler.update()
        after_optimizer_step(self.net_g)  # e.g. CSC layers keep unit-norm atoms; a no-op for most nets
        self.update_ema()
        return {"loss": float(loss_value), **{k: float(v.detach()) for k, v in logs.items()}}

    # --- inference -----------------------------------------------------------------------------
    @torch.inference_mode()
    def test(self, lq: torch.Tensor) -> torch.Tensor:
        """The output for `lq`, tiled and/or with x8 self-ensemble as `val.tile` / `self_ensemble` say."""
        net = self.eval_net()
        set_memory_format(net, self.infer_channels_last)
        was_training = net.training
        net.eval()
        v = self.opt["val"]
        layout = torch.channels_last if self.infer_channels_last else torch.preserve_format
        lq = lq.to(self.device, memory_format=layout)
        out = inference_forward(net, lq, v["tile"], v["tile_pad"], v["self_ensemble"]).float()
        net.train(was_training)
        return out

    def validation(self, loader, dataset_name: str, metrics: dict | None, save_path=None,
                   pbar: bool = True) -> dict:
        """Per-image metrics on this rank's share of the images, gathered from every rank.

        Returns {'images': [{'name': key, metric: value, ...}, ...], 'mean': {metric: value}}.
        `save_path(key) -> str` saves each output image when given.
        """
        rows = []
        bar = tqdm(loader, desc=f"val {dataset_name}", unit="img", leave=False,
                   disable=not pbar or self.rank != 0)
        for batch in bar:
            out = self.test(batch["lq"])
            key = batch["key"][0]
            sr = tensor2img(out.cpu())
            row = {"name": key}
            if "gt" in batch:
                gt = tensor2img(batch["gt"])
                data = {"img": sr, "img2": gt}
                if "gt_channels" in batch:  # one-channel GT files: see restore/metrics/protocol.py
                    data["gt_channels"] = int(batch["gt_channels"][0])
                for mname, mopt in (metrics or {}).items():
                    row[mname] = float(calculate_metric(data, mopt, f"val.metrics.{mname}"))
            if save_path is not None:
                imwrite(save_path(key), sr)
            rows.append(row)
        rows = sorted(all_gather_list(rows), key=lambda r: r["name"])
        mean = {m: float(np.mean([r[m] for r in rows])) for m in (metrics or {}) if rows and m in rows[0]}
        return {"images": rows, "mean": mean}


def visualization_path(folder: str, suffix: str):
    def path(key):
        return os.path.join(folder, f"{key}_{suffix}.png")
    return path
