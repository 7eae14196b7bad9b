"""Option-file errors: each exits non-zero with one line naming the problem and no traceback."""
import os
import subprocess
import sys

import pytest

import tests.tiny  # noqa: F401
from restore.cli.common import run_cli
from restore.train import main as train_main
from restore.utils.errors import OptionError
from restore.utils.options import parse_options
from restore.utils.yaml_io import load_yaml
from tests.tiny import train_options, write_options

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def error_of(capsys, tmp_path, opt, extra=()):
    path = write_options(tmp_path / "opt.yml", opt)
    code = run_cli(train_main, ["-opt", path, *extra])
    err = capsys.readouterr().err.strip()
    assert code != 0
    lines = [l for l in err.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and err.splitlines()[-1] == lines[0], err
    assert "Traceback" not in err
    return lines[0]


def test_typo_key_with_did_you_mean(capsys, tmp_path):
    opt = train_options(tmp_path)
    opt["train"]["totl_iter"] = opt["train"].pop("total_iter")
    err = error_of(capsys, tmp_path, opt)
    assert "train.totl_iter" in err and "did you mean 'total_iter'" in err


def test_typo_in_network_names_arch_key_and_accepted(capsys, tmp_path):
    opt = train_options(tmp_path)
    opt["network_g"]["num_fet"] = 8
    err = error_of(capsys, tmp_path, opt)
    assert "num_fet" in err and "TinyTestSR" in err and "num_feat" in err and "accepted keys" in err


def test_wrong_type(capsys, tmp_path):
    opt = train_options(tmp_path)
    opt["train"]["total_iter"] = "many"
    err = error_of(capsys, tmp_path, opt)
    assert "train.total_iter" in err and "expected int" in err and "'many'" in err


def test_wrong_type_in_dataset(capsys, tmp_path):
    opt = train_options(tmp_path)
    opt["datasets"]["train"]["gt_size"] = "big"
    err = error_of(capsys, tmp_path, opt)
    assert "datasets.train.gt_size" in err


def test_missing_folder(capsys, tmp_path):
    opt = train_options(tmp_path)
    opt["datasets"]["train"]["dataroot_gt"] = str(tmp_path / "nowhere")
    err = error_of(capsys, tmp_path, opt)
    assert "datasets.train.dataroot_gt" in err and "nowhere" in err and "not found" in err


def test_missing_file(capsys, tmp_path):
    opt = train_options(tmp_path)
    opt["path"]["pretrain_network_g"] = str(tmp_path / "net.pth")
    err = error_of(capsys, tmp_path, opt)
    assert "path.pretrain_network_g" in err and "net.pth" in err


def test_missing_required_key(capsys, tmp_path):
    opt = train_options(tmp_path)
    del opt["train"]["total_iter"]
    assert "missing required key 'train.total_iter'" in error_of(capsys, tmp_path, opt)


def test_unknown_arch_and_metric_and_loss(capsys, tmp_path):
    opt = train_options(tmp_path)
    opt["network_g"]["type"] = "TinyTestSRR"
    assert "did you mean 'TinyTestSR'" in error_of(capsys, tmp_path, opt)
    opt = train_options(tmp_path)
    opt["train"]["pixel_opt"] = {"type": "L2Loss"}
    assert "train.pixel_opt" in error_of(capsys, tmp_path, opt)


def test_missing_option_file(capsys, tmp_path):
    assert run_cli(train_main, ["-opt", str(tmp_path / "none.yml")]) == 2
    assert "none.yml: option file not found" in capsys.readouterr().err


def test_truncated_and_empty_images_are_named(capsys, tmp_path):
    opt = train_options(tmp_path)
    train_dir = opt["datasets"]["train"]["dataroot_gt"]
    data = open(os.path.join(train_dir, "img00.png"), "rb").read()
    with open(os.path.join(train_dir, "img00.png"), "wb") as f:
        f.write(data[: len(data) // 3])
    open(os.path.join(train_dir, "img01.png"), "wb").close()
    opt["datasets"]["train"]["dataset_enlarge_ratio"] = 1
    err = error_of(capsys, tmp_path, opt)
    # every file's header and end are checked before training (files in name order)
    assert "img00.png: truncated PNG file (no IEND chunk at the end)" in err
    assert not (tmp_path / "experiments").exists()


def test_overrides_and_yaml_numbers(tmp_path):
    opt = train_options(tmp_path)
    path = write_options(tmp_path / "o.yml", opt)
    parsed = parse_options(path, True, overrides=["train.optim_g.lr=2e-4", "train:total_iter=5"])
    assert parsed["train"]["optim_g"]["lr"] == 2e-4 and parsed["train"]["total_iter"] == 5
    assert load_yaml("lr: 1e-3", "x")["lr"] == 1e-3


def test_anchor_bomb_and_python_tags_are_refused():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    with pytest.raises(OptionError, match="anchor bomb|aliases"):
        load_yaml(bomb, "bomb.yml")
    with pytest.raises(OptionError, match="bad.yml"):
        load_yaml("x: !!python/object/apply:os.system ['echo hi']", "bad.yml")


def test_relative_paths_resolve_against_root_not_cwd(tmp_path, monkeypatch):
    (tmp_path / "proj" / "options" / "train").mkdir(parents=True)
    tests.tiny.make_images(tmp_path / "proj" / "data" / "tr", n=2)
    opt = train_options(tmp_path)
    opt["datasets"] = {"train": {"type": "SRImageDataset", "dataroot_gt": "data/tr", "gt_size": 16}}
    del opt["path"]["experiments_root"]
    path = write_options(tmp_path / "proj" / "options" / "train" / "x.yml", opt)
    monkeypatch.chdir(tmp_path)
    parsed = parse_options(path, True)
    assert parsed["datasets"]["train"]["dataroot_gt"] == str(tmp_path / "proj" / "data" / "tr")
    assert parsed["path"]["experiments_root"] == str(tmp_path / "proj" / "experiments")


@pytest.mark.slow
def test_real_process_exit_code_and_no_traceback(tmp_path):
    opt = train_options(tmp_path)
    opt["train"]["totl_iter"] = 3
    path = write_options(tmp_path / "opt.yml", opt)
    env = {**os.environ, "PYTHONPATH": ROOT}
    r = subprocess.run([sys.executable, "-m", "restore.train", "-opt", path], capture_output=True,
                       text=True, env=env, cwd=ROOT)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error:") and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# --- one option loader, one override syntax, one rule for scale (issue 17 item 2) -----------------
def test_one_loader_for_every_command(tmp_path):
    from restore.inference.loading import load_model
    from restore.cli.flops import network_from_file
    from restore.utils.options import load_options
    opt = train_options(tmp_path)
    opt["network_g"].pop("upscale")
    opt["scale"] = 3
    opt["datasets"]["val"]["dataroot_gt"] = "${data_root}/NotHere"  # inference never needs the data
    opt["path"]["pretrain_network_g"] = "${root}/net.pth"
    import torch
    from tests.tiny import TinyTestSR
    torch.save({"params": TinyTestSR(upscale=3).state_dict()}, tmp_path / "net.pth")
    path = write_options(tmp_path / "o.yml", opt)
    # the top-level scale reaches an arch that takes `upscale`, in every mode
    assert load_options(path, "network")["network_g"]["upscale"] == 3
    assert network_from_file(path)["upscale"] == 3
    model = load_model(opt=path)
    assert model.net.upscale == 3 and model.weights == str(tmp_path / "net.pth")
    with pytest.raises(OptionError, match="datasets.val.dataroot_gt: folder not found"):
        load_options(path, "test", data_root=str(tmp_path))


def test_one_override_syntax():
    from restore.utils.options import apply_overrides, network_overrides, parse_override
    assert parse_override("train.total_iter=100") == ("train.total_iter", 100)
    assert parse_override("train:ema_decay=0.999") == ("train.ema_decay", 0.999)  # BasicSR's --force_yml
    assert network_overrides(["network_g.upscale=2", "conv.k=4"], "--arch-opt") == {"upscale": 2, "conv": {"k": 4}}
    for bad in ("upscale", "=2", "a..b=1"):
        with pytest.raises(OptionError, match=r"expected KEY=VALUE"):
            parse_override(bad)
    opt = {"train": {"total_iter": 1}}
    apply_overrides(opt, ["train.total_iter=7", "val.val_freq=2"])
    assert opt == {"train": {"total_iter": 7}, "val": {"val_freq": 2}}


def test_optimizers_are_an_ordinary_registry(capsys, tmp_path):
    from restore.utils.registry import OPTIMIZER_REGISTRY
    assert {"Adam", "AdamW", "SGD"} <= set(OPTIMIZER_REGISTRY.keys())
    opt = train_options(tmp_path)
    opt["train"]["optim_g"]["type"] = "Adamm"
    assert "train.optim_g.type: unknown optimizer 'Adamm' (did you mean 'Adam'?)" in error_of(capsys, tmp_path, opt)
