"""restore-flops: parameters and multiply-accumulates (MACs) of a network.

    restore-flops --arch NSR --set upscale=2
    restore-flops --arch EDSR --set upscale=4 --set conv.type=sparse_group
    restore-flops -opt options/train/<file>.yml                 # reads its network_g
    restore-flops --all                                         # every registered arch, x2 where it applies
    restore-flops --all --out results/nsr/flops.md              # the same table as a results file

MACs = FLOPs / 2 (the unit SR papers call "FLOPs"), counted by PyTorch's FlopCounterMode on one
eval-mode forward: convolutions (per-sample dynamic ones included), matrix products (gate MLPs,
kernel mixing) and global average pooling; biases, activations and additions are not counted.
By default the input is the low-resolution image of a 1280x720 output, so per-image overheads
(gating) are amortised as in real use.
"""
import argparse
import inspect
import os

from restore.archs import ARCH_REGISTRY
from restore.cli.common import entry
from restore.utils.errors import OptionError
from restore.utils.flops import OUTPUT_720P, count_macs, input_shape_for_output
from restore.utils.img_io import atomic_write_bytes
from restore.utils.machine import made_by
from restore.utils.options import load_options, merge, network_overrides

ALL_SCALE = 2


def build_parser():
    p = argparse.ArgumentParser(prog="restore-flops", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", help="a registered arch name (see --all for the list)")
    p.add_argument("-opt", "--opt", action="append", default=[], metavar="FILE | KEY=VALUE",
                   help="an option YAML file whose network_g is counted; a KEY=VALUE here is "
                        "taken as --set KEY=VALUE")
    p.add_argument("--all", action="store_true",
                      help="a markdown table of every registered arch at its defaults "
                           f"(upscale {ALL_SCALE} where the arch has one)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a network_g key, e.g. --set upscale=2 or --set conv.type=sparse_group "
                        "(value read as YAML; repeatable)")
    p.add_argument("--out", metavar="FILE",
                   help="with --all: also write the table to FILE, headed by the command and the machine "
                        "(the results file docs/nsr.md quotes)")
    p.add_argument("--size", nargs=2, type=int, metavar=("H", "W"),
                   help="input (low-resolution) height and width; default: the input of a 1280x720 output")
    return p


def network_from_file(path: str) -> dict:
    """The network_g of an option file, read as every command reads it (upscale from `scale`)."""
    net = load_options(path, "network")["network_g"]
    if "type" not in net:
        raise OptionError(f"{path}: network_g has no type")
    return dict(net)


def input_channels(net_opt: dict) -> int:
    if "num_in_ch" in net_opt:
        return int(net_opt["num_in_ch"])
    cls = ARCH_REGISTRY.get(net_opt["type"], "network_g.type")
    param = inspect.signature(cls).parameters.get("num_in_ch")
    return 3 if param is None or param.default is inspect.Parameter.empty else int(param.default)


def measure(net_opt: dict, size=None) -> dict:
    """count_macs of the network described by `net_opt`, at `size` or at the 720p-output input."""
    model = ARCH_REGISTRY.build(net_opt, "network_g")
    channels = input_channels(net_opt)
    probe = count_macs(model, (1, channels, 32, 32))
    scale = probe["out_shape"][-1] // 32
    shape = (1, channels, *size) if size else input_shape_for_output(OUTPUT_720P, scale, channels)
    result = count_macs(model, shape)
    result.update(scale=scale, input_shape=shape)
    return result


def describe(name: str, r: dict) -> str:
    shape = "x".join(str(s) for s in r["input_shape"])
    return "\n".join([
        f"arch: {name} (x{r['scale']}, input {shape})",
        f"params: {r['params']:,}",
        f"MACs per output pixel: {r['macs_per_out_pixel']:,.0f}",
        f"MACs per input pixel: {r['macs_per_in_pixel']:,.0f}",
        f"GMACs for a 1280x720 output: {r['gmacs_720p']:.2f}",
    ])


def table(size=None) -> str:
    rows = ["| arch | scale | params | MACs / output px | MACs / input px | GMACs (1280x720 output) |",
            "|---|---|---|---|---|---|"]
    for name in ARCH_REGISTRY.keys():
        net_opt = {"type": name}
        if "upscale" in inspect.signature(ARCH_REGISTRY.get(name)).parameters:
            net_opt["upscale"] = ALL_SCALE
        r = measure(net_opt, size)
        rows.append(f"| {name} | x{r['scale']} | {r['params']:,} | {r['macs_per_out_pixel']:,.0f} | "
                    f"{r['macs_per_in_pixel']:,.0f} | {r['gmacs_720p']:.2f} |")
    return "\n".join(rows)


NOTE = ("MACs = FLOPs / 2: convolutions, matrix products and average pooling "
        "(biases, activations and additions not counted).")


def split_opt_args(values):
    """-opt/--opt values: option files, and KEY=VALUE overrides (those with '=' that are no file)."""
    files = [v for v in values if "=" not in v or os.path.isfile(v)]
    overrides = [v for v in values if v not in files]
    return files, overrides


def main(argv) -> int:
    args = build_parser().parse_args(argv)
    files, overrides = split_opt_args(args.opt)
    args.set = overrides + args.set
    chosen = [n for n, given in (("--arch", args.arch), ("-opt FILE", files), ("--all", args.all)) if given]
    if len(chosen) != 1 or len(files) > 1:
        raise OptionError("give exactly one of --arch NAME, -opt FILE or --all")
    args.opt_file = files[0] if files else None
    if args.out and not args.all:
        raise OptionError("--out writes the --all table; give --all")
    if args.all:
        if args.set:
            raise OptionError("--set applies to one network (--arch or -opt), not to --all")
        text = table(args.size)
        print(text)
        if args.out:
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            header = made_by("restore-flops", *argv)
            atomic_write_bytes(args.out, f"{header}\n\n{text}\n\n{NOTE}\n".encode())
    else:
        net_opt = {"type": args.arch} if args.arch else network_from_file(args.opt_file)
        net_opt = merge(net_opt, network_overrides(args.set, "--set"))
        print(describe(net_opt["type"], measure(net_opt, args.size)))
    print(NOTE)
    return 0


cli = entry(main)

if __name__ == "__main__":
    cli()
