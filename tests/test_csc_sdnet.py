"""CSCConv2d's SDNet modes (`step: sdnet`, `momentum: sdnet`) against a separate, literal
re-implementation of SDNet's DictBlock rule (Delay-Xili/SDNet Lib/models/csc_layer.py, read, not
copied): eta = 0.9 / power-iteration estimate at the current size, and from the third step the
gradient at the current codes added to the extrapolated point."""
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from restore.archs import build_network
from restore.archs.layers.csc_conv import CSCConv2d, csc_layers
from restore.utils.errors import OptionError


def sdnet_power_iteration(weight, code_shape, stride, padding, out_pad):
    v = torch.randn(1, *code_shape, generator=torch.Generator().manual_seed(0))
    error, steps = 1.0e5, 0
    while steps < 50 and error > 1.0e-5:
        image = F.conv_transpose2d(v, weight, stride=stride, padding=padding, output_padding=out_pad)
        new = F.conv2d(image, weight, stride=stride, padding=padding)
        new = F.normalize(new.view(-1), dim=0, p=2).view(v.size())
        error = torch.sum((new - v) ** 2)
        steps += 1
        v = new
    image = F.conv_transpose2d(v, weight, stride=stride, padding=padding, output_padding=out_pad)
    return torch.sum(image ** 2).item()


def sdnet_codes(x, weight, lmbda, n_steps, nonneg=True, stride=1, padding=1):
    """SDNet's fista_forward after update_stepsize(), mu = 0, square noise."""
    out_pad = 0 if stride == 1 else 1
    code_shape = F.conv2d(x[:1], weight, stride=stride, padding=padding).shape[1:]
    step = 0.9 / sdnet_power_iteration(weight, code_shape, stride, padding, out_pad)

    def prox(u):
        u = F.softshrink(u, lmbda * step)
        return F.relu(u) if nonneg else u

    def gradient(c):
        residual = x - F.conv_transpose2d(c, weight, stride=stride, padding=padding, output_padding=out_pad)
        return F.conv2d(residual, weight, stride=stride, padding=padding)

    for i in range(n_steps):
        if i == 0:
            c = prox(step * F.conv2d(x, weight, stride=stride, padding=padding))
        elif i == 1:
            c_pre = c
            c = prox(c + step * gradient(c))
            t = (math.sqrt(5.0) + 1.0) / 2.0
        else:
            t_pre = t
            t = (math.sqrt(1.0 + 4.0 * t_pre * t_pre) + 1) / 2.0
            a = (t_pre + t - 1.0) / t * c + (1.0 - t_pre) / t * c_pre
            c_pre = c
            c = prox(a + step * gradient(c))
    return c, step


@pytest.mark.parametrize("n_steps", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("nonneg", [True, False], ids=["nonneg", "signed"])
def test_sdnet_modes_equal_sdnet_rule(n_steps, nonneg):
    torch.manual_seed(n_steps)
    layer = CSCConv2d(3, 12, 3, n_iter=n_steps, lmbda=0.1, nonneg=nonneg, scale_output=False,
                      step="sdnet", momentum="sdnet").eval()
    x = torch.rand(2, 3, 17, 14)
    with torch.no_grad():
        got = layer(x)
        want, eta = sdnet_codes(x, layer.weight, 0.1, n_steps, nonneg)
    assert got.abs().max() > 1e-3  # not all thresholded away
    assert (got - want).abs().max() < 1e-6
    # scale_output returns the same codes divided by the step size (conv-output units)
    layer.scale_output = True
    with torch.no_grad():
        assert (layer(x) * eta - want).abs().max() < 1e-6


def test_default_modes_differ_from_sdnet_from_the_third_step_on():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 16, 16)
    for n_iter, same in ((2, True), (4, False)):
        a = CSCConv2d(3, 12, n_iter=n_iter, lmbda=0.05, scale_output=False, step="bound").eval()
        b = CSCConv2d(3, 12, n_iter=n_iter, lmbda=0.05, scale_output=False, step="bound", momentum="sdnet").eval()
        b.load_state_dict(a.state_dict())
        with torch.no_grad():
            diff = float((a(x) - b(x)).abs().max())
        assert (diff == 0.0) == same, (n_iter, diff)


@pytest.mark.slow
def test_power_iteration_is_size_dependent_and_below_the_bound():
    torch.manual_seed(3)
    layer = CSCConv2d(2, 6, 3, step="sdnet").double().eval()
    estimates = {}
    for size in ((6, 5), (14, 13)):
        codes_shape = layer.analysis(torch.zeros(1, 2, *size, dtype=torch.float64)).shape
        n = int(np.prod(codes_shape))
        basis = torch.eye(n, dtype=torch.float64).view(n, *codes_shape[1:])
        with torch.no_grad():
            dense = layer.synthesis(basis, size).reshape(n, -1).T.numpy()
        true_norm_sq = np.linalg.eigvalsh(dense.T @ dense)[-1]
        estimates[size] = layer.power_iteration(size)
        assert estimates[size] <= true_norm_sq * (1 + 1e-9)
        assert estimates[size] > 0.95 * true_norm_sq
        assert float(layer.lipschitz) >= true_norm_sq  # the default step's bound holds at every size
    assert estimates[(14, 13)] > estimates[(6, 5)] * 1.01
    assert layer.power_iteration((6, 5)) == estimates[(6, 5)]  # cached for an unchanged weight


def test_sdnet_options_through_the_conv_variant():
    net = build_network({"type": "DnCNN", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 8, "num_layer": 3,
                         "conv": {"type": "csc", "n_iter": 3, "step": "sdnet", "momentum": "sdnet"}})
    layer = csc_layers(net)[0]
    assert (layer.step, layer.momentum) == ("sdnet", "sdnet")
    with torch.no_grad():
        assert net.eval()(torch.rand(1, 1, 12, 12)).shape == (1, 1, 12, 12)
    with pytest.raises(OptionError, match="network_g.conv.step: expected 'bound' | 'sdnet'"):
        build_network({"type": "DnCNN", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 8, "num_layer": 3,
                       "conv": {"type": "csc", "step": "power"}})
