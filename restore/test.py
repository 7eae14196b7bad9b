"""restore-test: run a trained model over test sets and write a PSNR/SSIM table.

    restore-test -opt options/test/test_bicubic_SR.yml
Writes results/<name>/results.md and results.json (per image and mean per dataset), and the output
images under results/<name>/visualization/<dataset>/ when `val.save_img` is true. An image that
cannot be read is skipped and listed (in the table's file and at the end), the rest of the set is
scored, and the exit status is then 1, as restore-infer does.
"""
import argparse
import json
import os
import sys

import torch.utils.data

from restore.cli.common import run_cli
from restore.data import build_dataloader, build_dataset
from restore.evaluation.equivariance import evaluate_equivariance, merge_results, parse_equivariance_options
from restore.inference.setup import prepare_process
from restore.models import build_model
from restore.models.base_model import runs_on_cuda
from restore.models.sr_model import visualization_path
from restore.utils.dist import close_dist, init_dist, is_main_process
from restore.utils.experiment import archive_existing, get_logger, timestamp
from restore.utils.errors import RestoreError
from restore.utils.img_io import atomic_write_bytes
from restore.utils.options import ignored_option_notes, parse_options


def build_parser():
    p = argparse.ArgumentParser(prog="restore-test", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-opt", "--opt", required=True, help="the option YAML file (datasets.test_*)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override an option, e.g. --set path.pretrain_network_g=net.pth")
    p.add_argument("--force_yml", nargs="+", default=[], metavar="KEY=VALUE", help=argparse.SUPPRESS)
    p.add_argument("--data-root", help="folder holding the datasets")
    p.add_argument("--csc-lambda", metavar="auto | VALUE",
                   help="nets with CSC layers: test-time lambda; auto = per image, from the fit "
                        "restore-csc-calibrate saved beside the checkpoint (auto:FIT.json for another), "
                        "VALUE = that lambda on every CSC layer, trained = as trained")
    p.add_argument("--protocol", choices=["basicsr", "literature"],
                   help="scoring protocol of every PSNR/SSIM block (docs/protocol.md; default: as the option "
                        "file says, else basicsr)")
    p.add_argument("--debug", action="store_true", help="tracebacks instead of one-line errors")
    p.add_argument("--launcher", choices=["none", "pytorch"], default="none", help=argparse.SUPPRESS)
    return p


EXIT_SKIPPED = 1


class SkipUnreadable(torch.utils.data.Dataset):
    """`dataset` whose items that cannot be loaded (unreadable file, GT/LQ mismatch: a RestoreError)
    come back as {'unreadable': message}, so one bad file does not end the set (also in workers)."""

    def __init__(self, dataset):
        self.dataset, self.name = dataset, dataset.name

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, item):
        try:
            return self.dataset[item]
        except RestoreError as e:
            return {"unreadable": str(e)}


class ReadableBatches:
    """The batches of a test loader over a SkipUnreadable dataset, without the unreadable items,
    which are collected in `skipped`."""

    def __init__(self, loader):
        self.loader, self.skipped = loader, []

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            if "unreadable" in batch:  # listed once, however often the set is iterated
                self.skipped.extend(r for r in batch["unreadable"] if r not in self.skipped)
            else:
                yield batch


def markdown_tables(name: str, results: dict, protocol_note: str | None = None) -> str:
    lines = [f"# {name}", ""] + ([protocol_note, ""] if protocol_note else [])
    metrics = sorted({m for r in results.values() for m in r["mean"]})
    lines += ["| dataset | images | " + " | ".join(metrics) + " |", "|---|---:|" + "---:|" * len(metrics)]
    for ds, r in results.items():
        lines.append(f"| {ds} | {len(r['images'])} | " + " | ".join(
            f"{r['mean'][m]:.4f}" if m in r["mean"] else "" for m in metrics) + " |")
    for ds, r in results.items():
        lines += ["", f"## {ds}", "", "| image | " + " | ".join(metrics) + " |",
                  "|---|" + "---:|" * len(metrics)]
        for row in r["images"]:
            lines.append(f"| {row['name']} | " + " | ".join(
                f"{row[m]:.4f}" if m in row else "" for m in metrics) + " |")
        if r.get("skipped"):
            lines += ["", f"Skipped ({len(r['skipped'])}, not in the mean):", ""]
            lines += [f"- {reason}" for reason in r["skipped"]]
    return "\n".join(lines) + "\n"


def test(opt: dict, csc_lambda: str | None = None) -> dict:
    init_dist(opt["dist_params"]["backend"], runs_on_cuda(opt))
    # Build everything that can fail on bad input before creating the results folder.
    model = build_model(opt)
    csc_note = None
    if csc_lambda is not None:
        from restore.csc import apply_csc_lambda_option
        csc_note = apply_csc_lambda_option(model.net_g, csc_lambda, opt["path"].get("pretrain_network_g"))
    datasets = {phase: build_dataset(ds_opt, phase) for phase, ds_opt in sorted(opt["datasets"].items())}
    eq_opts = parse_equivariance_options(opt["val"].get("equivariance"))
    out_dir = os.path.join(opt["path"]["results_root"], opt["name"])
    if is_main_process():
        archive_existing(out_dir)
        os.makedirs(out_dir, exist_ok=True)
    logger = get_logger(os.path.join(out_dir, f"test_{opt['name']}_{timestamp()}.log"))
    for note in ([csc_note] if csc_note else []) + ignored_option_notes(opt):
        logger.info(note)
    results = {}
    for phase, dataset in datasets.items():
        loader = ReadableBatches(build_dataloader(SkipUnreadable(dataset), opt["datasets"][phase], phase))
        save = None
        if opt["val"]["save_img"]:
            save = visualization_path(os.path.join(out_dir, "visualization", dataset.name),
                                      opt["val"]["suffix"] or opt["name"])
        r = model.validation(loader, dataset.name, opt["val"]["metrics"], save, opt["val"]["pbar"])
        if eq_opts is not None:
            merge_results(r, evaluate_equivariance(model.test, loader, eq_opts, scale=opt["scale"],
                                                   net=model.eval_net(), dataset_name=dataset.name))
        if loader.skipped:
            r["skipped"] = loader.skipped
            for reason in loader.skipped:
                logger.warning(f"skipped {reason}")
        results[dataset.name] = r
        logger.info(f"{dataset.name}: " + ", ".join(f"{m} {v:.4f}" for m, v in r["mean"].items()))
    if is_main_process():
        from restore.metrics.protocol import metric_protocol_note
        md = markdown_tables(opt["name"], results, metric_protocol_note(opt["val"]["metrics"]))
        atomic_write_bytes(os.path.join(out_dir, "results.md"), md.encode())
        atomic_write_bytes(os.path.join(out_dir, "results.json"), json.dumps(results, indent=1).encode())
        print(md.split("\n## ")[0])
        logger.info(f"results written to {out_dir}")
    return results


def main(argv) -> int:
    args = build_parser().parse_args(argv)
    prepare_process()  # the nets themselves are formatted by SRModel (channels_last on the CPU)
    opt = parse_options(args.opt, is_train=False, overrides=args.set + args.force_yml,
                        data_root=args.data_root, debug=args.debug)
    if args.protocol:
        from restore.metrics.protocol import set_metric_protocol
        set_metric_protocol(opt["val"]["metrics"], args.protocol)
    ok = False
    try:
        results = test(opt, args.csc_lambda)
        ok = True
    finally:
        close_dist(ok)
    skipped = [reason for r in results.values() for reason in r.get("skipped", [])]
    if skipped:
        print(f"skipped {len(skipped)} file(s):", file=sys.stderr)
        for reason in skipped:
            print(f"  {reason}", file=sys.stderr)
        return EXIT_SKIPPED
    return 0


def cli():
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
