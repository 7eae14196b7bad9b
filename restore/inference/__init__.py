"""Inference: tiled and self-ensembled forward passes, model loading (option file, checkpoint + arch,
named zoo entry) and running a net over image files (restore-infer).

    from restore.inference import load_model
    net = load_model(model="nsr_sr_x2").net        # a shipped model, eval mode, on the CPU
"""
from restore.inference.ensemble import self_ensemble
from restore.inference.forward import inference_forward
from restore.inference.loading import load_model
from restore.inference.tiling import tiled_forward

__all__ = ["inference_forward", "load_model", "self_ensemble", "tiled_forward"]
