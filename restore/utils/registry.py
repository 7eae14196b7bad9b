"""Name -> class registries, so option files can say `type: EDSR`.

`Registry.build(opt, where)` also validates the option keys against the constructor signature:
an unknown key is an error naming the class, the key and the accepted keys, and a value whose type
contradicts the constructor's annotation is an error too. This is what makes a typo in
`network_g` an error rather than a silently ignored default.
"""
import difflib
import importlib
import inspect
import os
import types
import typing
from typing import Any, Callable

from restore.utils.errors import OptionError


def did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _type_name(annotation) -> str:
    if annotation is type(None):
        return "null"
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        return getattr(origin, "__name__", str(origin))
    return getattr(annotation, "__name__", str(annotation))


def type_matches(value: Any, annotation) -> bool:
    """Whether an option value fits a constructor annotation (loosely: int fits float, list fits tuple)."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return True
    if annotation is type(None):
        return value is None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return value in args
    if origin in (typing.Union, types.UnionType):
        return any(type_matches(value, a) for a in args)
    base = origin or annotation
    if base is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if base in (list, tuple, typing.Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        if args and args[-1] is not Ellipsis and base is tuple:
            return len(args) == len(value) and all(type_matches(v, a) for v, a in zip(value, args))
        if args:
            return all(type_matches(v, args[0]) for v in value)
        return True
    if base is dict:
        return isinstance(value, dict)
    if isinstance(base, type):
        return isinstance(value, base)
    return True


def check_kwargs(fn: Callable, kwargs: dict, what: str, where: str, provided=()) -> None:
    """Raise OptionError if `kwargs` do not fit `fn`'s signature (unknown key, wrong type, missing key)."""
    sig = inspect.signature(fn)
    params = {n: p for n, p in sig.parameters.items()
              if n != "self" and n not in provided and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    accepts_any = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    try:
        hints = typing.get_type_hints(fn.__init__ if isinstance(fn, type) else fn)
    except Exception:  # annotations that cannot be resolved are simply not type-checked
        hints = {}
    for key, value in kwargs.items():
        if key not in params:
            if accepts_any:
                continue
            raise OptionError(
                f"{where}: unknown key '{key}' for {what}{did_you_mean(key, params)}; "
                f"accepted keys: {', '.join(params) or '(none)'}")
        annotation = hints.get(key, inspect.Parameter.empty)
        if not type_matches(value, annotation):
            raise OptionError(f"{where}.{key}: expected {_type_name(annotation)} for {what}, "
                              f"got {value!r}")
    for name, p in params.items():
        if p.default is inspect.Parameter.empty and name not in kwargs:
            raise OptionError(f"{where}: missing required key '{name}' for {what}")


class Registry:
    """A named table of classes (or functions) that option files refer to by `type`."""

    def __init__(self, kind: str, package: str | None = None):
        self.kind = kind
        self.package = package  # imported on the first lookup, so its modules have registered
        self._table: dict[str, Any] = {}

    def _load(self) -> None:
        # Lookups from modules below the package (utils reading option files, say) find the table
        # filled without importing the package themselves; the package imports its own modules.
        if self.package is not None:
            package, self.package = self.package, None
            importlib.import_module(package)

    def register(self, obj=None, *, name: str | None = None):
        """Use as `@REG.register()`, `@REG.register(name='X')` or `REG.register(cls)`."""
        def add(o):
            key = name or o.__name__
            if key in self._table and self._table[key] is not o:
                raise KeyError(f"{self.kind} '{key}' is registered twice")
            self._table[key] = o
            return o
        return add(obj) if obj is not None else add

    def get(self, name: str, where: str = "type"):
        self._load()
        if name not in self._table:
            raise OptionError(f"{where}: unknown {self.kind} '{name}'{did_you_mean(name, self._table)}; "
                              f"registered: {', '.join(sorted(self._table))}")
        return self._table[name]

    def build(self, opt: dict, where: str, **extra):
        """Instantiate `opt['type']` with the other keys (plus `extra`) as keyword arguments."""
        if not isinstance(opt, dict) or "type" not in opt:
            raise OptionError(f"{where}: needs a 'type' key naming a registered {self.kind}")
        kwargs = {k: v for k, v in opt.items() if k != "type"}
        kwargs.update(extra)
        cls = self.get(opt["type"], f"{where}.type")
        check_kwargs(cls, kwargs, f"{self.kind} {opt['type']}", where)
        return cls(**kwargs)

    @staticmethod
    def import_all(package: str, suffix: str = ".py") -> list[str]:
        """Import every module of `package` whose file name ends with `suffix` (in name order;
        private `_*.py` files skipped), so the classes they decorate are registered. Called from the
        package's own `__init__`, where the package is already in sys.modules. Returns their names."""
        folder = importlib.import_module(package).__path__[0]
        names = [f"{package}.{f[:-3]}" for f in sorted(os.listdir(folder))
                 if f.endswith(suffix) and f.endswith(".py") and not f.startswith("_")]
        for name in names:
            importlib.import_module(name)
        return names

    def __contains__(self, name):
        self._load()
        return name in self._table

    def __iter__(self):
        return iter(self.keys())

    def keys(self):
        self._load()
        return sorted(self._table)


ARCH_REGISTRY = Registry("arch", "restore.archs")
MODEL_REGISTRY = Registry("model", "restore.models")
DATASET_REGISTRY = Registry("dataset", "restore.data")
LOSS_REGISTRY = Registry("loss", "restore.losses")
METRIC_REGISTRY = Registry("metric", "restore.metrics")
BACKEND_REGISTRY = Registry("io backend", "restore.data")
OPTIMIZER_REGISTRY = Registry("optimizer", "restore.models")
