"""The CSC denoising experiment of docs/csc.md: a shallow gray DnCNN, its CSC version and its bias-free
version, trained at sigma 25 on Train400 with restore's trainer, tested on Set12 and BSD68 at sigma
15, 25, 35 and 50; the CSC net with its trained lambda and with "auto" lambda (calibrated on Kodak24,
once on the wavelet noise estimate, the default, and once on the first layer's residual);
plus the cost of a CSC layer against a plain conv (parameters, MACs, CPU time).

    python scripts/exp_csc_denoise.py                     # every stage: train, calibrate, test, residuals, cost
    python scripts/exp_csc_denoise.py --stages test cost  # reuse the trained models

BUDGET: 250 iterations of 8 patches 40x40 per model (options/train/CSC/*.yml), chosen so the three
trainings together take about 10-15 minutes on a 2-core CPU shared with other jobs; wall-clock
times are measured and written with the results. Models land in experiments/<name>/, results in
results/csc/ (training.md, calibration.md, denoising.md, residuals.md, cost.md: the tables docs/csc.md
quotes, each headed by the command and the machine; results.json: everything).
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

from restore.archs import build_network
from restore.archs.layers.csc_conv import CSCConv2d
from restore.benchmark.models import latency_ms
from restore.csc import apply_csc_lambda_option, first_layer_measure, fit_path_for, scale_csc_lambda
from restore.csc.calibrate import DEFAULT_MULTIPLIERS, fit_rows, load_validation_images, noisy_versions, sweep
from restore.data import build_dataloader, build_dataset
from restore.models import build_model
from restore.train import train
from restore.utils.flops import count_macs
from restore.utils.img_io import atomic_write_bytes, img2tensor, imread, list_images, to_float32
from restore.utils.machine import made_by
from restore.utils.options import parse_options

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MODELS = {  # label: (train options, test options, CSC lambda modes to test)
    "plain": ("train_DnCNN8_gray_s25_cpu.yml", "test_DnCNN8_gray_cpu.yml", [None]),
    "CSC": ("train_DnCNN8_CSC_gray_s25_cpu.yml", "test_DnCNN8_CSC_gray_cpu.yml",
            ["trained", "auto", "auto, residual fit", "sigma-known"]),
    "bias-free": ("train_DnCNN8_nobias_gray_s25_cpu.yml", "test_DnCNN8_nobias_gray_cpu.yml", [None]),
}
CALIBRATION = ["--val-dir", "Kodak24", "--color", "gray", "--max-images", "8", "--crop", "160",
               "--sigmas", "10", "15", "25", "35", "50", "60"]


def train_opt(name):
    return os.path.join(ROOT, "options", "train", "CSC", name)


def test_opt(name):
    return os.path.join(ROOT, "options", "test", "CSC", name)


def stage_train(results, data_root):
    results.setdefault("train", {})
    for label, (train_file, _, _) in MODELS.items():
        opt = parse_options(train_opt(train_file), is_train=True, data_root=data_root)
        start = time.time()
        out = train(opt)
        seconds = time.time() - start
        if out.get("stopped"):
            raise SystemExit(f"training of {label} was interrupted; rerun --stages train")
        history = out["history"]
        results["train"][label] = {"option_file": f"options/train/CSC/{train_file}", "seconds": seconds,
                                   "iterations": out["iter"],
                                   "loss_first_20": statistics.mean(history[:20]),
                                   "loss_last_20": statistics.mean(history[-20:])}
        print(f"trained {label}: {out['iter']} iterations in {seconds / 60:.1f} min", flush=True)


def residual_fit_path(checkpoint: str) -> str:
    return fit_path_for(checkpoint).replace(".csc_lambda.json", ".csc_lambda_residual.json")


def stage_calibrate(results, data_root):
    """One sweep (what `restore-csc-calibrate` runs), fitted twice: on the noise estimate (saved
    beside the checkpoint: what `auto` reads) and on sqrt(residual) (the earlier rule, for the
    comparison; saved as <checkpoint>.csc_lambda_residual.json)."""
    opt = parse_options(test_opt(MODELS["CSC"][1]), is_train=False, data_root=data_root)
    checkpoint = opt["path"]["pretrain_network_g"]
    model = build_model(opt)
    args = dict(zip(CALIBRATION[::2], CALIBRATION[1::2]))
    images = load_validation_images(os.path.join(opt["data_root"], args["--val-dir"]), args["--color"],
                                    int(args["--max-images"]), int(args["--crop"]))
    sigmas = [float(s) for s in CALIBRATION[CALIBRATION.index("--sigmas") + 1:]]
    start = time.time()
    rows = sweep(model.net_g, images, sigmas, DEFAULT_MULTIPLIERS, "all", 0, model.device)
    info = {"checkpoint": checkpoint, "val_dir": args["--val-dir"], "images": len(images),
            "crop": int(args["--crop"]), "color": args["--color"], "seed": 0, "sigmas": sigmas}
    for key, feature, fit_file in (("calibration", "noise_sigma", fit_path_for(checkpoint)),
                                   ("calibration_residual", "sqrt_residual", residual_fit_path(checkpoint))):
        fit = fit_rows(rows, feature, "all", info)
        fit.save(fit_file)
        with open(fit_file) as f:
            results[key] = {"seconds": time.time() - start, "fit_file": fit_file, "fit": json.load(f),
                            "command": CALIBRATION + ["--feature", feature]}


def calibrated_multiplier(results, sigma: float) -> float:
    """The multiplier the calibration found best at this noise level (the rule "sigma known")."""
    for point in results["calibration"]["fit"]["points"]:
        if point["sigma"] == sigma:
            return point["best_multiplier"]
    raise SystemExit(f"sigma {sigma} was not calibrated")


def stage_test(results, data_root, only=None):
    results.setdefault("test", {})
    for label, (_, test_file, modes) in MODELS.items():
        opt = parse_options(test_opt(test_file), is_train=False, data_root=data_root)
        model = build_model(opt)
        for mode in modes:
            key = label if mode is None else f"{label} ({mode} lambda)"
            if only and key not in only:
                continue
            checkpoint = opt["path"]["pretrain_network_g"]
            if mode in ("trained", "auto"):
                print(apply_csc_lambda_option(model.net_g, mode, checkpoint))
            if mode == "auto, residual fit":
                print(apply_csc_lambda_option(model.net_g, "auto:" + residual_fit_path(checkpoint)))
            rows = {}
            start = time.time()
            for phase, ds_opt in sorted(opt["datasets"].items()):
                if mode == "sigma-known":
                    scale_csc_lambda(model.net_g, calibrated_multiplier(results, ds_opt["sigma"]))
                dataset = build_dataset(ds_opt, phase)
                loader = build_dataloader(dataset, ds_opt, phase)
                r = model.validation(loader, dataset.name, opt["val"]["metrics"], None, False)
                rows[dataset.name] = r["mean"]
                print(f"{key} {dataset.name}: PSNR {r['mean']['psnr']:.2f} SSIM {r['mean']['ssim']:.4f}", flush=True)
            results["test"][key] = {"datasets": rows, "seconds": time.time() - start}


def stage_residuals(results, data_root):
    """The first CSC layer's residual and noise estimate per Set12 image at several noise levels:
    what the two auto rules see."""
    opt = parse_options(test_opt(MODELS["CSC"][1]), is_train=False, data_root=data_root)
    net = build_model(opt).net_g.eval()
    images = [to_float32(imread(p)) for p in list_images(os.path.join(opt["data_root"], "Set12"))]
    for feature, key in (("residual", "residuals_set12"), ("noise_sigma", "noise_estimates_set12")):
        rows = {}
        with torch.no_grad():
            for sigma in (0, 15, 25, 50):
                rows[str(sigma)] = [float(first_layer_measure(net, img2tensor(lq).unsqueeze(0), feature))
                                    for lq in noisy_versions(images, sigma, 0)]
        results[key] = rows


def cpu_ms(module, x) -> float:
    """Fastest of 7 eval forwards, in ms (the minimum is the least disturbed by other jobs)."""
    return latency_ms(module, x.shape, runs=7, reduce=min)


def stage_cost(results):
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: steadier timings on a machine shared with other jobs
    cost = {"layers": {}, "nets": {}, "threads": 1}
    for in_ch in (1, 32):
        x = torch.rand(1, in_ch, 256, 256)
        plain = torch.nn.Conv2d(in_ch, 32, 3, padding=1).eval()
        row = {"plain": {"params": count_macs(plain, x.shape)["params"], "macs": count_macs(plain, x.shape)["macs"],
                         "cpu_ms": cpu_ms(plain, x)}}
        for n_iter in (1, 3, 5):
            layer = CSCConv2d(in_ch, 32, 3, n_iter=n_iter).eval()
            m = count_macs(layer, x.shape)
            row[f"csc n_iter={n_iter}"] = {"params": m["params"], "macs": m["macs"], "cpu_ms": cpu_ms(layer, x)}
        cost["layers"][f"{in_ch}->32 3x3 on 256x256"] = row
    base = {"type": "DnCNN", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 32, "num_layer": 8, "use_bn": False}
    nets = {"plain": None, "bias-free": {"type": "plain_nobias"},
            "CSC first, n_iter 3": {"type": "csc", "where": "first", "n_iter": 3},
            "CSC first, n_iter 5": {"type": "csc", "where": "first", "n_iter": 5},
            "CSC all, n_iter 3": {"type": "csc", "where": "all", "n_iter": 3}}
    x = torch.rand(1, 1, 256, 256)
    for label, conv in nets.items():
        net = build_network({**base, "conv": conv}).eval()
        m = count_macs(net, x.shape)
        cost["nets"][label] = {"params": m["params"], "macs": m["macs"], "cpu_ms": cpu_ms(net, x)}
    torch.set_num_threads(threads)
    results["cost"] = cost


def test_keys() -> list[str]:
    """The test rows in the order of MODELS, whatever order the stages were (re)run in."""
    return [label if mode is None else f"{label} ({mode} lambda)"
            for label, (_, _, modes) in MODELS.items() for mode in modes]


def sections(results) -> dict[str, list[str]]:
    """One Markdown table per stage (with its notes), keyed by the results file it goes to: the docs
    quote each file on its own."""
    out = {}
    if "train" in results:
        lines = ["## Training (restore-train, CPU)", "", "| model | option file | iterations | minutes | "
                 "loss first 20 | loss last 20 |", "|---|---|---:|---:|---:|---:|"]
        for label, t in results["train"].items():
            lines.append(f"| {label} | {t['option_file']} | {t['iterations']} | {t['seconds'] / 60:.1f} | "
                         f"{t['loss_first_20']:.2e} | {t['loss_last_20']:.2e} |")
        total = sum(t["seconds"] for t in results["train"].values()) / 60
        out["training"] = lines + ["", f"Total training wall-clock: {total:.1f} min."]
    if "calibration" in results:
        fit = results["calibration"]["fit"]
        lines = ["## Lambda calibration (Kodak24 gray, 8 centre crops 160x160)", "",
                 "| sigma | noise estimate (0-255) | residual at trained lambda | best multiplier | PSNR x1 | best PSNR |",
                 "|---:|---:|---:|---:|---:|---:|"]
        for p in fit["points"]:
            estimate = f"{255 * p['noise_sigma']:.2f}" if "noise_sigma" in p else "-"
            lines.append(f"| {p['sigma']:g} | {estimate} | {p['residual']:.3e} | {p['best_multiplier']:.3f} | "
                         f"{p['psnr_at_1']:.2f} | {p['best_psnr']:.2f} |")
        lines.append("")
        for key in ("calibration", "calibration_residual"):
            if key in results:
                fit = results[key]["fit"]
                feature = {"noise_sigma": "sigma_hat", "sqrt_residual": "sqrt(r)", "residual": "r"}[fit["feature"]]
                lines.append(f"Fit on {fit['feature']}: m = {fit['slope']:.4g} {feature} + {fit['intercept']:.4g}, "
                             f"clipped to [{fit['m_min']:g}, {fit['m_max']:g}] (R^2 {fit['info']['r2']:.3f}).  ")
        out["calibration"] = lines
    if "test" in results:
        names = list(next(iter(results["test"].values()))["datasets"])
        lines = ["## PSNR (dB) / SSIM, trained at sigma 25", "",
                 "| model | " + " | ".join(n.replace("_s", " s=") for n in names) + " |",
                 "|---|" + "---:|" * len(names)]
        for key in [k for k in test_keys() if k in results["test"]]:
            r = results["test"][key]
            cells = [f"{r['datasets'][n]['psnr']:.2f} / {r['datasets'][n]['ssim']:.4f}" for n in names]
            lines.append(f"| {key} | " + " | ".join(cells) + " |")
        out["denoising"] = lines
    if "residuals_set12" in results and "noise_estimates_set12" in results:
        res, est = results["residuals_set12"], results["noise_estimates_set12"]
        lines = ["## What auto lambda sees: the first CSC layer's residual and noise estimate (0-255) "
                 "per Set12 image", "",
                 "| sigma | residual min | residual max | mean increase over sigma 0 | noise estimate min | max |",
                 "|---:|---:|---:|---:|---:|---:|"]
        for sigma, values in res.items():
            rise = sum(v - v0 for v, v0 in zip(values, res["0"])) / len(values)
            lines.append(f"| {sigma} | {min(values):.4f} | {max(values):.4f} | {rise:.4f} | "
                         f"{255 * min(est[sigma]):.2f} | {255 * max(est[sigma]):.2f} |")
        out["residuals"] = lines
    if "cost" in results:
        lines = ["## Cost (1 image 256x256, eval, CPU, 1 thread; fastest of 7 runs)", "",
                 "| what | params | MACs (M) | CPU ms |", "|---|---:|---:|---:|"]
        for group in ("layers", "nets"):
            for name, rows in results["cost"][group].items():
                if group == "layers":
                    for variant, c in rows.items():
                        lines.append(f"| {name}: {variant} | {c['params']} | {c['macs'] / 1e6:.1f} | {c['cpu_ms']:.1f} |")
                else:
                    lines.append(f"| DnCNN-8-32 {name} | {rows['params']} | {rows['macs'] / 1e6:.1f} | "
                                 f"{rows['cpu_ms']:.1f} |")
        out["cost"] = lines
    return out


def write_sections(results, folder: str, header: str) -> str:
    """results/csc/<stage>.md for every stage in `results`, each headed by the command and machine;
    returns them all, for the terminal."""
    text = []
    for name, lines in sections(results).items():
        body = "\n".join([header, ""] + lines) + "\n"
        atomic_write_bytes(os.path.join(folder, f"{name}.md"), body.encode())
        text.append(body)
    return "\n".join(text)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stages", nargs="+", default=["train", "calibrate", "test", "residuals", "cost"],
                   choices=["train", "calibrate", "test", "residuals", "cost"])
    p.add_argument("--data-root", help="folder holding the datasets")
    p.add_argument("--out", default=os.path.join(ROOT, "results", "csc"),
                   help="folder of results.json and one <stage>.md per stage (the files docs/csc.md quotes)")
    p.add_argument("--only", nargs="+", metavar="KEY",
                   help="test stage: only these rows, e.g. 'CSC (auto lambda)'")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "results.json")
    results = {}
    if os.path.isfile(path):
        with open(path) as f:
            results = json.load(f)
    results["torch_threads"] = torch.get_num_threads()
    stages = {"train": lambda: stage_train(results, args.data_root),
              "calibrate": lambda: stage_calibrate(results, args.data_root),
              "test": lambda: stage_test(results, args.data_root, args.only),
              "residuals": lambda: stage_residuals(results, args.data_root),
              "cost": lambda: stage_cost(results)}
    header = made_by("python", "scripts/exp_csc_denoise.py", *sys.argv[1:])
    for stage in args.stages:
        stages[stage]()
        atomic_write_bytes(path, json.dumps(results, indent=1).encode())  # later runs read it back
        text = write_sections(results, args.out, header)
    print(text)


if __name__ == "__main__":
    main()
