"""Standard test sets by name, restore-bench (scores vs. an independent computation, CSV/markdown/JSON),
the HTML report rendered in headless Chromium, and the hand-written SVG plot."""
import csv
import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from restore.archs import build_network
from restore.benchmark.html_report import pick_region
from restore.benchmark.svg import nice_ticks, scatter_svg
from restore.cli import benchmark
from restore.cli.common import run_cli
from restore.data import build_dataset
from restore.data.testsets import TESTSETS, get_testset, resolve_testset
from restore.metrics.psnr_ssim import calculate_psnr, calculate_ssim
from restore.utils.checkpoint import save_network_file
from restore.utils.errors import RestoreError
from restore.utils.img_io import imread, imwrite, tensor2img
from restore.utils.imresize import bicubic_degrade, imresize
from tests.tiny import make_images

EDSR_OPTS = {"type": "EDSR", "num_feat": 8, "num_block": 1, "upscale": 2}


# --- test sets by name ------------------------------------------------------------------------------
def test_names_aliases_and_protocols():
    assert get_testset("b100").name == "BSD100" and get_testset("classic5").name == "Classic5"
    assert get_testset("Set24").name == "Kodak24"
    with pytest.raises(RestoreError, match="unknown test set 'Urban10' .did you mean 'Urban100'"):
        get_testset("Urban10")
    sr = get_testset("Set5")
    assert sr.metric_options(3)["psnr"] == {"type": "calculate_psnr", "crop_border": 3, "test_y_channel": True}
    assert sr.dataset_options("/d", 3) == {"name": "Set5", "type": "SRImageDataset", "dataroot_gt": "/d",
                                           "color": "rgb", "scale": 3}
    set12, cbsd = get_testset("Set12"), get_testset("CBSD68")
    assert (set12.color, set12.channels, cbsd.color) == ("gray", 1, "rgb")
    assert set12.metric_options(25)["ssim"] == {"type": "calculate_ssim", "crop_border": 0, "test_y_channel": False}
    assert set12.dataset_options("/d", 25)["sigma"] == 25
    live1, classic5 = get_testset("LIVE1"), get_testset("Classic5")
    assert (live1.task, live1.color, classic5.color) == ("jpeg", "y", "gray")
    assert live1.dataset_options("/d", 10)["quality"] == 10
    assert len(TESTSETS) == 13


def test_live1_rgb_reads_live1_images_as_colour_jpeg(tmp_path):
    make_images(tmp_path / "LIVE1", n=1)
    testset, folder = resolve_testset("LIVE1-RGB", str(tmp_path))
    assert folder == str(tmp_path / "LIVE1") and testset.channels == 3
    assert testset.dataset_options(folder, 10)["color"] == "rgb"
    assert "colour JPEG" in testset.protocol() and "RGB" in testset.protocol()
    with pytest.raises(RestoreError, match="looked for LIVE1 under"):
        resolve_testset("LIVE1-RGB", str(tmp_path / "empty"))


def test_resolve_alias_folder_and_hr_subfolder(tmp_path):
    make_images(tmp_path / "B100" / "HR", n=1)
    make_images(tmp_path / "Set5", n=1)
    assert resolve_testset("BSD100", str(tmp_path))[1] == str(tmp_path / "B100" / "HR")
    assert resolve_testset("set5", str(tmp_path))[1] == str(tmp_path / "Set5")


def test_missing_set_is_one_line_naming_where_it_looked(tmp_path, monkeypatch):
    from restore.data.dataset_manifest import MANIFEST
    # a set the downloader can fetch: its command; one it cannot (it would only print how to get
    # it): those instructions, never the command
    monkeypatch.setitem(MANIFEST, "Urban100", {"kind": "files", "files": {}})
    with pytest.raises(RestoreError) as e:
        resolve_testset("Urban100", str(tmp_path))
    msg = str(e.value)
    assert "\n" not in msg
    assert f"looked for Urban100 under {tmp_path}" in msg and "restore-download-datasets Urban100" in msg
    monkeypatch.setitem(MANIFEST, "Urban100", {"kind": "manual",
                                               "instructions": "ask for it; put it in <data root>/U."})
    with pytest.raises(RestoreError) as e:
        resolve_testset("Urban100", str(tmp_path))
    assert str(e.value).endswith(f"under {tmp_path}; ask for it; put it in {tmp_path}/U.")


def test_shared_sets_resolve_with_their_image_counts(data_root):
    for name in ("Set5", "Set14", "BSD100", "Set12", "BSD68", "CBSD68", "Kodak24", "McMaster", "LIVE1", "Classic5"):
        testset, folder = resolve_testset(name, data_root)
        assert len(os.listdir(folder)) >= testset.images, name


def test_set_protocol_builds_the_literature_inputs(data_root):
    """LIVE1 on Y: the dataset gives 1-channel Y images; Set14 at x3: mod-cropped GT and bicubic LR."""
    live1, folder = resolve_testset("LIVE1", data_root)
    item = build_dataset(live1.dataset_options(folder, 10), "test")[0]
    assert item["lq"].shape[0] == item["gt"].shape[0] == 1
    set14, folder = resolve_testset("Set14", data_root)
    ds = build_dataset(set14.dataset_options(folder, 3), "test")
    item = ds[ds.keys().index("comic")]  # 250x361: mod-cropped to 249x360
    gt = tensor2img(item["gt"])
    assert gt.shape == (360, 249, 3)
    assert np.array_equal(tensor2img(item["lq"]), bicubic_degrade(gt, 3))


# --- restore-bench -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    """One benchmark on tiny synthetic sets: bicubic + a random EDSR x2, SR at x2 and x3, gray denoising."""
    tmp = tmp_path_factory.mktemp("bench")
    root = tmp / "data"
    make_images(root / "Set5", n=3, size=(36, 42))
    make_images(root / "Set12" / "tmp", n=2, size=(32, 32))
    for f in sorted(os.listdir(root / "Set12" / "tmp")):  # gray copies
        imwrite(root / "Set12" / f, imread(root / "Set12" / "tmp" / f, "gray"))
    shutil.rmtree(root / "Set12" / "tmp")
    torch.manual_seed(0)
    net = build_network(EDSR_OPTS).eval()
    save_network_file(str(tmp / "edsr.pth"), net.state_dict())
    out = tmp / "out"
    code = run_cli(benchmark.main, [
        "--model", f"tiny=EDSR:{tmp / 'edsr.pth'},num_feat=8,num_block=1,upscale=2",
        "--sets", "Set5", "Set12", "--scales", "2", "3", "--sigmas", "25", "--data-root", str(root),
        "-o", str(out), "--crops", "2", "--crop-size", "16", "--latency-size", "16", "16",
        "--latency-runs", "1", "--no-progress"])
    assert code == 0
    return {"root": root, "out": out, "net": net, "json": json.loads((out / "results.json").read_text())}


def test_bench_scores_match_an_independent_computation(bench_run):
    data, net = bench_run["json"], bench_run["net"]
    by_key = {(r["set"], r["level_name"]): r for r in data["results"]}
    assert set(by_key) == {("Set5", "x2"), ("Set5", "x3"), ("Set12", "sigma25")}
    x2 = by_key[("Set5", "x2")]
    assert list(x2["mean"]) == ["Bicubic", "tiny"]
    for row in x2["images"]:
        gt = imread(bench_run["root"] / "Set5" / f"{row['name']}.png")[:36, :42]
        lq = bicubic_degrade(gt, 2)
        with torch.no_grad():
            sr = tensor2img(net(torch.from_numpy(lq.transpose(2, 0, 1)).float()[None] / 255))
        assert row["tiny"]["psnr"] == pytest.approx(calculate_psnr(sr, gt, 2, test_y_channel=True), abs=1e-9)
        assert row["tiny"]["ssim"] == pytest.approx(calculate_ssim(sr, gt, 2, test_y_channel=True), abs=1e-9)
        bicubic = imresize(lq, 2)  # MATLAB imresize of the uint8 LR: rounded after each pass
        assert row["Bicubic"]["psnr"] == pytest.approx(calculate_psnr(bicubic, gt, 2, test_y_channel=True),
                                                       abs=1e-9)
    assert x2["mean"]["tiny"]["psnr"] == pytest.approx(np.mean([r["tiny"]["psnr"] for r in x2["images"]]))
    # the x2 model is not run at x3 or on the denoising set, and says why
    assert list(by_key[("Set5", "x3")]["mean"]) == ["Bicubic"]
    assert list(by_key[("Set12", "sigma25")]["mean"]) == ["Input"]
    reasons = {(n["set"], n["level"]): n["reason"] for n in data["not_run"]}
    assert reasons[("Set5", "x3")] == "model scale x2, Set5 x3 needs x3"
    model = data["models"][0]
    assert model["label"] == "tiny" and model["params"] == sum(p.numel() for p in net.parameters())
    assert model["macs_per_pixel"] > 0 and model["latency_ms"] > 0 and model["latency_input"] == [1, 3, 16, 16]
    # paths are relative to the results' folder, so committed results hold no machine's paths
    out = bench_run["out"]
    assert not os.path.isabs(model["weights"]) and not os.path.isabs(data["settings"]["data_root"])
    assert os.path.samefile(out / model["weights"], out.parent / "edsr.pth")
    assert os.path.samefile(out / data["settings"]["data_root"], bench_run["root"])


def test_bench_csv_and_markdown(bench_run):
    out = bench_run["out"]
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [(r["set"], r["level"], r["model"]) for r in rows] == [
        ("Set5", "x2", "Bicubic"), ("Set5", "x2", "tiny"), ("Set5", "x3", "Bicubic"), ("Set12", "sigma25", "Input")]
    tiny = bench_run["json"]["results"][0]["mean"]["tiny"]
    assert float(rows[1]["psnr"]) == pytest.approx(tiny["psnr"], abs=1e-6) and rows[1]["images"] == "3"
    md = (out / "results.md").read_text()
    assert "| tiny | x2 |" in md
    assert f"| tiny | {tiny['psnr']:.2f} / {tiny['ssim']:.4f} |" in md
    assert "- tiny on Set12 sigma25: model scale x2, Set12 sigma25 needs x1" in md


def test_bench_missing_set_fails_before_any_work(tmp_path, capsys):
    code = run_cli(benchmark.main, ["--sets", "Manga109", "--data-root", str(tmp_path), "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Manga109: test set not found" in err
    assert "manga109.org" in err and "download_datasets" not in err  # the downloader cannot fetch it
    assert not (tmp_path / "o").exists()


def test_report_folder_is_self_contained(bench_run):
    report = bench_run["out"] / "report"
    page = (report / "index.html").read_text()
    sources = re.findall(r'<img class=crop src="([^"]+)"', page)
    # 2 crops x (Set5 x2: input, bicubic, tiny, GT; Set5 x3: input, bicubic, GT; Set12: input, GT)
    assert len(sources) == 2 * (4 + 3 + 2)
    for src in sources:
        assert not src.startswith(("/", "http")) and (report / src).is_file()
    crop = imread(report / "crops" / "Set5_x2_img00_GT.png")
    assert crop.shape == (16, 16, 3)
    assert page.count("<svg") == 1 and page.count('class="point"') == 1  # one model with MACs, Set5 x2


CHECK_SCRIPT = """<script>
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const broken = imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src'));
  const svgs = Array.from(document.querySelectorAll('svg')).filter(s => s.getBBox().width > 0).length;
  const marker = document.createElement('div');
  marker.id = 'render-check';
  marker.textContent = `images=${imgs.length} broken=${broken.length} svgs=${svgs} ${broken.join(' ')}`;
  document.body.appendChild(marker);
});
</script>"""


def chromium_binary():
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but chromium is missing (apt-get install -y chromium)")
        pytest.skip("chromium not installed")
    return found


def render_check(report, profile):
    """The marker the check script writes after the page loaded: image count, broken images, SVGs drawn."""
    binary = chromium_binary()
    page = (report / "index.html").read_text().replace("</body>", CHECK_SCRIPT + "</body>")
    check = report / "render_check.html"
    check.write_text(page)
    try:
        result = subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
             f"--user-data-dir={profile}", "--allow-file-access-from-files",
             "--virtual-time-budget=10000", "--dump-dom", check.as_uri()],
            capture_output=True, text=True, timeout=120)
    finally:
        check.unlink()
    marker = re.search(r'<div id="render-check">([^<]*)</div>', result.stdout)
    assert marker, f"no render marker in the DOM; chromium stderr: {result.stderr[-1500:]}"
    return marker.group(1).strip()


@pytest.mark.slow
def test_report_renders_in_headless_chromium(bench_run, tmp_path):
    report = bench_run["out"] / "report"
    images = len(re.findall(r'<img class=crop', (report / "index.html").read_text()))
    assert render_check(report, tmp_path / "profile") == f"images={images} broken=0 svgs=1"
    # and the check does see a missing crop
    copy = tmp_path / "report"
    shutil.copytree(report, copy)
    (copy / "crops" / "Set5_x2_img01_tiny.png").unlink()
    assert render_check(copy, tmp_path / "profile2") == \
        f"images={images} broken=1 svgs=1 crops/Set5_x2_img01_tiny.png"


# --- pieces -------------------------------------------------------------------------------------------
def test_svg_plot_is_valid_xml_with_a_point_per_model():
    svg = scatter_svg([("A", 1200.0, 30.1), ("B <&>", 45000.0, 31.4)], "Set5 x2", "MACs", "PSNR",
                      baseline=("Bicubic", 28.0))
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{ns}circle")) == 2
    assert len(root.findall(f"{ns}line[@class='baseline']")) == 1
    cys = [float(c.get("cy")) for c in root.findall(f"{ns}circle")]
    assert cys[1] < cys[0]  # higher PSNR is drawn higher
    assert nice_ticks(28.0, 31.4) == [28.0, 29.0, 30.0, 31.0, 32.0]


def test_crop_region_is_where_the_detail_is():
    img = np.full((64, 96, 3), 128, np.uint8)
    img[20:52, 60:92] = np.random.default_rng(0).integers(0, 256, (32, 32, 3))
    top, left, size = pick_region(img, 32, 4)
    assert size == 32 and top % 4 == 0 and left % 4 == 0
    assert abs(top - 20) <= 8 and abs(left - 60) <= 8


# --- one baseline, gray models on colour sets ------------------------------------------------------
def bench_json(out, *args):
    assert run_cli(benchmark.main, [*args, "-o", str(out), "--no-html", "--no-progress", "--latency-runs", "0"]) == 0
    return json.loads((out / "results.json").read_text())


def test_bench_and_restore_test_give_the_same_bicubic_baseline(tmp_path):
    from restore import test as restore_test
    root = tmp_path / "data"
    for name, seed in (("Set5", 0), ("Set14", 1), ("BSD100", 2)):
        make_images(root / name, n=2, size=(30, 36), seed=seed)
    options = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "options", "test", "Bicubic", "test_Bicubic_SRx2.yml")
    assert run_cli(restore_test.main, ["-opt", options, "--data-root", str(root),
                                       "--set", f"path.results_root={tmp_path / 'results'}"]) == 0
    tested = json.loads((tmp_path / "results" / "Bicubic_SRx2" / "results.json").read_text())
    plain = bench_json(tmp_path / "b1", "--sets", "Set5", "Set14", "BSD100", "--scales", "2",
                       "--data-root", str(root))
    # --tile and --ensemble are for the models: the baseline row does not move
    tiled = bench_json(tmp_path / "b2", "--sets", "Set5", "Set14", "BSD100", "--scales", "2",
                       "--data-root", str(root), "--tile", "8", "--tile-pad", "1", "--ensemble")
    for bench in (plain, tiled):
        for r in bench["results"]:
            by_name = {row["name"]: row for row in tested[r["set"]]["images"]}
            assert len(r["images"]) == 2 == len(by_name)
            for row in r["images"]:
                for metric in ("psnr", "ssim"):
                    assert row["Bicubic"][metric] == pytest.approx(by_name[row["name"]][metric], abs=1e-9)


def test_gray_model_on_a_colour_set_runs_per_channel_as_restore_infer(tmp_path):
    root = tmp_path / "data"
    make_images(root / "Set5", n=2, size=(24, 30))
    torch.manual_seed(0)
    gray = {"type": "EDSR", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 8, "num_block": 1, "upscale": 2}
    net = build_network(gray).eval()
    save_network_file(str(tmp_path / "gray.pth"), net.state_dict())
    data = bench_json(tmp_path / "o", "--model", f"g=EDSR:{tmp_path / 'gray.pth'},num_in_ch=1,num_out_ch=1,"
                      "num_feat=8,num_block=1,upscale=2", "--sets", "Set5", "--scales", "2",
                      "--data-root", str(root))
    assert data["not_run"] == []
    r = data["results"][0]
    assert list(r["mean"]) == ["Bicubic", "g"]
    assert r["notes"] == {"g": "gray model: run on each of R, G, B separately, as restore-infer does"}
    for row in r["images"]:
        gt = imread(root / "Set5" / f"{row['name']}.png")
        lq = torch.from_numpy(bicubic_degrade(gt, 2).transpose(2, 0, 1)).float()[:, None] / 255  # (3, 1, h, w)
        with torch.no_grad():
            sr = tensor2img(net(lq).permute(1, 0, 2, 3))
        assert row["g"]["psnr"] == pytest.approx(calculate_psnr(sr, gt, 2, test_y_channel=True), abs=1e-6)
    md = (tmp_path / "o" / "results.md").read_text()
    assert "- g on Set5 x2: gray model: run on each of R, G, B separately, as restore-infer does" in md
