"""Every results table quoted in the docs equals the committed results file it names (issue 17 item 6).

A quoted table sits between `<!-- table: PATH -->` and `<!-- end table -->`; its rows must be the
table rows (lines starting with '|') of PATH, in order."""
import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK = re.compile(r"<!-- table: (\S+) -->\n(.*?)<!-- end table -->", re.S)


def table_rows(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.startswith("|")]


def quoted_tables(text: str):
    return [(path, table_rows(body)) for path, body in BLOCK.findall(text)]


def test_quoted_tables_equal_their_results_files():
    pages = [os.path.join(ROOT, "README.md")] + glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)
    found = 0
    for page in pages:
        for path, rows in quoted_tables(open(page, encoding="utf-8").read()):
            source = os.path.join(ROOT, path)
            assert os.path.isfile(source), f"{page}: quotes {path}, which does not exist"
            assert rows == table_rows(open(source, encoding="utf-8").read()), f"{page}: table differs from {path}"
            found += 1
    assert found >= 1


def test_the_checker_sees_a_changed_number():
    text = "<!-- table: x -->\n| a | 1.00 |\n<!-- end table -->\n"
    assert quoted_tables(text) == [("x", ["| a | 1.00 |"])]
    assert quoted_tables(text.replace("1.00", "1.01"))[0][1] != ["| a | 1.00 |"]
