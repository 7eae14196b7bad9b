"""What the fp32 training step was made faster with computes what it computed before: fused Adam
on the CPU, EDSR's residual without a multiply by 1, and a gradient norm without clipping at inf."""
import math

import pytest
import torch

from restore.archs import build_network
from restore.models import build_model
from restore.models.base_model import build_optimizer
from restore.utils.errors import OptionError
from restore.utils.options import parse_options
from tests.tiny import train_options, write_options


def params(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=g)) for shape in ((5, 3), (7,), (2, 3, 3, 3))]


@pytest.mark.parametrize("kind", ["Adam", "AdamW"])
def test_adam_is_fused_on_the_cpu_unless_switched_off(kind):
    assert build_optimizer({"type": kind, "lr": 1e-3}, params()).defaults["fused"] is True
    assert build_optimizer({"type": kind, "lr": 1e-3, "fused": False}, params()).defaults["fused"] is False
    assert not build_optimizer({"type": "SGD", "lr": 1e-3}, params()).defaults.get("fused")
    with pytest.raises(OptionError, match="train.optim_g.fused"):
        build_optimizer({"type": kind, "lr": 1e-3, "fused": "yes"}, params())


@pytest.mark.parametrize("amsgrad", [False, True])
def test_fused_adam_takes_the_for_loop_adam_steps(amsgrad):
    fused, plain = params(), params()
    a = build_optimizer({"type": "Adam", "lr": 1e-2, "betas": [0.9, 0.99], "weight_decay": 1e-3,
                         "amsgrad": amsgrad}, fused)
    b = torch.optim.Adam(plain, lr=1e-2, betas=(0.9, 0.99), weight_decay=1e-3, amsgrad=amsgrad, foreach=False)
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        for p, q in zip(fused, plain):
            p.grad = torch.randn(p.shape, generator=g)
            q.grad = p.grad.clone()
        a.step()
        b.step()
    moved = max((p - q).abs().max().item() for p, q in zip(params(), plain))
    assert moved > 0.04  # five steps of lr 1e-2
    for p, q in zip(fused, plain):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-6)


def test_edsr_residual_scale_one_adds_the_conv_output_exactly():
    torch.manual_seed(2)
    net = build_network({"type": "EDSR", "num_feat": 8, "num_block": 1, "upscale": 2})
    block = net.body[0]
    x = torch.randn(2, 8, 5, 6)
    res = block.conv2(block.relu(block.conv1(x)))
    assert torch.equal(block(x), x + res)
    block.res_scale = 0.1
    assert torch.equal(block(x), x + res * 0.1)


def tiny_model(tmp_path, **over):
    return build_model(parse_options(write_options(tmp_path / "o.yml", train_options(tmp_path, **over)),
                                     is_train=True))


def test_step_without_grad_clip_leaves_the_gradients_unscaled(tmp_path):
    torch.manual_seed(3)
    model = tiny_model(tmp_path, train__ema_decay=0)
    batch = {"lq": torch.rand(2, 3, 8, 8), "gt": torch.rand(2, 3, 16, 16)}
    before = [p.detach().clone() for p in model.net_g.parameters()]
    seen = {}

    def spy(opt_step):
        def step(*args, **kwargs):
            seen["grads"] = [p.grad.clone() for p in model.net_g.parameters()]
            return opt_step(*args, **kwargs)
        return step

    model.optimizer.step = spy(model.optimizer.step)
    logs = model.optimize_parameters(batch)
    # the gradients the optimizer saw are those of the loss, as autograd gives them
    net = build_network({"type": "TinyTestSR", "num_feat": 8, "upscale": 2})
    with torch.no_grad():
        for p, q in zip(net.parameters(), before):
            p.copy_(q)
    loss = torch.nn.functional.l1_loss(net(batch["lq"]), batch["gt"])
    loss.backward()
    assert math.isclose(logs["loss"], loss.item(), rel_tol=1e-6)
    for found, expected in zip(seen["grads"], (p.grad for p in net.parameters())):
        torch.testing.assert_close(found, expected, rtol=1e-6, atol=1e-7)


def test_a_non_finite_gradient_still_skips_the_step_without_grad_clip(tmp_path):
    model = tiny_model(tmp_path, train__ema_decay=0)
    before = [p.detach().clone() for p in model.net_g.parameters()]
    lq = torch.rand(2, 3, 8, 8)
    lq[0, 0, 0, 0] = float("inf")
    logs = model.optimize_parameters({"lq": lq, "gt": torch.rand(2, 3, 16, 16)})
    assert logs["skipped"] == 1
    for p, q in zip(model.net_g.parameters(), before):
        assert torch.equal(p.detach(), q)
