"""Saving and loading networks and training states, safely.

- Files are written atomically (temp file + rename): a crash leaves the previous file intact.
- Loading uses `torch.load(weights_only=True)`: a crafted pickle is refused instead of run.
- Network files use BasicSR's layout `{'params': state_dict, 'params_ema': state_dict}` so BasicSR,
  neosr, traiNNer and spandrel checkpoints load here and ours load there. `.safetensors` works too.
"""
import io
import os
import pickle
import re

import torch

from restore.utils.errors import RestoreError
from restore.utils.img_io import atomic_write_bytes


def save_atomic(obj, path: str) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as e:
        raise RestoreError(f"{path}: cannot save ({e.strerror}); the previous checkpoint is unchanged") from None


def load_safely(path: str):
    """torch.load with weights_only=True, every failure turned into a one-line error naming the file."""
    if not os.path.isfile(path):
        raise RestoreError(f"{path}: checkpoint not found")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        try:
            flat = load_file(path)
        except Exception as e:
            raise RestoreError(f"{path}: not a readable safetensors file ({e})") from None
        return unflatten_keys(flat)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's own message goes on to advise weights_only=False, i.e. running the file's code:
        # name only what was refused.
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        what = f" ({found.group(1)})" if found else ""
        raise RestoreError(f"{path}: refused to load: the file holds Python objects{what} besides "
                           f"tensors, which could run code; restore loads only tensors") from None
    except Exception as e:  # truncated zip, not a torch file, ...
        raise RestoreError(f"{path}: cannot read checkpoint ({type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else 'corrupted'})") from None


def unflatten_keys(flat: dict) -> dict:
    """safetensors stores one flat dict; `params/x.weight` keys restore the BasicSR nesting."""
    if all("/" in k for k in flat):
        nested = {}
        for k, v in flat.items():
            group, name = k.split("/", 1)
            nested.setdefault(group, {})[name] = v
        return nested
    return {"params": flat}


def save_network_file(path: str, params: dict, params_ema: dict | None = None) -> None:
    if path.endswith(".safetensors"):
        from safetensors.torch import save as st_save
        flat = {f"params/{k}": v.detach().cpu().clone().contiguous() for k, v in params.items()}
        if params_ema is not None:
            flat.update({f"params_ema/{k}": v.detach().cpu().clone().contiguous() for k, v in params_ema.items()})
        atomic_write_bytes(path, st_save(flat))
        return
    obj = {"params": params}
    if params_ema is not None:
        obj["params_ema"] = params_ema
    save_atomic(obj, path)


def extract_state_dict(ckpt, param_key: str, path: str) -> dict:
    """Pick `param_key` (falling back from params_ema to params, as BasicSR), strip 'module.'."""
    if not isinstance(ckpt, dict):
        raise RestoreError(f"{path}: not a network checkpoint (expected a dict of tensors)")
    if param_key in ckpt and isinstance(ckpt[param_key], dict):
        sd = ckpt[param_key]
    elif param_key == "params_ema" and isinstance(ckpt.get("params"), dict):
        sd = ckpt["params"]
    elif all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        sd = ckpt  # a bare state_dict
    else:
        raise RestoreError(f"{path}: no '{param_key}' in checkpoint (keys: {', '.join(map(str, ckpt))})")
    return {(k[7:] if k.startswith("module.") else k): v for k, v in sd.items()}


def load_network(net: torch.nn.Module, path: str, param_key: str = "params", strict: bool = True) -> list[str]:
    """Load `param_key` of the file into `net`; returns the names of the net's tensors that kept
    their values (non-strict: missing from the file or of another shape)."""
    sd = extract_state_dict(load_safely(path), param_key, path)
    own = net.state_dict()
    missing = [k for k in own if k not in sd]
    extra = [k for k in sd if k not in own]
    wrong = [f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in own
             if k in sd and sd[k].shape != own[k].shape]
    if strict and (missing or extra or wrong):
        parts = []
        if missing:
            parts.append(f"missing keys: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        if extra:
            parts.append(f"unexpected keys: {', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}")
        if wrong:
            parts.append(f"wrong shapes: {', '.join(wrong[:5])}{' ...' if len(wrong) > 5 else ''}")
        raise RestoreError(f"{path}: does not fit the network ({'; '.join(parts)})")
    for k, v in sd.items():
        if k in own and v.shape == own[k].shape and v.is_floating_point() and not torch.isfinite(v).all():
            raise RestoreError(f"{path}: parameter '{k}' holds NaN or Inf values")
    sd = {k: v for k, v in sd.items() if k in own and v.shape == own[k].shape}
    net.load_state_dict(sd, strict=False)
    return [k for k in own if k not in sd]
