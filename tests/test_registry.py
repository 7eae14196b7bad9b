"""Registry.import_all: the one scan that fills every registry from its package's modules."""
import sys

from restore.utils.registry import ARCH_REGISTRY, BACKEND_REGISTRY, DATASET_REGISTRY, Registry


def test_import_all_imports_the_suffixed_public_modules_in_name_order(tmp_path, monkeypatch):
    package = tmp_path / "fakepkg_eng17"
    package.mkdir()
    (package / "__init__.py").write_text("")
    log = "import builtins\nbuiltins.import_order = getattr(builtins, 'import_order', []) + [__name__]\n"
    for name in ("b_thing.py", "a_thing.py", "_private_thing.py", "other.py", "c_thing.txt"):
        (package / name).write_text(log)
    monkeypatch.syspath_prepend(str(tmp_path))
    import builtins
    monkeypatch.setattr(builtins, "import_order", [], raising=False)
    try:
        names = Registry.import_all("fakepkg_eng17", "_thing.py")
        assert names == ["fakepkg_eng17.a_thing", "fakepkg_eng17.b_thing"]
        assert builtins.import_order == names
    finally:
        for name in [m for m in sys.modules if m.startswith("fakepkg_eng17")]:
            del sys.modules[name]


def test_the_package_registries_are_filled():
    import restore.archs  # noqa: F401
    import restore.data  # noqa: F401
    assert {"EDSR", "NSR"} <= set(ARCH_REGISTRY.keys())
    assert {"SRImageDataset", "PairedImageDataset", "DenoiseDataset", "JPEGDataset"} <= set(DATASET_REGISTRY.keys())
    assert BACKEND_REGISTRY.keys() == ["disk", "lmdb"]
