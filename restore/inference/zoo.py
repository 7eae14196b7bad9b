"""Named pretrained models: `restore-infer --model NAME` instead of an arch, its options and a file.

An entry maps a name to a `network_g` block and a weight file (plus an optional SHA256 of the file,
checked before loading). Entries come from three places, later ones overriding earlier ones:

1. the models shipped with the package: restore/inference/weights/zoo.yml beside their weights
   (written by scripts/zoo_release.py; model cards in docs/zoo/);
2. YAML files named in $RESTORE_ZOO (separated by os.pathsep), each a mapping
   `NAME: {network_g: {...}, weights: file, task: sr|denoise|jpeg, description: ..., sha256: ...,
   card: file, options: file}` with file paths relative to the YAML file;
3. `register_model(...)` calls from Python.

An entry may name a `family`: models of one task that differ only in the channels they take (the
gray and the colour denoiser). `restore-infer --model FAMILY` runs each image through the member
that fits it, a gray image through the 1-channel model and an RGB image through the 3-channel one.

From Python: `restore.inference.load_model(model="nsr_sr_x2").net` is the eval-mode network.
"""
import hashlib
import os
from dataclasses import dataclass, field
from typing import Optional

from restore.utils.errors import RestoreError
from restore.utils.registry import did_you_mean
from restore.utils.yaml_io import load_yaml

ZOO_ENV = "RESTORE_ZOO"
WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
BUILTIN_LIST = os.path.join(WEIGHTS_DIR, "zoo.yml")
ENTRY_KEYS = {"network_g", "weights", "task", "description", "sha256", "card", "options", "family"}


@dataclass(frozen=True)
class ZooEntry:
    name: str
    network_g: dict
    weights: str                      # absolute path of the weight file (.pth or .safetensors)
    task: str = ""
    description: str = ""
    sha256: Optional[str] = None
    origin: str = field(default="", compare=False)   # where the entry was defined, for messages
    card: str = ""                    # the model card (Markdown), relative to the repository
    options: str = ""                 # the training option file that reproduces the weights
    family: str = ""                  # models of one task that differ only in their input channels

    @property
    def in_channels(self) -> int:
        return int(self.network_g.get("num_in_ch", 3))


_registered: dict[str, ZooEntry] = {}


def _entry(name: str, block, base_dir: str, origin: str) -> ZooEntry:
    if not isinstance(block, dict):
        raise RestoreError(f"{origin}: model '{name}' must be a mapping with network_g and weights")
    unknown = set(block) - ENTRY_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise RestoreError(f"{origin}: model '{name}': unknown key '{key}'{did_you_mean(key, ENTRY_KEYS)}")
    for key in ("network_g", "weights"):
        if key not in block:
            raise RestoreError(f"{origin}: model '{name}' has no '{key}'")
    if not isinstance(block["network_g"], dict) or "type" not in block["network_g"]:
        raise RestoreError(f"{origin}: model '{name}': network_g must be a mapping with a 'type'")
    weights = os.path.expanduser(str(block["weights"]))
    if not os.path.isabs(weights):
        weights = os.path.normpath(os.path.join(base_dir, weights))
    return ZooEntry(name, dict(block["network_g"]), weights, str(block.get("task") or ""),
                    str(block.get("description") or ""), block.get("sha256"), origin,
                    str(block.get("card") or ""), str(block.get("options") or ""), str(block.get("family") or ""))


def _from_yaml(path: str) -> dict[str, ZooEntry]:
    if not os.path.isfile(path):
        raise RestoreError(f"${ZOO_ENV}: model list not found: {path}")
    with open(path, encoding="utf-8") as f:
        data = load_yaml(f.read(), path) or {}
    if not isinstance(data, dict):
        raise RestoreError(f"{path}: expected a mapping of model names")
    base = os.path.dirname(os.path.abspath(path))
    return {name: _entry(name, block, base, path) for name, block in data.items()}


def register_model(name: str, network_g: dict, weights: str, task: str = "", description: str = "",
                   sha256: Optional[str] = None, family: str = "") -> ZooEntry:
    """Add (or replace) a named model for this process."""
    block = {"network_g": network_g, "weights": os.path.abspath(weights), "task": task,
             "description": description, "sha256": sha256, "family": family}
    entry = _entry(name, block, os.getcwd(), "register_model")
    _registered[name] = entry
    return entry


def unregister_model(name: str) -> None:
    _registered.pop(name, None)


def zoo_entries() -> dict[str, ZooEntry]:
    """Every known model, by name."""
    entries = _from_yaml(BUILTIN_LIST) if os.path.isfile(BUILTIN_LIST) else {}
    for path in filter(None, os.environ.get(ZOO_ENV, "").split(os.pathsep)):
        entries.update(_from_yaml(path))
    entries.update(_registered)
    return dict(sorted(entries.items()))


def family_members(name: str) -> dict[int, ZooEntry]:
    """{input channels: entry} of the family `name` ({} when no model names that family); two members
    taking the same channels are an error, since restore-infer could not choose between them."""
    members: dict[int, ZooEntry] = {}
    for entry in zoo_entries().values():
        if entry.family != name:
            continue
        if entry.in_channels in members:
            raise RestoreError(f"--model {name}: {members[entry.in_channels].name} and {entry.name} both take "
                               f"{entry.in_channels}-channel input")
        members[entry.in_channels] = entry
    return members


def get_zoo_entry(name: str) -> ZooEntry:
    entries = zoo_entries()
    if name not in entries:
        families = {e.family for e in entries.values() if e.family}
        known = ", ".join([*entries, *sorted(families)]) if entries else f"none (list your own in ${ZOO_ENV})"
        raise RestoreError(f"--model {name}: unknown model{did_you_mean(name, [*entries, *families])}; "
                           f"known: {known}")
    return entries[name]


def sha256_of(path: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def check_weights(entry: ZooEntry) -> str:
    """The weight file's path, after checking it exists and matches the entry's SHA256 (if given)."""
    if not os.path.isfile(entry.weights):
        raise RestoreError(f"--model {entry.name}: weight file not found: {entry.weights} (from {entry.origin})")
    if entry.sha256 and sha256_of(entry.weights) != entry.sha256.lower():
        raise RestoreError(f"--model {entry.name}: {entry.weights} does not match its SHA256 "
                           f"{entry.sha256} (corrupted or replaced file)")
    return entry.weights
