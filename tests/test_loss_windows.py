"""Loss blocks limited to iterations by start_iter / end_iter (e.g. L1, then an MSE fine-tune)."""
import math
import os

import pytest
import torch

from restore.archs import build_network
from restore.train import train
from restore.utils.checkpoint import load_safely
from restore.utils.options import parse_options
from tests.test_options import error_of
from tests.test_train_step_speed import tiny_model
from tests.tiny import train_options, write_options

L1_THEN_MSE = {"train__pixel_opt": {"type": "L1Loss", "end_iter": 4},
               "train__pixel_l2_opt": {"type": "MSELoss", "start_iter": 4}}


def _loss_by_hand(model, batch, fn):
    net = build_network({"type": "TinyTestSR", "num_feat": 8, "upscale": 2})
    net.load_state_dict(model.net_g.state_dict())
    with torch.no_grad():
        return fn(net(batch["lq"]), batch["gt"]).item()


def test_each_iteration_counts_the_losses_whose_window_holds_it(tmp_path):
    torch.manual_seed(0)
    model = tiny_model(tmp_path, train__ema_decay=0, **L1_THEN_MSE)
    batch = {"lq": torch.rand(2, 3, 8, 8), "gt": torch.rand(2, 3, 16, 16)}
    l1, mse = torch.nn.functional.l1_loss, torch.nn.functional.mse_loss
    for it, names, fn in ((1, {"l_pixel"}, l1), (4, {"l_pixel"}, l1), (5, {"l_pixel_l2"}, mse),
                          (8, {"l_pixel_l2"}, mse), (None, {"l_pixel", "l_pixel_l2"}, lambda a, b: l1(a, b) + mse(a, b))):
        expected = _loss_by_hand(model, batch, fn)
        logs = model.optimize_parameters(batch, it)
        assert set(logs) - {"loss"} == names, it
        assert math.isclose(logs["loss"], expected, rel_tol=1e-5), (it, logs, expected)


def _final_params(tmp_path, opt, auto_resume=False, overrides=()):
    path = write_options(os.path.join(tmp_path, f"{opt['name']}.yml"), opt)
    result = train(parse_options(path, is_train=True, overrides=list(overrides)), auto_resume=auto_resume)
    exp = os.path.join(opt["path"]["experiments_root"], opt["name"])
    return result, load_safely(os.path.join(exp, "models", f"net_g_{result['iter']}.pth"))["params"]


def test_a_run_resumed_across_the_switch_equals_the_uninterrupted_one(tmp_path):
    _, straight = _final_params(tmp_path, train_options(tmp_path / "a", name="straight", **L1_THEN_MSE))
    halves = train_options(tmp_path / "b", name="halves", **L1_THEN_MSE)
    _final_params(tmp_path, halves, overrides=["train.total_iter=3"])
    result, resumed = _final_params(tmp_path, halves, auto_resume=True)
    assert result["iter"] == 8 and len(result["history"]) == 5
    # MSE of errors below 1 is far smaller than their L1: the switch shows in the logged loss
    assert max(result["history"][-4:]) < 0.5 * result["history"][0], result["history"]
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name
    _, only_l1 = _final_params(tmp_path, train_options(tmp_path / "c", name="only_l1"))
    assert any(not torch.equal(straight[n], only_l1[n]) for n in straight)


@pytest.mark.parametrize("blocks, message", [
    ({"pixel_opt": {"type": "L1Loss", "start_iter": 4, "end_iter": 4}},
     "train.pixel_opt: start_iter (4) must be below end_iter (4)"),
    ({"pixel_opt": {"type": "L1Loss", "start_iter": -1}},
     "train.pixel_opt.start_iter: expected an iteration count >= 0, got -1"),
    ({"pixel_opt": {"type": "L1Loss", "end_iter": "5"}},
     "train.pixel_opt.end_iter: expected an iteration count >= 0, got '5'"),
    ({"pixel_opt": {"type": "L1Loss", "end_iter": 3}, "l2_opt": {"type": "MSELoss", "start_iter": 5}},
     "train: no loss is active at iteration 4 of 8"),
    ({"pixel_opt": {"type": "L1Loss", "start_iter": 2}}, "train: no loss is active at iteration 1 of 8"),
    ({"pixel_opt": {"type": "L1Loss", "end_iter": 6}}, "train: no loss is active at iteration 7 of 8"),
    ({"pixel_opt": {"type": "L1Loss", "end_iter": 6, "strat_iter": 2}}, "train.pixel_opt: unknown key 'strat_iter'"),
])
def test_a_bad_window_is_one_line_naming_the_block(capsys, tmp_path, blocks, message):
    opt = train_options(tmp_path)
    opt["train"].pop("pixel_opt")
    opt["train"].update(blocks)
    err = error_of(capsys, tmp_path, opt)
    assert message in err, err
    assert not os.path.exists(tmp_path / "experiments" / "tiny"), "nothing is left behind"
