"""restore-convert: a checkpoint of a seed's reference code as a restore checkpoint.

    restore-convert --from pt_ir epoch_30.pth nsr_x2.pth          # NSR / WDSR (ychfan/pt_ir, ychfan/wdsr)
    restore-convert --from pt_ir epoch_30.pth nsr_x2.safetensors

Writes `params` (.pth or .safetensors, from the extension) and prints the `network_g` block that
builds the network, e.g. for `restore-infer --ckpt nsr_x2.pth --arch NSR --arch-opt upscale=2 ...`
or an option file. restore-infer / restore-bench also read a pt_ir file directly (`--ckpt FILE`
without `--arch`). Checkpoints of other published models load through spandrel
(docs/published-models.md).
"""
import argparse
import json
import sys

from restore.cli.common import entry
from restore.export.pt_ir import FORMAT as PT_IR, convert_pt_ir, pt_ir_state_dict
from restore.utils.checkpoint import load_safely, save_network_file
from restore.utils.errors import RestoreError

SOURCES = (PT_IR,)


def build_parser():
    p = argparse.ArgumentParser(prog="restore-convert", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from", dest="source", required=True, choices=SOURCES, help="the checkpoint's layout")
    p.add_argument("input", help="the reference checkpoint")
    p.add_argument("output", help="the restore checkpoint to write (.pth or .safetensors)")
    p.add_argument("--debug", action="store_true", help="tracebacks instead of one-line errors")
    return p


def convert_file(source: str, src: str, dst: str) -> dict:
    """Convert `src` (layout `source`) to `dst`; returns the network_g block."""
    if not dst.endswith((".pth", ".safetensors")):
        raise RestoreError(f"{dst}: the output must end in .pth or .safetensors")
    sd = pt_ir_state_dict(load_safely(src))
    if sd is None:
        raise RestoreError(f"{src}: not a pt_ir checkpoint (no model_state_dict with body.0 = head and "
                           f"body.<i>.body.<0|2> block convs)")
    params, network_g = convert_pt_ir(sd, src)
    save_network_file(dst, {k: v.detach().cpu().contiguous() for k, v in params.items()})
    return network_g


def main(argv) -> int:
    args = build_parser().parse_args(argv)
    network_g = convert_file(args.source, args.input, args.output)
    print(f"network_g: {json.dumps(network_g)}")
    print(f"{args.output}: {args.source} checkpoint converted ({network_g['type']})", file=sys.stderr)
    return 0


cli = entry(main)

if __name__ == "__main__":
    cli()
