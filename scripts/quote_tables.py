"""Refresh the results tables quoted in README.md and docs/ from the files they quote.

A quote is a table between `<!-- table: PATH -->` and `<!-- end table -->`; this rewrites its rows
with the table rows of PATH (a results file under results/), keeping the quote's indentation, so a
rerun benchmark reaches the pages without hand edits. `make results` runs it last;
tests/test_docs_tables.py fails on any quote that differs from its file.

    python scripts/quote_tables.py            # rewrite the quotes that differ, name each page
    python scripts/quote_tables.py --check    # only list them; exit 1 if any differs
"""
import argparse
import glob
import os
import re
import sys

from restore.utils.img_io import atomic_write_bytes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK = re.compile(r"(<!-- table: (\S+) -->\n)(.*?)(<!-- end table -->)", re.S)


def quoted_tables(text: str) -> list[tuple[str, list[str]]]:
    """(results file, the quote's table rows) of each quote in a page."""
    return [(m[2], table_rows(m[3])) for m in BLOCK.finditer(text)]


def pages(root: str = ROOT) -> list[str]:
    found = [os.path.join(root, "README.md")] + glob.glob(os.path.join(root, "docs", "**", "*.md"), recursive=True)
    return sorted(found)


def row_groups(text: str) -> list[list[str]]:
    """The tables of a text: runs of consecutive table rows, stripped."""
    groups, current = [], []
    for line in text.splitlines() + [""]:
        if line.strip().startswith("|"):
            current.append(line.strip())
        elif current:
            groups.append(current)
            current = []
    return groups


def table_rows(text: str) -> list[str]:
    """Every table row of a text, in order (indentation ignored)."""
    return [row for group in row_groups(text) for row in group]


def requote(text: str, root: str = ROOT) -> str:
    """The page with every quote's tables replaced by its results file's, one blank line between two
    tables as in the file; what the quote holds before its first row and after its last is kept."""
    def fresh(m: re.Match) -> str:
        path = os.path.join(root, m[2])
        if not os.path.isfile(path):
            raise SystemExit(f"error: a quote names {m[2]}, which does not exist")
        with open(path, encoding="utf-8") as f:
            groups = row_groups(f.read())
        if not groups:
            raise SystemExit(f"error: {m[2]} holds no table")
        lines = m[3].splitlines(keepends=True)
        rows = [i for i, line in enumerate(lines) if line.strip().startswith("|")]
        if not rows:
            return m[0]  # a quote without rows is the test's to report
        first = lines[rows[0]]
        indent = first[:len(first) - len(first.lstrip())]
        tables = "\n".join("".join(f"{indent}{row}\n" for row in group) for group in groups)
        return m[1] + "".join(lines[:rows[0]]) + tables + "".join(lines[rows[-1] + 1:]) + m[4]
    return BLOCK.sub(fresh, text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a quote differs from its file")
    args = p.parse_args(argv)
    stale = []
    for page in pages():
        with open(page, encoding="utf-8") as f:
            text = f.read()
        new = requote(text)
        if new != text:
            stale.append(os.path.relpath(page, ROOT))
            if not args.check:
                atomic_write_bytes(page, new.encode("utf-8"))
    verb = "differs" if args.check else "rewritten"
    for name in stale:
        print(f"{name}: {verb}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
