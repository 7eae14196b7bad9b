"""Where things live: the project root, the data root and the experiments root.

Rules (documented in the README):
- The *root* of an option file is the folder holding the `options/` folder that contains it
  (so `options/train/X.yml` in a checkout resolves against the checkout), or the file's own folder
  when it is not inside an `options/` folder. `path.root` in the options overrides it.
  Relative paths in the options resolve against this root, never against the current directory.
- The *data root* is `--data-root`, else `$RESTORE_DATA_ROOT`, else `<root>/../shared/datasets`
  when it exists, else `<root>/datasets`. Option files write `${data_root}/Set5`.
"""
import os

DATA_ROOT_ENV = "RESTORE_DATA_ROOT"
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def check_name(name, key: str = "name") -> str:
    """An experiment name is one folder name: it must never reach outside the experiments root."""
    from restore.utils.errors import OptionError
    if not isinstance(name, str) or not name or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise OptionError(f"{key}: {name!r} is not a valid experiment name (one folder name: not empty, "
                          f"no '/' or '\\', not '.' or '..')")
    return name


def root_of_option_file(opt_path: str) -> str:
    folder = os.path.dirname(os.path.abspath(opt_path))
    probe = folder
    while True:
        if os.path.basename(probe) == "options":
            return os.path.dirname(probe)
        parent = os.path.dirname(probe)
        if parent == probe:
            return folder
        probe = parent


def find_data_root(explicit: str | None = None, root: str | None = None) -> str | None:
    """The data root by the one convention used by every command; None when nothing exists."""
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    if os.environ.get(DATA_ROOT_ENV):
        return os.path.abspath(os.path.expanduser(os.environ[DATA_ROOT_ENV]))
    for base in filter(None, (root, PACKAGE_PARENT, os.getcwd())):
        for candidate in (os.path.join(base, "..", "shared", "datasets"), os.path.join(base, "datasets")):
            if os.path.isdir(candidate) and any(
                    os.path.isdir(os.path.join(candidate, d)) for d in os.listdir(candidate)):
                return os.path.abspath(candidate)
    return None


def resolve_path(path: str, root: str) -> str:
    path = os.path.expanduser(os.path.expandvars(path))
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(root, path))
