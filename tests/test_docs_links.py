"""The README and docs/ link to files and headings that exist, and the README stays a short front door."""
import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README_MAX_LINES = 300

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)


def doc_files() -> list[str]:
    files = [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "datasets", "README.md")]
    files += glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)
    return sorted(f for f in files if os.path.isfile(f))


def _without_code(text: str) -> str:
    return INLINE_CODE.sub("", FENCE.sub("", text))


def anchors(path: str) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to '-', repeats get -1, -2, ..."""
    with open(path, encoding="utf-8") as f:
        text = FENCE.sub("", f.read())
    seen: dict[str, int] = {}
    found = set()
    for title in HEADING.findall(text):
        title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)  # a link in a heading keeps its text
        slug = re.sub(r"[^\w\- ]", "", title.replace("`", "").lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def broken_links(path: str) -> list[str]:
    """Every relative link of a markdown file whose file, or heading within it, does not exist."""
    with open(path, encoding="utf-8") as f:
        text = _without_code(f.read())
    bad = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
        if not os.path.exists(dest):
            bad.append(f"{target} (no such file)")
        elif anchor and dest.endswith(".md") and anchor not in anchors(dest):
            bad.append(f"{target} (no such heading)")
    return bad


def test_every_relative_link_in_the_readme_and_docs_resolves():
    files = doc_files()
    assert os.path.join(ROOT, "docs", "index.md") in files
    problems = {os.path.relpath(f, ROOT): bad for f in files if (bad := broken_links(f))}
    assert not problems, problems


def test_the_readme_is_a_front_door_of_at_most_300_lines():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move topics to docs/"


def test_docs_index_lists_every_page():
    with open(os.path.join(ROOT, "docs", "index.md"), encoding="utf-8") as f:
        index = f.read()
    linked = {os.path.normpath(os.path.join(ROOT, "docs", t.partition("#")[0])) for t in LINK.findall(index)}
    pages = [f for f in doc_files() if f.startswith(os.path.join(ROOT, "docs")) and not f.endswith("index.md")]
    assert pages and not [os.path.relpath(p, ROOT) for p in pages if p not in linked]


def test_the_checker_finds_a_missing_file_and_a_missing_heading(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## The `data` root: here\n\n## Twice\n\n## Twice\n")
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n[ok](other.md#the-data-root-here) [ok](other.md#twice-1) [ok](#page)\n"
                    "[gone](missing.md) [bad heading](other.md#nowhere) [web](https://example.com/x.md)\n"
                    "`[in code](missing2.md)`\n\n```\n[fenced](missing3.md)\n```\n")
    assert broken_links(str(page)) == ["missing.md (no such file)", "other.md#nowhere (no such heading)"]


def test_the_readme_has_one_line_per_command_line_tool():
    with open(os.path.join(ROOT, "setup.py"), encoding="utf-8") as f:
        commands = set(re.findall(r'"(restore-[a-z-]+)=', f.read()))
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        rows = re.findall(r"^\| `(restore-[a-z-]+)` \|", f.read(), re.M)
    assert commands and sorted(rows) == sorted(commands)


def test_the_option_reference_is_current():
    # in a fresh process: the test suite registers test-only archs in this one
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "restore.utils.options", "--reference"], cwd=ROOT,
                         capture_output=True, text=True, check=True, timeout=120).stdout
    with open(os.path.join(ROOT, "docs", "options.md"), encoding="utf-8") as f:
        assert f.read() == out, "regenerate: python -m restore.utils.options --reference > docs/options.md"
    assert "### `EDSR`" in out and "| `train.total_iter` | int | **required** |" in out
