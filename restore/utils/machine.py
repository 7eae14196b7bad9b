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


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask), not the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


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


def write_results_file(path: str, command: list, lines: list) -> None:
    """A results file: the made_by line of `command`, a blank line, then `lines`; written atomically."""
    from restore.utils.img_io import atomic_write_bytes  # imports torch: not at the top (see made_by)
    atomic_write_bytes(path, "\n".join([made_by(*command), "", *lines, ""]).encode())
    print(f"results table: {path}")


def publish_results(lines: list, out: str | None, command: list) -> None:
    """A benchmark's report: printed, and with `out` also written as a results file."""
    print("\n".join(lines))
    if out:
        write_results_file(out, command, lines)


def busy_cores_note(threads: int, load: float, cpus: int) -> str | None:
    """A warning when torch's `threads` would share `cpus` cores with other work (1-minute load
    average `load`, taken before this process starts computing). OpenMP threads meet at a barrier
    after every op, so one thread that waits for a busy core stalls the rest: on this project's
    2-core machine, the README's worked example trained at 0.4 it/s with 2 threads and 5 it/s with 1
    while other runs kept the cores busy."""
    if threads <= 1 or load < cpus - 0.5:
        return None
    return (f"the load average is {load:.1f} on {cpus} CPUs and torch computes with {threads} threads, which "
            f"then wait on each other; on a busy machine OMP_NUM_THREADS=1 (or fewer threads than free "
            f"cores) is often several times faster")
