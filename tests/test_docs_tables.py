"""Every results table quoted in the docs equals the committed results file it names, and every numeric
table in README.md and docs/ is such a quote (issue 17 item 6).

A quoted table sits between `<!-- table: PATH -->` and `<!-- end table -->`; its rows must be the
table rows (lines starting with '|', indentation ignored) of PATH, in order. `make results` reruns the
commands that write those files; each file's first line names its command and machine."""
import os
import re

from restore.utils.scripts import load_script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The quotes' format and parsing are those of scripts/quote_tables.py, which refreshes them.
QUOTES = load_script("quote_tables")
BLOCK, table_rows, quoted_tables, pages = QUOTES.BLOCK, QUOTES.table_rows, QUOTES.quoted_tables, QUOTES.pages
# Blocks that scripts/zoo_release.py writes and tests/test_zoo.py checks against results/zoo/.
ZOO_BLOCK = re.compile(r"<!-- (zoo-[\w-]+): begin.*?<!-- \1: end -->", re.S)
FENCE = re.compile(r"^ {0,3}```.*?^ {0,3}```", re.S | re.M)
NUMBER = re.compile(r"\d\.\d")
# Pages with generators and tests of their own: options.md (restore.utils.options --reference,
# tests/test_options.py), zoo.md and zoo/ (scripts/zoo_release.py, tests/test_zoo.py).
OWN_GENERATOR = ("docs/options.md", "docs/zoo.md", "docs/zoo/")

# (page, header row) -> why its decimals are not measurements. Keep it short: a measured table
# belongs in results/ with the command that made it.
NOT_MEASURED = {
    ("docs/csc.md", "| key | default | meaning |"):
        "option defaults (lmbda 0.1), read from CSCConv2d's signature, not measured",
    ("docs/protocol.md", "| | `basicsr` (default) | `literature` |"):
        "definitions of the two protocols: a version (BasicSR 1.4.2) and the BT.601 luma weights",
}

# (page, header row) -> why these measured tables have no results file yet. Each was measured by the
# command its page names, but that run's output was not kept in full and the numbers cannot be
# rebuilt from what was committed. Remove an entry when its results file lands.
NOT_YET_TRACED = {
}


def unquoted_numeric_tables(text: str) -> list[str]:
    """Header rows of the tables outside quotes, zoo blocks and code that hold a decimal number."""
    for pattern in (BLOCK, ZOO_BLOCK, FENCE):
        text = pattern.sub("", text)
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if re.match(r" {0,3}\|", line):
            current.append(line.strip())
        elif current:
            tables.append(current)
            current = []
    return [rows[0] for rows in tables if any(NUMBER.search(row) for row in rows)]


def relative(page: str) -> str:
    return os.path.relpath(page, ROOT).replace(os.sep, "/")


def test_quoted_tables_equal_their_results_files():
    found = 0
    for page in pages():
        for path, rows in quoted_tables(open(page, encoding="utf-8").read()):
            source = os.path.join(ROOT, path)
            assert os.path.isfile(source), f"{page}: quotes {path}, which does not exist"
            assert rows, f"{page}: the quote of {path} holds no table"
            assert rows == table_rows(open(source, encoding="utf-8").read()), f"{page}: table differs from {path}"
            found += 1
    assert found >= 1


def test_results_files_name_their_command_and_machine():
    quoted = {path for page in pages() for path, _ in quoted_tables(open(page, encoding="utf-8").read())}
    for path in sorted(quoted):
        first = open(os.path.join(ROOT, path), encoding="utf-8").readline()
        assert first.startswith("Made by `") and " on " in first, f"{path}: first line {first!r}"


def test_every_numeric_table_is_a_quote_or_allowed():
    unquoted, seen = [], set()
    for page in pages():
        name = relative(page)
        if name.startswith(OWN_GENERATOR):
            continue
        for header in unquoted_numeric_tables(open(page, encoding="utf-8").read()):
            if (name, header) in NOT_MEASURED or (name, header) in NOT_YET_TRACED:
                seen.add((name, header))
            else:
                unquoted.append(f"{name}: {header}")
    assert not unquoted, ("numeric tables that quote no results file (put the numbers in results/ with "
                          "the command that makes them, and quote it):\n" + "\n".join(unquoted))
    listed = set(NOT_MEASURED) | set(NOT_YET_TRACED)
    assert seen == listed, f"allow-listed tables no longer found (drop them from the lists): {listed - seen}"


def test_the_checker_sees_a_changed_number():
    text = "<!-- table: x -->\n| a | 1.00 |\n<!-- end table -->\n"
    assert quoted_tables(text) == [("x", ["| a | 1.00 |"])]
    assert quoted_tables(text.replace("1.00", "1.01"))[0][1] != ["| a | 1.00 |"]


def test_the_checker_sees_an_unquoted_numeric_table():
    quoted = "<!-- table: x -->\n| a | b |\n|---|---|\n| c | 1.00 |\n<!-- end table -->\n"
    zoo = "<!-- zoo-targets: begin (made by a script) -->\n| m | 2.50 |\n<!-- zoo-targets: end -->\n"
    code = "```\n| m | 3.50 |\n```\n"
    words = "| key | meaning |\n|---|---|\n| a | no numbers, 3 x 3 |\n"
    assert unquoted_numeric_tables(quoted + zoo + code + words) == []
    loose = "text\n\n  | model | PSNR |\n  |---|---|\n  | x | 30.12 |\n\nmore\n"
    assert unquoted_numeric_tables(quoted + loose) == ["| model | PSNR |"]


def test_quote_tables_refreshes_a_stale_quote(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "t.md").write_text("Made by `x` on y.\n\n| a | b |\n|---|---:|\n| 1 | 2.5 |\n\n"
                                               "notes\n\n| c |\n|---|\n| 7 |\n")
    page = ("intro\n\n  <!-- table: results/t.md -->\n  | a | b |\n  |---|---:|\n  | 1 | 2.4 |\n\n"
            "  | c |\n  |---|\n  | 6 |\n  <!-- end table -->\n\nafter\n")
    fresh = QUOTES.requote(page, root=str(tmp_path))
    assert fresh == page.replace("2.4", "2.5").replace("| 6 |", "| 7 |")  # indentation, blank line kept
    assert QUOTES.requote(fresh, root=str(tmp_path)) == fresh
