"""restore-csc-calibrate: fit the test-time lambda rule of a CSC denoiser on a validation set.

    restore-csc-calibrate -opt options/test/CSC/test_DnCNN_CSC_gray.yml --val-dir Kodak24 --crop 160

Reads network_g and path.pretrain_network_g from the option file (a test or train file). For each
noise level it adds seeded Gaussian noise to the validation images, measures at the first CSC layer's
input a wavelet estimate of the noise level (--feature noise_sigma, default; or the layer's residual
at the trained lambda) and sweeps lambda = m x trained over a grid of multipliers m; the best m per
level against the measurement gives a straight line m(feature), saved with the checkpoint as
<checkpoint>.csc_lambda.json (or --out). `restore-test --csc-lambda auto` then sets lambda per image
from its own measurement. Use a validation set that is neither a training
nor a test set (e.g. Kodak24 for nets tested on Set12/BSD68).
"""
import argparse

from restore.cli.common import entry
from restore.csc.calibrate import DEFAULT_MULTIPLIERS, fit_rows, load_validation_images, resolve_val_dir, sweep
from restore.csc.lambda_fit import FEATURES, fit_path_for
from restore.models import build_model
from restore.utils.errors import RestoreError
from restore.utils.options import parse_options


def build_parser():
    p = argparse.ArgumentParser(prog="restore-csc-calibrate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-opt", "--opt", required=True,
                   help="option file with network_g and path.pretrain_network_g (the CSC net)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override an option, e.g. --set path.pretrain_network_g=net.pth")
    p.add_argument("--val-dir", required=True,
                   help="folder of clean validation images, or a dataset name under the data root")
    p.add_argument("--data-root", help="folder holding the datasets")
    p.add_argument("--color", choices=["gray", "rgb"], default="gray", help="colour mode the net takes")
    p.add_argument("--max-images", type=int, default=8, help="use the first N images (default 8)")
    p.add_argument("--crop", type=int, default=0, help="centre crop of this side (0: whole images)")
    p.add_argument("--sigmas", type=float, nargs="+", default=[10, 15, 25, 35, 50, 60],
                   help="noise levels, 0-255 units (default 10 15 25 35 50 60)")
    p.add_argument("--multipliers", type=float, nargs="+", default=list(DEFAULT_MULTIPLIERS),
                   help="lambda multipliers swept (default 2^(k/4), k = -8..8: 0.25 ... 4)")
    p.add_argument("--apply-to", choices=["all", "first"], default="all",
                   help="which CSC layers the multiplier scales (default all)")
    p.add_argument("--feature", choices=list(FEATURES), default="noise_sigma",
                   help="regress the multiplier on the wavelet noise estimate of the first CSC layer's "
                        "input (noise_sigma, default), or on its residual at the trained lambda "
                        "(sqrt_residual, residual: dominated by image content on natural images)")
    p.add_argument("--seed", type=int, default=0, help="seed of the validation noise")
    p.add_argument("--out", help="fit file (default: beside the checkpoint, <name>.csc_lambda.json)")
    p.add_argument("--debug", action="store_true", help="tracebacks instead of one-line errors")
    return p


def main(argv) -> int:
    args = build_parser().parse_args(argv)
    if args.max_images < 1 or args.crop < 0 or any(m <= 0 for m in args.multipliers) or \
            any(s < 0 for s in args.sigmas):
        raise RestoreError("--max-images must be >= 1, --crop >= 0, multipliers > 0 and sigmas >= 0")
    opt = parse_options(args.opt, is_train=False, overrides=args.set, data_root=args.data_root,
                        debug=args.debug)
    checkpoint = opt["path"].get("pretrain_network_g")
    if not checkpoint and not args.out:
        raise RestoreError(f"{args.opt}: path.pretrain_network_g is empty: nothing to calibrate "
                           f"(or give --out to calibrate an untrained net)")
    model = build_model(opt)
    images = load_validation_images(resolve_val_dir(args.val_dir, opt["data_root"]), args.color,
                                    args.max_images, args.crop)
    multipliers = sorted(set(args.multipliers) | {1.0})
    rows = sweep(model.net_g, images, args.sigmas, multipliers, args.apply_to, args.seed, model.device)
    info = {"checkpoint": checkpoint, "val_dir": args.val_dir, "images": len(images), "crop": args.crop,
            "color": args.color, "seed": args.seed, "sigmas": args.sigmas}
    fit = fit_rows(rows, args.feature, args.apply_to, info)
    out = args.out or fit_path_for(checkpoint)
    fit.save(out)
    print("| sigma | noise estimate (0-255) | residual | best m | PSNR m=1 | best PSNR |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['sigma']:g} | {255 * r['noise_sigma']:.2f} | {r['residual']:.3e} | {r['best_multiplier']:.3f} | "
              f"{r['psnr_at_1']:.2f} | {r['best_psnr']:.2f} |")
    feature = {"sqrt_residual": "sqrt(r)", "residual": "r", "noise_sigma": "sigma_hat"}[args.feature]
    print(f"m = {fit.slope:.4g} * {feature} "
          f"+ {fit.intercept:.4g}, clipped to [{fit.m_min:g}, {fit.m_max:g}] (R^2 {fit.info['r2']:.3f})")
    print(f"saved {out}")
    return 0


cli = entry(main)
