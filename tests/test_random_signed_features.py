import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from restore.features import RandomSignedFeatures
from restore.features.random_signed import WEIGHT_BLOCK
from restore.metrics import METRIC_REGISTRY, calculate_metric


def images(n=2, h=32, w=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    # Smooth random images, so features are not those of white noise.
    x = torch.rand(n, 3, h // 4, w // 4, generator=g, dtype=torch.float64)
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)


def test_same_seed_same_features_and_other_seed_differs():
    x = images()
    a = RandomSignedFeatures(n=96, seed=7)(x)
    b = RandomSignedFeatures(n=96, seed=7)(x)
    c = RandomSignedFeatures(n=96, seed=8)(x)
    assert a.shape == (2, 96) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.abs().max() <= 1


def test_weights_are_fixed_n01_values_and_nested_in_n():
    small = RandomSignedFeatures(n=10, seed=3, blocks=2)
    large = RandomSignedFeatures(n=WEIGHT_BLOCK + 5, seed=3, blocks=2)
    assert torch.equal(small.first_weight, large.first_weight[:10])
    assert torch.equal(small.dw_weight, large.dw_weight[:, :10])
    big = RandomSignedFeatures(n=20 * WEIGHT_BLOCK, seed=3, kernel_size=3, blocks=2)
    for w in (big.first_weight, big.first_bias, big.dw_weight, big.dw_bias):
        assert abs(w.mean().item()) < 0.05 and abs(w.std().item() - 1) < 0.05
    x = images()
    assert torch.equal(RandomSignedFeatures(n=10, seed=3)(x), RandomSignedFeatures(n=300, seed=3)(x)[:, :10])


def test_feature_is_fraction_of_positive_final_positions():
    # blocks=0: one conv 3->n and sign; a feature is 2 * P(conv >= 0) - 1, computed by hand here.
    m = RandomSignedFeatures(n=5, kernel_size=3, blocks=0, standardize=False)
    x = images(1, 8, 8)
    conv = F.conv2d(x.float(), m.first_weight, m.first_bias, padding=1)
    expected = 2 * (conv >= 0).double().mean(dim=(2, 3)) - 1
    assert torch.allclose(m(x).double(), expected, atol=1e-7)


@pytest.mark.parametrize("padding_mode", ["zeros", "circular"])
def test_chunked_equals_unchunked(padding_mode):
    x = images(3, 40, 32)
    full = RandomSignedFeatures(n=200, blocks=2, chunk_size=200, padding_mode=padding_mode)(x)
    for chunk in (1, 7, 64):
        part = RandomSignedFeatures(n=200, blocks=2, chunk_size=chunk, padding_mode=padding_mode)(x)
        assert torch.equal(full, part), chunk
    # A memory bound that forces tiny chunks gives the same features too.
    tiny = RandomSignedFeatures(n=200, blocks=2, max_elements=3 * 40 * 32 * 5, padding_mode=padding_mode)
    assert len(list(tiny.chunks(tiny.prepare(x)))) == 40
    assert torch.equal(full, tiny(x))


def test_batched_equals_one_by_one():
    x = images(4)
    m = RandomSignedFeatures(n=64, blocks=1)
    assert torch.equal(m(x), torch.cat([m(x[i]) for i in range(4)]))


@pytest.mark.parametrize("blocks", [1, 2])
def test_circular_shifts_by_multiples_of_2_to_the_B_give_identical_features(blocks):
    x = images(2, 32, 48)
    m = RandomSignedFeatures(n=128, blocks=blocks, padding_mode="circular")
    ref = m(x)
    step = 2 ** blocks
    for dy, dx in ((step, 0), (0, 3 * step), (-step, 2 * step)):
        assert torch.equal(ref, m(torch.roll(x, shifts=(dy, dx), dims=(2, 3)))), (dy, dx)
    # An odd shift aliases in the stride-2 pooling: close, but not identical.
    odd = m(torch.roll(x, shifts=(1, 0), dims=(2, 3)))
    assert not torch.equal(ref, odd)
    assert (ref - odd).abs().mean() < 0.1


def test_standardisation_makes_brightness_and_contrast_irrelevant():
    x = images(2)
    on = RandomSignedFeatures(n=128, blocks=1, standardize=True)
    off = RandomSignedFeatures(n=128, blocks=1, standardize=False)
    for a, b in ((2.0, 0.0), (0.5, 0.3), (3.7, -1.2)):
        assert torch.equal(on(x), on(a * x + b)), (a, b)
        assert not torch.equal(off(x), off(a * x + b))


def test_gray_input_is_replicated_to_rgb():
    x = images(2)[:, :1]
    m = RandomSignedFeatures(n=32)
    assert torch.equal(m(x), m(x.expand(-1, 3, -1, -1)))


def test_invalid_configurations_are_refused():
    with pytest.raises(ValueError, match="odd"):
        RandomSignedFeatures(kernel_size=4)
    with pytest.raises(ValueError, match="padding_mode"):
        RandomSignedFeatures(padding_mode="reflect")
    with pytest.raises(ValueError, match="too small"):
        RandomSignedFeatures(n=4, blocks=3)(torch.rand(1, 3, 6, 6))
    with pytest.raises(ValueError, match="1 or 3"):
        RandomSignedFeatures(n=4)(torch.rand(1, 2, 8, 8))


def uint8_image(seed, h=48, w=40):
    x = images(1, h, w, seed)[0].permute(1, 2, 0).numpy()
    return np.round(x * 255).astype(np.uint8)


def textured_uint8_image(seed, h, w):
    """Smooth shapes plus fine texture, so that noise, JPEG and blur each leave their own trace."""
    fine = np.random.default_rng(seed).normal(0, 1, (h, w, 3))
    fine = F.avg_pool2d(torch.from_numpy(fine).permute(2, 0, 1)[None], 3, 1, 1)[0].permute(1, 2, 0).numpy()
    x = images(1, h, w, seed)[0].permute(1, 2, 0).numpy() * 0.7 + 0.1 * fine + 0.15
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def test_feature_distance_metric():
    assert "feature_distance" in METRIC_REGISTRY
    img = uint8_image(0)
    opt = {"type": "feature_distance", "n": 256}
    assert calculate_metric({"img": img, "img2": img.copy()}, opt) == 0.0
    noisy = np.clip(img + np.random.default_rng(0).normal(0, 10, img.shape), 0, 255).astype(np.uint8)
    other = uint8_image(1)
    d_noisy = calculate_metric({"img": noisy, "img2": img}, opt)
    d_other = calculate_metric({"img": other, "img2": img}, opt)
    assert 0 < d_noisy < d_other <= 2
    # Symmetric, and gray HxWx1 works (replicated).
    assert calculate_metric({"img": img, "img2": noisy}, opt) == pytest.approx(d_noisy, abs=1e-12)
    gray = img[:, :, :1]
    assert calculate_metric({"img": gray, "img2": gray}, opt) == 0.0
    # Brightness/contrast changes are ignored (standardised), borders can be cropped.
    brighter = (img.astype(np.float64) * 0.5 + 60).round().astype(np.uint8)
    assert calculate_metric({"img": brighter, "img2": img}, opt) < d_noisy
    assert calculate_metric({"img": noisy, "img2": img}, dict(opt, crop_border=4)) > 0
    assert calculate_metric({"img": noisy, "img2": img}, dict(opt, test_y_channel=True)) > 0


def test_feature_distance_rejects_mismatched_shapes_and_unknown_options():
    from restore.utils.errors import OptionError
    img = uint8_image(0)
    with pytest.raises(ValueError, match="shape"):
        calculate_metric({"img": img, "img2": img[:-2]}, {"type": "feature_distance", "n": 16})
    with pytest.raises(OptionError, match="unknown key"):
        calculate_metric({"img": img, "img2": img}, {"type": "feature_distance", "nn": 16})


# ---- restore-probe-features (linear probe / kNN on these features) ----

def test_topk_accuracy_by_hand():
    from restore.features.probe import topk_accuracy
    scores = np.array([[0.1, 0.9, 0.0], [0.5, 0.2, 0.4], [0.3, 0.3, 0.9]])
    labels, classes = np.array([1, 2, 1]), np.array([0, 1, 2])
    assert topk_accuracy(scores, labels, classes, 1) == pytest.approx(1 / 3)
    # Row 3 ties 0.3/0.3: class 0 (lower index) takes the second place, so label 1 misses top-2.
    assert topk_accuracy(scores, labels, classes, 2) == pytest.approx(2 / 3)
    assert topk_accuracy(scores, np.array([1, 2, 1]), classes, 3) == 1.0


def test_class_separation_by_hand():
    from restore.features.probe import class_separation
    x = np.array([[0.0], [1.0], [10.0], [11.0]])
    sep = class_separation(x, np.array([0, 0, 1, 1]))
    assert sep["within"] == pytest.approx(1.0) and sep["between"] == pytest.approx((10 + 11 + 9 + 10) / 4)


def test_degradations_do_what_they_say():
    from restore.features.degradation_task import DEGRADATION_CLASSES, degrade_patch
    patch = uint8_image(3, 48, 48)
    rng = np.random.default_rng(0)
    out = {name: degrade_patch(patch, name, rng) for name in DEGRADATION_CLASSES}
    assert out["clean"] is patch and all(v.shape == patch.shape and v.dtype == np.uint8 for v in out.values())
    residual = out["noise50"].astype(float) - patch
    assert 40 < residual.std() < 52  # sigma 50, a little less where clipping bites
    err = {name: np.abs(out[name].astype(float) - patch).mean() for name in DEGRADATION_CLASSES}
    assert err["noise15"] < err["noise25"] < err["noise50"]
    assert err["jpeg30"] < err["jpeg10"] and err["bicubic_x2"] < err["bicubic_x4"]


def test_degradation_task_is_deterministic_and_probe_runs(tmp_path, capsys):
    from restore.cli.probe_features import main
    from restore.features.degradation_task import DEGRADATION_CLASSES
    from restore.utils.img_io import imwrite
    for split, seeds in (("tr", range(4)), ("te", range(10, 12))):
        for s in seeds:
            imwrite(tmp_path / split / f"{s}.png", textured_uint8_image(s, 64, 72))
    argv = ["--data-root", str(tmp_path), "--train-source", "tr", "--test-source", "te", "--patch", "32",
            "--n", "128", "--json", str(tmp_path / "r.json"), "--table", str(tmp_path / "t" / "r.md")]
    assert main(["--make-degradation-task", str(tmp_path / "a"), *argv]) == 0
    assert main(["--make-degradation-task", str(tmp_path / "b"), *argv]) == 0
    for name in DEGRADATION_CLASSES:
        files = sorted(os.listdir(tmp_path / "a" / "train" / name))
        assert files == ["0_0.png", "0_1.png", "1_0.png", "1_1.png", "2_0.png", "2_1.png", "3_0.png", "3_1.png"]
        for f in files:
            a, b = (tmp_path / run / "train" / name / f for run in ("a", "b"))
            assert a.read_bytes() == b.read_bytes()
        assert len(os.listdir(tmp_path / "a" / "test" / name)) == 4
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["train_images"] == 64 and result["test_images"] == 32
    for rep in ("random_signed", "pixels"):
        for acc in result[rep].values():
            assert 0 <= acc["top1"] <= acc["top2"] <= 1
    out = capsys.readouterr().out
    assert "class separation (random_signed)" in out and "top-2" in out
    table = (tmp_path / "t" / "r.md").read_text()
    assert table.startswith("Made by `restore-probe-features --make-degradation-task ")
    assert f"| random signed, standardised | LinearSVC, C = 0.05 | {result['random_signed']['linear_svm']['top1']:.3f} |" \
        in table


def test_probe_separates_clean_from_noisy_patches():
    from restore.features.degradation_task import degrade_patch
    from restore.features.probe import probe
    rng = np.random.default_rng(0)
    m = RandomSignedFeatures(n=256, standardize=False)
    patches = [textured_uint8_image(s, 32, 32) for s in range(30)]
    x = np.stack([p for p in patches] + [degrade_patch(p, "noise25", rng) for p in patches])
    y = np.array([0] * 30 + [1] * 30)
    f = m(torch.from_numpy(x).permute(0, 3, 1, 2).double() / 255).numpy()
    train = np.r_[0:20, 30:50]
    test = np.r_[20:30, 50:60]
    result = probe(f[train], y[train], f[test], y[test], c=1.0, neighbours=3)
    assert result["linear_svm"]["top1"] >= 0.9 and result["knn3"]["top1"] >= 0.9
    assert result["linear_svm"]["top2"] == 1.0  # two classes: top-2 is always right


def test_probe_missing_folder_is_one_line_error(tmp_path, capsys):
    from restore.cli.common import run_cli
    from restore.cli.probe_features import main
    assert run_cli(main, ["--train", str(tmp_path / "nope"), "--test", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope" in err and err.startswith("error: --train")


def test_probe_results_table_rows():
    from restore.features.probe import results_table
    acc = {"linear_svm": {"top1": 0.5724, "top2": 0.8031}, "knn5": {"top1": 0.3, "top2": 0.51649}}
    results = {"features": {"n": 1024, "kernel_size": 5, "blocks": 1, "seed": 2018, "standardize": False,
                            "padding_mode": "zeros"},
               "classes": list("abcdefgh"), "train_images": 3200, "test_images": 1600, "pixel_values": 6912,
               "random_signed": acc, "pixels": {"linear_svm": {"top1": 0.154, "top2": 0.306},
                                                "knn5": {"top1": 0.13, "top2": 0.248}},
               "separation": {"pixels": {"between": 30.5, "within": 30.53, "ratio": 0.999},
                              "random_signed": {"between": 4.25, "within": 4.0, "ratio": 1.0624}}}
    text = results_table(results, "Made by `x` on y.", 0.05, 300.0, 600.0)
    raw = "random signed, raw [0, 1] (`--no-standardize`)"
    assert [line for line in text.splitlines() if line.startswith("|")] == [
        "| features | classifier | top-1 | top-2 |", "|---|---|---|---|",
        f"| {raw} | LinearSVC, C = 0.05 | 0.572 | 0.803 |", f"| {raw} | 5-NN | 0.300 | 0.516 |",
        "| pixels (6,912 values) | LinearSVC, C = 0.05 | 0.154 | 0.306 |",
        "| pixels (6,912 values) | 5-NN | 0.130 | 0.248 |",
        "| representation | mean between-class distance | mean within-class distance | between / within |",
        "|---|---|---|---|",
        "| pixels (6,912 values) | 30.5 | 30.53 | 0.999 |", f"| {raw} | 4.25 | 4 | 1.062 |"]
    assert text.startswith("Made by `x` on y.\n") and "5.0 CPU-minutes (user + sys), 10.0 min wall" in text
