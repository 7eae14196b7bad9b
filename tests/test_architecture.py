"""Every import under restore/ keeps to the architecture map in docs/architecture.md.

The rules are read from that page ("May import:" under each package heading), so the page and the
test cannot drift apart; see the page for what each package owns.
"""
import ast
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAP = os.path.join(ROOT, "docs", "architecture.md")
ENTRY_POINTS = {"train", "test"}
# Who may name a specific layer module restore.archs.layers.<name>: the layers' own package and the
# CSC control package, which exists to steer CSC layers.
LAYER_IMPORTERS = {"archs", "csc", "cli"} | ENTRY_POINTS

# (importing module, imported name): breaks a rule today and is scheduled to go. A stale entry fails
# too, so the list only shrinks.
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()  # (module, import) pairs allowed for now


def read_rules(text: str) -> dict[str, set[str] | None]:
    """{package: packages it may import, or None for anything} from the map's sections."""
    rules, heading = {}, []
    for line in text.splitlines():
        if line.startswith("## "):
            heading = re.findall(r"`restore\.(\w+)`", line)
            continue
        m = re.match(r"May import: (.*)\.$", line)
        if m and heading:
            value = m.group(1).strip()
            allowed = None if value == "anything" else set() if value == "nothing" else \
                {name.strip() for name in value.split(",")}
            for package in heading:
                rules[package] = allowed
            heading = []
    return rules


def module_name(path: str) -> str:
    rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
    return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def owner(module: str) -> str:
    """restore.archs.layers.csc_conv -> archs; restore.train -> train; restore -> ''."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imported_names(source: str, module: str, is_package: bool) -> list[tuple[list[str], int]]:
    """([absolute names], line) of every import statement, module level or inside a function. For
    `from A import b` the names are A and A.b, since b may be a submodule."""
    statements = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            statements += [([a.name], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                parts = parts[:len(parts) - node.level + (1 if is_package else 0)]
                base = ".".join(parts + ([base] if base else []))
            statements.append(([base] + [f"{base}.{a.name}" for a in node.names if a.name != "*"], node.lineno))
    return statements


def violations(module: str, source: str, rules: dict, is_package: bool = False) -> list[tuple[str, str]]:
    """(imported name, which rule it breaks) for one module, at most one per rule and statement."""
    me, found = owner(module), []
    for names, line in imported_names(source, module, is_package):
        broken = {}
        for name in names:
            target = owner(name)
            if not (name == "restore" or name.startswith("restore.")) or not target or target == me:
                continue
            where = f"{module}:{line} imports {name}"
            if me == "":
                broken.setdefault("package", (name, f"{where}: restore/__init__.py is imported by everything "
                                                    f"and may import nothing"))
            elif target == "cli" and me not in ENTRY_POINTS:
                broken.setdefault("package", (name, f"{where}: only restore.cli and the entry points may "
                                                    f"import restore.cli"))
            elif rules.get(me, set()) is not None and target not in rules.get(me, set()):
                allowed = ", ".join(sorted(rules.get(me, set()))) or "nothing"
                broken.setdefault("package", (name, f"{where}: restore.{me} may import {allowed} "
                                                    f"(docs/architecture.md)"))
            if name.startswith("restore.archs.layers.") and me not in LAYER_IMPORTERS:
                layer = ".".join(name.split(".")[:4])
                broken.setdefault("layer", (layer, f"{where}: only archs and csc may import a specific layer "
                                                   f"module; build networks with restore.archs.build_network"))
        found += broken.values()
    return found


def package_modules() -> list[tuple[str, str, bool]]:
    out = []
    for folder, dirs, files in os.walk(os.path.join(ROOT, "restore")):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for f in sorted(files):
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                with open(path, encoding="utf-8") as fh:
                    out.append((module_name(path), fh.read(), f == "__init__.py"))
    return out


@pytest.fixture(scope="module")
def rules():
    with open(MAP, encoding="utf-8") as f:
        return read_rules(f.read())


def test_every_package_has_a_section_in_the_map(rules):
    packages = {owner(m) for m, _, _ in package_modules()} - {""}
    assert packages - set(rules) == set(), "add a section with a 'May import:' line to docs/architecture.md"
    assert set(rules) - packages == set(), "docs/architecture.md describes a package that does not exist"
    for package, allowed in rules.items():
        assert allowed is None or allowed <= packages, f"restore.{package} may import unknown {allowed - packages}"


def test_no_import_breaks_the_map(rules):
    found = [(m, name, why) for m, source, is_package in package_modules()
             for name, why in violations(m, source, rules, is_package)]
    new = [why for m, name, why in found if (m, name) not in KNOWN_VIOLATIONS]
    assert new == []
    stale = KNOWN_VIOLATIONS - {(m, name) for m, name, _ in found}
    assert stale == set(), f"fixed, so remove from KNOWN_VIOLATIONS: {sorted(stale)}"


def test_the_checker_catches_each_kind_of_violation(rules):
    def broken(module, source, is_package=False):
        return [why for _, why in violations(module, source, rules, is_package)]

    assert broken("restore.utils.fake", "from restore.data import build_dataset\n")[0].endswith(
        "restore.utils may import nothing (docs/architecture.md)")
    assert "only restore.cli and the entry points" in broken("restore.models.fake",
                                                             "def f():\n    import restore.cli.common\n")[0]
    assert "specific layer module" in broken("restore.models.fake",
                                             "from restore.archs.layers.blurpool import BlurPool2d\n")[0]
    assert "specific layer module" in broken("restore.models.fake", "from restore.archs.layers import csc_conv\n")[0]
    # relative imports resolve: restore/data/x.py's `from ..cli import common` is restore.cli.common
    assert "restore.cli" in broken("restore.data.fake", "from ..cli import common\n")[0]
    assert "restore.cli" in broken("restore.data", "from ..cli import common\n", is_package=True)[0]
    assert "may import nothing" in broken("restore", "from restore.utils import errors\n")[0]
    # and what the map allows passes
    assert broken("restore.models.fake", "from restore.archs import build_network\nimport torch\n") == []
    assert broken("restore.train", "from restore.cli.common import run_cli\n") == []
    assert broken("restore.csc.fake", "from restore.archs.layers.csc_conv import CSCConv2d\n") == []
    assert broken("restore.archs.layers.fake", "from .csc_conv import CSCConv2d\n") == []


def test_rules_are_read_from_the_page():
    text = "## `restore.a`\n\nowns a\n\nMay import: nothing.\n\n## `restore.b`, `restore.c`\n\nMay import: a, d.\n" \
           "\n## `restore.e`\n\nMay import: anything.\n"
    assert read_rules(text) == {"a": set(), "b": {"a", "d"}, "c": {"a", "d"}, "e": None}
