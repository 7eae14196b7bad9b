"""Every measured number in the prose of README.md and docs/ comes from a committed results file
(issue 17 item 6; the tables are checked by tests/test_docs_tables.py).

A paragraph is a run of non-blank lines outside code fences, quoted tables, zoo blocks and tables; an
indented block (a log, say) is one too. A paragraph that quotes measurements carries
`<!-- numbers: results/A.md, results/B.txt -->` among its lines, by convention at the end of its
last line (after an indented block: on the line right below it, unindented). Each number of the
paragraph must then occur in one of the named files, at the precision the prose prints: 1.44 matches
1.44, 1.4412 or "1.44x"; 90 % matches 90 %, 90.2 % or 0.902. A number that happens to occur in a
named file passes, so a marker names only the files its text quotes; where parts of a paragraph
(the items of a list) quote different files, each part ends with its own marker, which covers the
text since the previous one.

The numbers looked at are decimals (1.44, 0.66 s, 37.05 dB), percentages (84 %, 29%) and integers
with a unit of measurement (19 minutes, 200 s, 85 MB, 739 GMACs, 21 dB): other integers are mostly
counts and settings, and checking them would drown the measurements in sizes, iterations and years. Not looked at: numbers in `code spans` (option values, commands), in link
targets, versions (two dots: 2.13.0), goals ("goal 1.3x") and the pages with generators of their own.

A decimal that is not a measurement (a threshold, a published number), one derived from a file's
numbers (a difference, a ratio) or a measurement no committed file holds is listed in ALLOWED, with
why, under the first 60 characters of its paragraph (without the markers). The
list can only shrink: an entry whose paragraph or number is gone, or whose number a named file now
holds, fails the test."""
import os
import re

from tests.test_docs_tables import BLOCK, FENCE, OWN_GENERATOR, ROOT, ZOO_BLOCK, pages, relative

MARKER = re.compile(r"<!-- numbers:\s+(.*?)\s*-->", re.S)
# A goal is what a measurement is held against, not a measurement: "goal 1.3x", "goal: within 5 %".
GOAL = re.compile(r"\bgoal:?\s+(?:within\s+|of\s+)?\d+(?:\.\d+)? ?%?")
# A percentage, or a decimal that is not part of a longer dotted run (a version: 2.13.0).
NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?) ?%|(?<![\w.])(\d+\.\d+)(?![\w.]*\d)")
# An integer is a measurement when a unit of time, size, cost or quality follows it ("200 s", "1,024 MB").
MEASURED_INTEGER = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+)(?![\w.,]*\d) ?"
                              r"(?:min|minutes|s|ms|h|hours?|dB|GMACs?|MB|GB|GiB|GFLOP/s)(?!\w)")
FILE_NUMBER = re.compile(r"(\d+(?:\.\d+)?)( ?%)?")
CODE_SPAN = re.compile(r"`[^`]*`")
LINK_TARGET = re.compile(r"\]\([^)\s]*\)")

# (page, first 60 characters of the paragraph) -> (its numbers that no results file holds, why).
ALLOWED = {
    ("README.md", "Both need only Python >= 3.10 and the package index. `make` "):
        (("3.10",), "a version"),
    ("docs/blurpool.md", "**Setup.** - Model: `UNet`, num_feat 16, 3 levels (period 4)"):
        (("0.2",), "a setting: the lr schedule's factor"),
    ("docs/blurpool.md", "**What the results show.** - **Equivariance.** - Blurring bo"):
        (("23", "10", "21", "0.3", "0.5", "0.1", "1.2", "1.3"),
         "derived from unet_dn25.md: EQ-PSNR gains (differences of its columns), 55-58 dB EQ-PSNR as RMS "
         "gray levels, the size of the PSNR gaps, the ratio of the ms/img ranges"),
    ("docs/blurpool.md", "**Shift modes.** - `circular=True` shifts with `torch.roll`."):
        (("100",), "a bound: where float rounding puts the PSNR of an exact match"),
    ("docs/csc.md", "- **Any input size.** A is the exact adjoint of A^T for ever"):
        (("8%", "1.09"), "analysis and a test's bound: the factor 1 / (1 - 2 (pi/16)^2), and L <= 1.09 x the sup"),
    ("docs/csc.md", "- **Step size.** SDNet takes eta = 0.9 / L_pi, L_pi from a p"):
        (("0.9",), "SDNet's constant"),
    ("docs/csc.md", "How far the defaults are from SDNet: max |difference| / max "):
        (("0.1",), "a setting: lambda"),
    ("docs/csc.md", "Auto: SDNet fits the best lambda against the reconstruction "):
        (("0.25",), "a setting: the swept range of multipliers"),
    ("docs/csc.md", "- `noise_sigma` (default): a content-robust estimate of the "):
        (("0.6745", "8%"), "Donoho's constant, and the tolerance tests/test_csc.py checks"),
    ("docs/csc.md", "A gray DnCNN-style denoiser, **shallow to fit the CPU budget"):
        (("0.1",), "a setting: lambda"),
    ("docs/csc.md", "**Budget.** The machine is 2 CPU cores shared with other eng"):
        (("30.4",), "the paper's published DnCNN number, cited"),
    ("docs/csc.md", "What it shows (seeded noise; one training run per model, so "):
        (("0.1", "0.2"), "a judgement of run-to-run noise, not a measurement"),
    ("docs/csc.md", "- At the training level (sigma 25) the CSC head costs 0.16-0"):
        (("0.16", "0.17", "2.9", "1.0", "1.3", "0.12", "0.27", "0.68", "1.26", "1.04", "0.01", "0.02", "2.6"),
         "derived: differences of denoising.md's PSNRs"),
    ("docs/csc.md", "MACs are counted by FlopCounterMode (`restore-flops --arch D"):
        (("2%", "65%"), "derived: ratios of cost.md's MACs and CPU ms"),
    ("docs/data.md", "- Decoding dominates (decoding a 481x321 PNG takes far longe"):
        (("1.5", "1.7"), "derived: ratios of loading_speed.md's patches per second"),
    ("docs/features.md", "`restore.features.RandomSignedFeatures` computes image featu"):
        (("1806.05789",), "an arXiv identifier"),
    ("docs/features.md", "- 512 features of a 240x160 image (k=5, B=1) take well under"):
        (("35", "1"), "computed: n (3k^2 + 1 + 2B (k^2 + 1)) fp32 weights = 35.2 MB, a bound on peak memory"),
    ("docs/features.md", "1. **Preprocessing.** Every image is read as luma. Colour an"):
        (("0.5",), "an option default (--scale)"),
    ("docs/features.md", "So a test image that is a crop of a training image, or the r"):
        (("0.03", "0.9", "80%"), "settings: the texture threshold, --feature-threshold, the template size"),
    ("docs/features.md", "Each template is matched in the other image by normalised cr"):
        (("0.85",), "an option default (--ncc-threshold)"),
    ("docs/features.md", "- a crop of 50-90% of each side; - a shift of 3-16 px, with "):
        (("90%",), "a setting: the calibration's crop sizes"),
    ("docs/features.md", "Results with n = 1024, k = 5, B = 1, seed 2018 (chance is 0."):
        (("0.125", "0.25"), "chance with 8 classes: 1/8 and 2/8"),
    ("docs/metrics.md", "- `basicsr` (the default, BasicSR 1.4.2's numbers): unrounde"):
        (("0.01",), "derived: bicubic.md's literature rows against its published rows"),
    ("docs/metrics.md", "Why Set14 differs most between the two: its `bridge.png` is "):
        (("1.32", "0.09"), "computed: 20 log10(255/219) and its 1/14 share (docs/protocol.md)"),
    ("docs/metrics.md", "- the network output is clamped to [0, 1], multiplied by 255"):
        (("1.5", "0.01", "0.03", "0.5"), "definitions: SSIM's sigma and constants, the bicubic kernel's a"),
    ("docs/nsr.md", "- gates: `softmax` (the paper's), `sigmoid`, `gumbel` (strai"):
        (("0.3",), "the reference's blending constant"),
    ("docs/nsr.md", "NSR holds 4.1x WDSR's parameters at 1.005x its MACs. With `g"):
        (("4.1", "1.005", "739", "2.7"),
         "derived: ratios of flops.md's parameters and MACs, its 274.47 GMACs times the tile cost, which is the "
         "ratio of the tiny NSR's GMACs"),
    ("docs/nsr.md", "Gate region (`gate_region: tile`, an arch option): the refer"):
        (("0.04", "1.04", "0.21", "0.10"), "derived: per-image and mean PSNR differences of the two models"),
    ("docs/nsr.md", "`python scripts/bench_nsr.py --pinned-malloc --repeats 7 --t"):
        (("4.88", "1.19", "2.7"), "rounded from speed.md: its parameters, and its GMACs' ratio"),
    ("docs/performance.md", "- **Training**: iterations per second of one training step, "):
        (("23%", "6%"), "derived: 2804 / 2279 ms of the cited report, and 1.44x / 1.36x of vs_basicsr.md"),
    ("docs/performance.md", "In NCHW on this CPU none of the three moves the step by more"):
        (("1%", "1%", "9.4", "5%"),
         "a bound read off the table, an estimate per op, the MB of 16 x 64 x 48 x 48 fp32 values, and "
         "a judgement of the earlier run's noise"),
    ("docs/performance.md", "`unfold` writes and reads a 9x im2col copy of every activati"):
        (("85",), "computed: 16 x 64 x 48 x 48 fp32 values x 9"),
    ("docs/performance.md", "**Verdict.** The best formulation, `fused` in NCHW, brings N"):
        (("4.1",), "the ratio of parameter counts (4,877,812 against the same-width WDSR-A's 1,193,460)"),
    ("docs/protocol.md", "## Why BasicSR's Set14 is 0.08 dB above the published 30.24"):
        (("0.08", "30.24"), "a heading: bicubic.md's published x2 row and its gap to the basicsr row (30.3246)"),
    ("docs/protocol.md", "Set14's `bridge.png` is a one-channel (grayscale) PNG; it is"):
        (("1.32", "0.094"), "computed: 20 log10(255/219) and its 1/14 share"),
    ("docs/protocol.md", "PSNR (dB) / SSIM on Y, crop = scale (the published rows: PSN"):
        (("0.01", "0.007", "0.0004", "0.9299", "0.8682", "0.8104", "0.8688", "0.7027", "0.8431", "0.7385",
          "0.08", "0.09", "0.015"),
         "the published bicubic SSIMs, cited (bicubic.md has their PSNRs only), and differences to bicubic.md's rows"),
    ("docs/protocol.md", "What each difference is worth: the bicubic Y-PSNR under `lit"):
        (("0.001",), "derived: the sum of changes.md's differences against the basicsr x2 row"),
}


def paragraphs(text: str) -> list[str]:
    """The paragraphs of a page, outside fences, quoted tables, zoo blocks and table rows."""
    for pattern in (BLOCK, ZOO_BLOCK, FENCE):
        text = pattern.sub("\n\n", text)
    found = []
    for block in re.split(r"\n[ \t]*\n", text):
        lines = [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("|")]
        if lines:
            found.append("\n".join(lines))
    return found


def head(paragraph: str) -> str:
    return " ".join(MARKER.sub("", paragraph).split())[:60]


def paths(marker: str) -> list[str]:
    return marker.replace(",", " ").split()


def sources(paragraph: str) -> list[str]:
    return [path for found in MARKER.findall(paragraph) for path in paths(found)]


def segments(paragraph: str) -> list[tuple[str, list[str]]]:
    """(text, the files that vouch for it): a marker covers the text since the previous marker, and
    the last one also what follows it."""
    parts = MARKER.split(paragraph)
    texts, markers = parts[0::2], [paths(found) for found in parts[1::2]] or [[]]
    return [(text, markers[min(i, len(markers) - 1)]) for i, text in enumerate(texts)]


def measured_numbers(paragraph: str) -> list[str]:
    """The decimals, percentages and measured integers of a paragraph in order, as printed ('1.44',
    '90 %' -> '90%', '1,024 MB' -> '1024')."""
    text = GOAL.sub("", LINK_TARGET.sub("]", CODE_SPAN.sub("", MARKER.sub("", paragraph))))
    found = [(m.start(), f"{m[1]}%" if m[1] else m[2]) for m in NUMBER.finditer(text)]
    found += [(m.start(), m[1].replace(",", "")) for m in MEASURED_INTEGER.finditer(text)]
    return [number for _, number in sorted(found)]


def decimals(number: str) -> int:
    return len(number.rstrip("%").partition(".")[2])


def holds(text: str, number: str) -> bool:
    """Whether some number in text, rounded to the prose's precision, is `number`."""
    value, places = float(number.rstrip("%")), decimals(number)
    tolerance = 0.5 * 10 ** -places + 1e-9
    for token, percent in FILE_NUMBER.findall(text.replace(",", "")):
        found = float(token)
        if number.endswith("%") and not percent:
            # a share may be printed as a fraction (0.902); a bare integer is no percentage
            if "." not in token:
                continue
            found *= 100
        if abs(found - value) <= tolerance:
            return True
    return False


def read(path: str) -> str:
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def untraced(paragraph: str, read=read) -> list[str]:
    """The numbers of a paragraph that none of the files its markers name for them holds."""
    left = []
    for text, files in segments(paragraph):
        texts = [read(path) for path in files]
        left += [number for number in measured_numbers(text) if not any(holds(found, number) for found in texts)]
    return left


def prose_pages():
    for page in pages():
        name = relative(page)
        if not name.startswith(OWN_GENERATOR):
            yield name, paragraphs(read(name))


def test_markers_name_results_files_that_exist():
    named = 0
    for name, found in prose_pages():
        for paragraph in found:
            for path in sources(paragraph):
                where = f"{name}: {head(paragraph)!r} names {path}"
                assert path.startswith("results/"), f"{where}, not a results file"
                assert os.path.isfile(os.path.join(ROOT, path)), f"{where}, which does not exist"
                named += 1
    assert named >= 1


def test_every_measured_number_is_in_its_results_file_or_allowed():
    wrong, seen = [], set()
    for name, found in prose_pages():
        for paragraph in found:
            key = (name, head(paragraph))
            allowed, not_found = ALLOWED.get(key, ((), ""))[0], untraced(paragraph)
            if key in ALLOWED:
                seen.add(key)
                needless = [number for number in allowed if number not in not_found]
                assert not needless, (f"{name}: {key[1]!r}: allowed numbers that are gone or now in the named "
                                      f"files (drop them from ALLOWED): {needless}")
            left = [number for number in not_found if number not in allowed]
            if left:
                files = ", ".join(sources(paragraph)) or "no results file named"
                wrong.append(f"{name}: {key[1]!r} ({files}): {', '.join(left)}")
    assert not wrong, ("numbers in the prose that no named results file holds (correct the prose to the file, "
                       "name the file with <!-- numbers: PATH -->, or drop the number):\n" + "\n".join(wrong))
    assert seen == set(ALLOWED), f"allowed paragraphs no longer found (drop them from ALLOWED): {set(ALLOWED) - seen}"


def test_the_checker_sees_a_changed_number():
    files = {"results/x.md": "Made by `x` on y.\n| EDSR | 1.4412 | 90 % |\n"}
    paragraph = "EDSR trains 1.44x as fast, at 90 % of the peak. <!-- numbers: results/x.md -->"
    assert measured_numbers(paragraph) == ["1.44", "90%"]
    assert untraced(paragraph, files.get) == []
    assert untraced(paragraph.replace("1.44x", "1.45x"), files.get) == ["1.45"]
    assert untraced(paragraph.replace("90 %", "91 %"), files.get) == ["91%"]
    assert untraced(paragraph.replace("<!-- numbers: results/x.md -->", ""), files.get) == ["1.44", "90%"]
    # with a marker per list item, a number counts only in the files of its own item
    files["results/y.md"] = "ratio 1.19"
    items = "- 1.44x <!-- numbers: results/x.md -->\n- 1.19x <!-- numbers: results/y.md -->"
    assert untraced(items, files.get) == []
    assert untraced(items.replace("1.44x", "1.19x"), files.get) == ["1.19"]


def test_the_checker_reads_paragraphs_and_skips_what_is_not_prose():
    text = ("First paragraph 1.5 dB\nstill the first. <!-- numbers: results/a.md -->\n\n"
            "```\nfenced 2.5\n```\n\n"
            "<!-- table: results/b.md -->\n| t | 3.5 |\n<!-- end table -->\n\n"
            "| loose | 4.5 |\n|---|---|\n\n"
            "    log line 5.5 it/s\n<!-- numbers: results/c.md -->\n\n"
            "`--scale 0.5`, torch 2.13.0, [link](x/1.5.md) and 12 images.\n")
    found = paragraphs(text)
    assert [measured_numbers(paragraph) for paragraph in found] == [["1.5"], ["5.5"], []]
    assert [sources(paragraph) for paragraph in found] == [["results/a.md"], ["results/c.md"], []]
    assert head(found[0]) == "First paragraph 1.5 dB still the first."
    assert holds("0.902", "90%") and holds("90.2 %", "90%") and not holds("90 images", "90%")
    assert holds("1.0049", "1.005") and holds("(1.44x)", "1.44") and not holds("1.4", "1.44")
    assert measured_numbers("1.088x (goal: within\n1.15x), 1.3x (goal 1.3x)") == ["1.088", "1.3"]
    # integers count when a unit follows them; counts, sizes and ranges' first ends do not
    assert measured_numbers("took 19 minutes and 1,024 MB (391-718 ms, 2 cores, 240x160, 3.5 s, 8 images)") == \
        ["19", "1024", "718", "3.5"]
    assert holds("| NSR | 738.6 |", "739") and not holds("| NSR | 737.4 |", "739")
