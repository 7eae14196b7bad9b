"""Choices measured once per machine and remembered: which of several equivalent computations is
fastest here (NSR's sparse-group conv formulation, the memory format a network trains in).

The fastest way depends on the CPU, the shapes and the dtype, so it is timed on first use and kept
in this process and in a JSON file keyed by the machine (CPU model, torch version, threads), so that
every later run on the machine makes the same choice -- which is what keeps a resumed run equal to
an uninterrupted one. The file lives in ~/.cache/restore/ (or $XDG_CACHE_HOME/restore/); its
environment variable names another file, or "off" for in-process choices only. A cache that cannot
be read or written is only a cache: the choice is measured again.
"""
import functools
import json
import os
import tempfile
from typing import Callable, Optional, Sequence

import torch

from restore.utils.img_io import current_umask
from restore.utils.machine import cpu_model


@functools.lru_cache(maxsize=1)
def machine_id() -> str:
    """CPU model, torch version and thread count: what a measured choice is valid for."""
    return f"{cpu_model()}, torch {torch.__version__}, {torch.get_num_threads()} threads"


def device_label(device: torch.device) -> str:
    """'cpu', or the GPU's type (a choice measured on one GPU model holds for that model)."""
    device = torch.device(device)
    return f"{device.type} {torch.cuda.get_device_name(device)}" if device.type == "cuda" else device.type


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on `device`: a CUDA op returns when launched, not when done, so a
    timer read without this measures the launch."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


class ChoiceCache:
    def __init__(self, env: str, filename: str):
        self.env, self.filename = env, filename
        self.choices: dict[str, str] = {}  # this process's choices

    def path(self) -> Optional[str]:
        env = os.environ.get(self.env)
        if env:
            return None if env == "off" else env
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return os.path.join(base, "restore", self.filename)

    def stored(self) -> dict:
        path = self.path()
        try:
            with open(path) as f:
                data = json.load(f)
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError, TypeError):
            return {}

    def store(self, key: str, choice: str) -> None:
        """Read-modify-write, replaced atomically."""
        path = self.path()
        if not path:
            return
        try:
            folder = os.path.dirname(os.path.abspath(path))
            os.makedirs(folder, exist_ok=True)
            data = {**self.stored(), key: choice}
            fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=1, sort_keys=True)
            os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; files follow the umask
            os.replace(tmp, path)
        except OSError:
            pass

    def choose(self, key: str, options: Sequence[str], measure: Callable[[], dict],
               pick: Optional[Callable[[dict], str]] = None) -> str:
        """The remembered choice for `key`, else `pick` of `measure()`'s {option: seconds} (default:
        the smallest; ties: the first listed), remembered from then on."""
        choice = self.choices.get(key)
        if choice is None:
            choice = self.stored().get(key)
            if choice not in options:
                times = measure()
                choice = pick(times) if pick else min(options, key=times.__getitem__)
                self.store(key, choice)
            self.choices[key] = choice
        return choice
