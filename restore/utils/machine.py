"""What machine this is, in words: for benchmark reports and for choices measured per machine."""
import datetime
import functools
import importlib.metadata
import os
import platform
import shlex


@functools.lru_cache(maxsize=None)
def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what the platform module knows. Read once: per-shape
    choices look it up on every training forward."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"


def cpu_name() -> str:
    """The CPU's model and its logical CPU count, as benchmark reports print it."""
    return f"{cpu_model()} ({os.cpu_count()} logical CPUs)"


def made_by(*command: str) -> str:
    """The first line of a results file (results/): the command that wrote it (its words, shell-quoted)
    and where, so a figure quoted in the docs can be traced and rerun. torch's version comes from its metadata, not an import:
    bench_train must set the allocator before torch loads."""
    try:
        torch_version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch_version = "not installed"
    return (f"Made by `{shlex.join(command)}` on {cpu_name()}, torch {torch_version}, "
            f"{datetime.date.today().isoformat()}.")
