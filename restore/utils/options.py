"""Option files: read, override, resolve paths, validate.

The top-level structure follows BasicSR's keys and is validated here (unknown key with a "did you
mean", wrong type, missing required key, missing folder or file). The contents of `network_g`,
`datasets.<phase>` and loss blocks are validated by the registry against the class they build.
"""
import copy
import os
from dataclasses import dataclass
from typing import Any

from restore.utils.errors import OptionError
from restore.utils.paths import check_name, find_data_root, resolve_path, root_of_option_file
from restore.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, did_you_mean
from restore.utils.yaml_io import load_yaml, parse_value

REQUIRED = object()


@dataclass
class Field:
    types: Any                     # a type, a tuple of types, or a nested schema dict
    default: Any = None
    choices: tuple | None = None

    def check(self, value, where):
        if isinstance(self.types, dict):
            if not isinstance(value, dict):
                raise OptionError(f"{where}: expected a mapping of keys, got {value!r}")
            return
        types = self.types if isinstance(self.types, tuple) else (self.types,)
        ok = value is None and self.default is None and self.default is not REQUIRED
        for t in types:
            if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
                ok = True
            elif t is int and isinstance(value, bool):
                continue
            elif isinstance(value, t):
                ok = True
        if not ok:
            names = " or ".join("number" if t is float else t.__name__ for t in types)
            raise OptionError(f"{where}: expected {names}, got {value!r}")
        if self.choices and value not in self.choices:
            raise OptionError(f"{where}: '{value}' is not one of {', '.join(map(str, self.choices))}"
                              f"{did_you_mean(value, self.choices)}")


FREE = Field(dict, default=None)  # a block validated elsewhere (by the class it builds)

SCHEMA = {
    "name": Field(str, REQUIRED),
    "model_type": Field(str, "SRModel"),
    "scale": Field(int, 1),
    "num_gpu": Field((int, str), "auto"),
    "device": Field(str, "auto"),
    "manual_seed": Field(int, 0),
    "datasets": Field(dict, {}),
    "network_g": FREE,
    "find_unused_parameters": Field(bool, False),
    "path": Field({
        "root": Field(str, None),
        "pretrain_network_g": Field(str, None),
        "param_key_g": Field(str, "params"),
        "strict_load_g": Field(bool, True),
        "resume_state": Field(str, None),
        "experiments_root": Field(str, None),
        "results_root": Field(str, None),
        "ignore_resume_networks": Field(list, None),
    }),
    "train": Field({
        "ema_decay": Field(float, 0.0),
        "optim_g": FREE,
        "scheduler": FREE,
        "total_iter": Field(int, REQUIRED),
        "warmup_iter": Field(int, -1),
        "grad_clip": Field(float, None),
        "amp": Field(str, None, choices=("fp16", "bf16")),
        "channels_last": Field((bool, str), "auto", choices=(True, False, "auto")),
        "compile": Field(bool, False),
        "max_nonfinite": Field(int, 10),
        # loss blocks: any key ending in `_opt` (pixel_opt, ...) is validated by LOSS_REGISTRY
    }),
    "val": Field({
        "val_freq": Field((int, float), 5000),
        "save_img": Field(bool, False),
        "suffix": Field(str, None),
        "pbar": Field(bool, True),
        "self_ensemble": Field(bool, False),
        "tile": Field(int, None),
        "tile_pad": Field(int, 16),
        "metrics": Field(dict, None),
        "equivariance": Field(dict, None),  # restore-test: shift-equivariance, see restore/evaluation
    }),
    "logger": Field({
        "print_freq": Field(int, 100),
        "save_checkpoint_freq": Field((int, float), 5000),
        "use_tb_logger": Field(bool, True),
        "wandb": Field(dict, None),
    }),
    "dist_params": Field({"backend": Field(str, None), "port": Field(int, None)}),
}

# The keys of a `datasets.<phase>` block that configure its DataLoader (BasicSR's names), with their
# defaults; the other keys are the dataset class's constructor arguments.
LOADER_KEYS = {
    "batch_size_per_gpu": 1, "num_worker_per_gpu": 0, "dataset_enlarge_ratio": 1,
    "pin_memory": False, "persistent_workers": False, "prefetch_mode": None, "num_prefetch_queue": 1,
}
DATASET_PHASES = ("train", "val", "test")
METRIC_KEYS = ("type", "crop_border", "test_y_channel", "better")
PATH_KEYS_MUST_EXIST = {"pretrain_network_g": "file", "resume_state": "file"}


def _validate(opt: dict, schema: dict, where: str, is_train: bool) -> dict:
    out = {}
    for key, value in opt.items():
        here = f"{where}.{key}" if where else key
        if key not in schema:
            if where == "train" and key.endswith("_opt"):
                if not isinstance(value, dict):
                    raise OptionError(f"{here}: expected a loss block with a 'type', got {value!r}")
                out[key] = value
                continue
            raise OptionError(f"unknown key '{here}'{did_you_mean(key, schema)}")
        field = schema[key]
        if value is None and not isinstance(field.types, dict):
            if field.default is REQUIRED:
                raise OptionError(f"{here}: required, got an empty value")
            out[key] = None
            continue
        field.check(value, here)
        out[key] = _validate(value, field.types, here, is_train) if isinstance(field.types, dict) else value
    for key, field in schema.items():
        if key in out:
            continue
        here = f"{where}.{key}" if where else key
        if field.default is REQUIRED and (where != "train" or is_train):
            raise OptionError(f"missing required key '{here}'")
        if isinstance(field.types, dict):
            out[key] = _validate({}, field.types, here, is_train)
        elif field.default is not REQUIRED:
            out[key] = copy.deepcopy(field.default)
    return out


def set_by_path(opt: dict, dotted: str, value, create: bool = True) -> None:
    parts = dotted.replace(":", ".").split(".")
    node = opt
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node.get(part), dict):
            if not create:
                raise OptionError(f"--set {dotted}: '{'.'.join(parts[:i + 1])}' is not a block of the options")
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def parse_override(item: str, where: str = "--set") -> tuple[str, Any]:
    """The one KEY=VALUE syntax of every command: `a.b=value` (BasicSR's `a:b=value` too), the value
    read as YAML. Returns (dotted key, value)."""
    key, sep, text = str(item).partition("=")
    key = key.strip().replace(":", ".")
    if not sep or not key or "" in key.split("."):
        raise OptionError(f"{where} {item!r}: expected KEY=VALUE, e.g. train.total_iter=100")
    return key, parse_value(text)


def apply_overrides(opt: dict, overrides: list[str], where: str = "--set") -> None:
    """`--set a.b=value` / BasicSR's `--force_yml a:b=value` on a whole option dict."""
    for item in overrides or []:
        set_by_path(opt, *parse_override(item, where))


def network_overrides(items, where: str) -> dict:
    """Overrides of one `network_g` block (`--arch-opt`, restore-flops' `--set`): `upscale=2`,
    `conv.type=sparse_group`; a leading `network_g.` is accepted. Returns a nested dict."""
    out: dict = {}
    for item in items or []:
        key, value = parse_override(item, where)
        set_by_path(out, key[len("network_g."):] if key.startswith("network_g.") else key, value)
    return out


def merge(base: dict, extra: dict) -> dict:
    """`base` with `extra`'s keys set, nested blocks merged key by key."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _substitute(value, variables: dict, where: str):
    if isinstance(value, str) and "${" in value:
        for name, repl in variables.items():
            token = "${" + name + "}"
            if token in value:
                if repl is None:
                    raise OptionError(f"{where}: uses {token} but no data root was found; pass "
                                      f"--data-root or set RESTORE_DATA_ROOT")
                value = value.replace(token, repl)
        if "${" in value:
            raise OptionError(f"{where}: unknown variable in '{value}' (known: "
                              f"{', '.join('${' + v + '}' for v in variables)})")
        return value
    if isinstance(value, dict):
        return {k: _substitute(v, variables, f"{where}.{k}" if where else k) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, variables, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _resolve_dataset_paths(ds: dict, root: str, where: str) -> None:
    for key, value in list(ds.items()):
        if key.startswith("dataroot") or key == "meta_info_file":
            paths = value if isinstance(value, list) else [value]
            if not all(isinstance(p, str) for p in paths):
                raise OptionError(f"{where}.{key}: expected a path, got {value!r}")
            resolved = [resolve_path(p, root) for p in paths]
            for p in resolved:
                if not os.path.exists(p):
                    what = "file" if key == "meta_info_file" else "folder"
                    raise OptionError(f"{where}.{key}: {what} not found: {p}")
            ds[key] = resolved if isinstance(value, list) else resolved[0]


MODES = ("train", "test", "network")


def read_option_file(opt_path: str) -> dict:
    """The top-level mapping of an option file, or a one-line error naming it."""
    if not os.path.isfile(opt_path):
        raise OptionError(f"{opt_path}: option file not found")
    try:
        with open(opt_path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise OptionError(f"{opt_path}: not a UTF-8 text file (byte {e.start}: {e.reason})") from None
    except OSError as e:
        raise OptionError(f"{opt_path}: cannot read ({e.strerror})") from None
    raw = load_yaml(text, opt_path)
    if not isinstance(raw, dict):
        raise OptionError(f"{opt_path}: expected a mapping of option keys at the top level")
    return raw


def load_options(opt_path: str, mode: str = "train", overrides: list[str] | None = None,
                 data_root: str | None = None, debug: bool = False) -> dict:
    """The one way an option file is read: read, override, substitute `${root}`/`${data_root}`,
    validate and resolve. Returns a plain dict.

    mode: 'train' (restore-train), 'test' (restore-test), or 'network' (restore-infer, -bench,
    -flops, -export: only the network and its weights matter, so datasets are neither substituted
    nor checked and the file need not be a complete training file).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    is_train = mode == "train"
    raw = read_option_file(opt_path)
    try:
        apply_overrides(raw, overrides)
        path = raw.get("path") if isinstance(raw.get("path"), dict) else {}
        root = os.path.abspath(path.get("root") or root_of_option_file(opt_path))
        droot = find_data_root(data_root, root)
        variables = {"data_root": droot, "root": root}
        if mode == "network":  # datasets may name folders this machine does not have
            raw = {k: v if k == "datasets" else _substitute(v, variables, k) for k, v in raw.items()}
            raw.setdefault("network_g", None)
            raw.setdefault("name", os.path.splitext(os.path.basename(opt_path))[0])
        else:
            raw = _substitute(raw, variables, "")
        scale_given = "scale" in raw
        opt = _validate(raw, SCHEMA, "", is_train)
    except OptionError as e:
        raise OptionError(f"{opt_path}: {e}") from None
    opt.update(is_train=is_train, opt_path=os.path.abspath(opt_path), root=root, data_root=droot)
    try:
        if opt["network_g"] is None:
            raise OptionError("missing required key 'network_g'")
        if scale_given:
            _scale_into_network(opt)
        if mode == "network":
            _resolve_paths(opt, root)
        else:
            _finish(opt, root, is_train, debug)
    except OptionError as e:
        raise OptionError(f"{opt_path}: {e}") from None
    return opt


def parse_options(opt_path: str, is_train: bool, overrides: list[str] | None = None,
                  data_root: str | None = None, debug: bool = False) -> dict:
    """load_options in 'train' or 'test' mode (the name BasicSR users know)."""
    return load_options(opt_path, "train" if is_train else "test", overrides, data_root, debug)


def _scale_into_network(opt: dict) -> None:
    """The one rule for `scale`: an arch that takes `upscale` and is not given one gets the file's
    top-level `scale`, in every command (as BasicSR's option files always spell out both)."""
    import inspect
    net = opt["network_g"]
    if "upscale" in net or net.get("type") not in ARCH_REGISTRY:
        return
    if "upscale" in inspect.signature(ARCH_REGISTRY.get(net["type"])).parameters:
        net["upscale"] = opt["scale"]


def _at_least(value, minimum, key: str) -> None:
    if value is not None and value < minimum:
        raise OptionError(f"{key}: must be at least {minimum}, got {value}")


def _check_numbers(opt: dict, is_train: bool) -> None:
    """Values that type-check but cannot work: found here, before any folder is made."""
    _at_least(opt["scale"], 1, "scale")
    upscale = opt["network_g"].get("upscale")
    if isinstance(upscale, int) and not isinstance(upscale, bool) and upscale != opt["scale"]:
        raise OptionError(f"network_g.upscale: {upscale} differs from scale: {opt['scale']}; the net "
                          f"would output images of another size than the GT")
    for phase, ds in opt["datasets"].items():
        for key, minimum in (("batch_size_per_gpu", 1), ("num_worker_per_gpu", 0),
                             ("dataset_enlarge_ratio", 1), ("scale", 1)):
            value = ds.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise OptionError(f"datasets.{phase}.{key}: expected a number, got {value!r}")
            _at_least(value, minimum, f"datasets.{phase}.{key}")
    if not is_train:
        return
    train, logger = opt["train"], opt["logger"]
    _at_least(train["total_iter"], 1, "train.total_iter")
    _at_least(train["max_nonfinite"], 1, "train.max_nonfinite")
    for key in ("print_freq", "save_checkpoint_freq"):
        if logger[key] <= 0:
            raise OptionError(f"logger.{key}: must be positive, got {logger[key]}")
    if any(p.startswith("val") for p in opt["datasets"]) and opt["val"]["val_freq"] <= 0:
        raise OptionError(f"val.val_freq: must be positive, got {opt['val']['val_freq']}")
    lr = (train["optim_g"] or {}).get("lr")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0):
        raise OptionError(f"train.optim_g.lr: must be a positive number, got {lr!r}")


def _resolve_paths(opt: dict, root: str) -> None:
    path = opt["path"]
    for key in ("pretrain_network_g", "resume_state", "experiments_root", "results_root"):
        if path.get(key):
            path[key] = resolve_path(path[key], root)
    for key, kind in PATH_KEYS_MUST_EXIST.items():
        if path.get(key) and not os.path.isfile(path[key]):
            raise OptionError(f"path.{key}: {kind} not found: {path[key]}")
    path["experiments_root"] = path["experiments_root"] or os.path.join(root, "experiments")
    path["results_root"] = path["results_root"] or os.path.join(root, "results")


def _finish(opt: dict, root: str, is_train: bool, debug: bool) -> None:
    check_name(opt["name"])
    datasets = opt["datasets"]
    for phase, ds in datasets.items():
        if phase.split("_")[0] not in DATASET_PHASES:
            raise OptionError(f"datasets.{phase}: phase must be train, val, val_<n> or test_<n>"
                              f"{did_you_mean(phase, DATASET_PHASES)}")
        if not isinstance(ds, dict):
            raise OptionError(f"datasets.{phase}: expected a dataset block, got {ds!r}")
        if "type" not in ds:
            raise OptionError(f"datasets.{phase}: missing required key 'type'")
        if "scale" not in ds and _accepts_scale(ds["type"]):
            ds["scale"] = opt["scale"]  # BasicSR copies the top-level scale into every dataset
        _resolve_dataset_paths(ds, root, f"datasets.{phase}")
    if is_train and "train" not in datasets:
        raise OptionError("datasets.train: a training option file needs a train dataset")
    if not is_train and not any(p.startswith(("test", "val")) for p in datasets):
        raise OptionError("datasets: a test option file needs at least one test_<n> dataset")
    _resolve_paths(opt, root)
    for name, m in (opt["val"].get("metrics") or {}).items():
        if not isinstance(m, dict) or "type" not in m:
            raise OptionError(f"val.metrics.{name}: expected a block with a 'type'")
        if m.get("better", "higher") not in ("higher", "lower"):
            raise OptionError(f"val.metrics.{name}.better: must be higher or lower")
    if is_train:
        if not any(k.endswith("_opt") for k in opt["train"]):
            raise OptionError("train: no loss configured (add e.g. pixel_opt: {type: L1Loss})")
        if opt["train"]["optim_g"] is None:
            raise OptionError("missing required key 'train.optim_g'")
    _check_numbers(opt, is_train)
    if debug:
        opt["name"] = opt["name"] if opt["name"].startswith("debug") else "debug_" + opt["name"]
    opt["debug"] = debug or "debug" in opt["name"]
    if opt["debug"] and is_train:
        opt["train"]["total_iter"] = min(opt["train"]["total_iter"], 8)
        opt["logger"].update(print_freq=1, save_checkpoint_freq=4, use_tb_logger=False)
        opt["val"]["val_freq"] = 4


def _accepts_scale(dataset_type: str) -> bool:
    import inspect
    if dataset_type not in DATASET_REGISTRY:
        return False
    return "scale" in inspect.signature(DATASET_REGISTRY.get(dataset_type)).parameters


def ignored_option_notes(opt: dict) -> list[str]:
    """One line per BasicSR key that is set in `opt` (parsed options) but that restore accepts and
    ignores, so migrated option files never lose a setting silently; callers log each line."""
    notes = []
    wandb = (opt.get("logger") or {}).get("wandb")
    if isinstance(wandb, dict) and any(v is not None for v in wandb.values()):
        notes.append("logger.wandb is ignored: restore logs to TensorBoard (logger.use_tb_logger) "
                     "and the log file, not to Weights & Biases")
    for phase, ds in sorted((opt.get("datasets") or {}).items()):
        if isinstance(ds, dict) and ds.get("prefetch_mode") is not None:
            notes.append(f"datasets.{phase}.prefetch_mode ({ds['prefetch_mode']}) is ignored: restore's "
                         f"loader prefetches with its workers (num_worker_per_gpu, pin_memory)")
    if (opt.get("dist_params") or {}).get("port") is not None:
        notes.append(f"dist_params.port ({opt['dist_params']['port']}) is ignored: torchrun sets the "
                     f"rendezvous port (--master_port / MASTER_PORT)")
    if (opt.get("path") or {}).get("ignore_resume_networks"):
        notes.append("path.ignore_resume_networks is ignored: a resume always loads net_g (and its EMA) "
                     "from the checkpoint saved with the training state")
    return notes


def main(argv=None) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="python -m restore.utils.options",
                                description="Print the option-key reference (docs/options.md).")
    p.add_argument("--reference", action="store_true", required=True,
                   help="the markdown reference of every option key, from the schema and the registries")
    p.parse_args(argv)
    from restore.utils.option_reference import option_reference
    print(option_reference(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
