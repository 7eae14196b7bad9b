"""CSC layers (restore/archs/layers/csc_conv.py) and their test-time lambda (restore/csc/)."""
import copy
import json
import os

import numpy as np
import pytest
import torch
from sklearn.linear_model import Lasso
from torch.nn import functional as F

from restore.archs import build_network
from restore.archs.layers.csc_conv import CSCConv2d, csc_layers, operator_norm_sq, project_all_atoms_
from restore.archs.layers.sparse_group_conv import SparseGroupConv2d
from restore.cli.common import run_cli
from restore.cli.csc_calibrate import main as calibrate_main
from restore.csc import LambdaFit, apply_csc_lambda_option, fit_path_for, scale_csc_lambda, set_csc_lambda
from restore.csc.control import first_layer_measure, first_layer_residual
from restore.csc.noise_estimate import estimate_noise_sigma
from restore.train import train
from restore.utils.checkpoint import load_network
from restore.utils.errors import OptionError, RestoreError
from restore.utils.flops import count_macs
from restore.utils.options import parse_options
from tests.tiny import make_images, train_options, write_options


def layer64(*args, **kw) -> CSCConv2d:
    torch.manual_seed(kw.pop("seed", 0))
    return CSCConv2d(*args, **kw).double()


def dense_synthesis(layer: CSCConv2d, size) -> np.ndarray:
    """The matrix of A (codes -> image) for images of `size`, column by column."""
    codes_shape = layer.analysis(torch.zeros(1, layer.in_channels, *size, dtype=torch.float64)).shape
    n = int(np.prod(codes_shape))
    basis = torch.eye(n, dtype=torch.float64).view(n, *codes_shape[1:])
    with torch.no_grad():
        cols = layer.synthesis(basis, size).reshape(n, -1)
    return cols.T.numpy(), codes_shape


def finite_norm_sq(layer: CSCConv2d, size) -> float:
    """||A||^2 for images of `size`, exactly (the largest singular value of the dense matrix)."""
    a, _ = dense_synthesis(layer, size)
    return float(np.linalg.norm(a, 2) ** 2)


def plane_norm_sq(weight: np.ndarray, stride: int, grid: int = 96) -> float:
    """||conv2d(., weight, stride)||^2 on the infinite plane, by aliasing: at each coarse frequency
    the output mixes the stride^2 fine frequencies that fold onto it, so the norm is the largest
    singular value of [W(aliases)] / stride, over a fine grid."""
    fine = np.fft.fft2(weight, s=(grid * stride, grid * stride))  # [C_out, C_in, sN, sN]
    blocks = [fine[:, :, a * grid:(a + 1) * grid, b * grid:(b + 1) * grid]
              for a in range(stride) for b in range(stride)]
    symbol = np.concatenate(blocks, axis=1).transpose(2, 3, 0, 1)  # [N, N, C_out, C_in s^2]
    return float((np.linalg.svd(symbol, compute_uv=False)[..., 0] ** 2).max()) / stride ** 2


@pytest.mark.parametrize("k,stride,size", [(3, 1, (7, 9)), (3, 2, (9, 8)), (3, 2, (8, 8)), (4, 2, (7, 10)),
                                           (5, 1, (6, 5)), (1, 2, (5, 7))])
def test_synthesis_is_the_adjoint_of_analysis(k, stride, size):
    layer = layer64(3, 5, k, stride)
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    z = torch.randn_like(layer.analysis(x))
    az = layer.synthesis(z, size)
    assert az.shape == x.shape
    assert torch.allclose((az * x).sum(), (z * layer.analysis(x)).sum(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cin,cout,k,stride", [(1, 8, 3, 1), (3, 4, 3, 1), (4, 6, 3, 2), (2, 3, 4, 2), (3, 3, 1, 1)])
def test_step_size_bounds_the_operator_for_every_size(cin, cout, k, stride):
    layer = layer64(cin, cout, k, stride, seed=cin * 10 + k)
    lip = float(layer.lipschitz)
    norms = [finite_norm_sq(layer, size) for size in [(5, 5), (9, 7), (12, 11)]]
    assert all(lip >= n for n in norms), (lip, norms)
    # and not loose: against the infinite-plane norm, computed independently (aliasing, not polyphase)
    sup = plane_norm_sq(layer.weight.detach().numpy(), stride)
    assert max(norms) <= sup * (1 + 1e-9) and sup <= lip <= 1.09 * sup


def reference_lasso(layer, x, lam, nonneg):
    """sklearn's coordinate descent on the dense operator: min 1/(2n)||x - A z||^2 + (lam/n)||z||_1."""
    a, codes_shape = dense_synthesis(layer, x.shape[-2:])
    y = x.reshape(-1).numpy()
    model = Lasso(alpha=lam / len(y), fit_intercept=False, positive=nonneg, tol=1e-12, max_iter=200000)
    model.fit(a, y)
    return torch.from_numpy(model.coef_).view(codes_shape)


@pytest.mark.parametrize("nonneg,stride,size,atoms,lam", [(True, 1, (6, 5), 4, 0.05), (False, 1, (5, 7), 3, 0.2),
                                                       (True, 2, (7, 6), 4, 0.05)])
def test_many_steps_converge_to_the_lasso_solution(nonneg, stride, size, atoms, lam):
    layer = layer64(1, atoms, 3, stride, n_iter=1000, lmbda=lam, nonneg=nonneg, scale_output=False).eval()
    x = torch.rand(1, 1, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) - 0.3
    with torch.no_grad():
        z = layer(x)
    ref = reference_lasso(layer, x, lam, nonneg)
    assert (ref != 0).any() and (ref == 0).any()  # a genuinely sparse toy problem
    assert torch.allclose(z, ref, atol=1e-5), (z - ref).abs().max()
    a, _ = dense_synthesis(layer, size)

    def objective(codes):
        codes = codes.reshape(-1).numpy()
        return 0.5 * ((x.reshape(-1).numpy() - a @ codes) ** 2).sum() + lam * np.abs(codes).sum()
    assert objective(z) == pytest.approx(objective(ref), rel=1e-8)


def test_codes_are_positively_homogeneous_in_input_and_lambda():
    layer = layer64(2, 6, 3, 1, n_iter=5, lmbda=0.2).eval()
    x = torch.randn(1, 2, 9, 11, dtype=torch.float64)
    with torch.no_grad():
        layer.lambda_override = 0.2
        z = layer(x)
        layer.lambda_override = 0.2 * 3.7
        z_scaled = layer(3.7 * x)
    assert (z == 0).any() and (z > 0).any()
    assert torch.allclose(z_scaled, 3.7 * z, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nonneg", [True, False])
def test_one_step_with_scaled_output_is_a_thresholded_conv(nonneg):
    layer = layer64(2, 5, 3, 1, n_iter=1, lmbda=0.3, nonneg=nonneg).eval()
    x = torch.randn(1, 2, 8, 7, dtype=torch.float64)
    conv = F.conv2d(x, layer.weight, padding=1)
    expected = F.relu(conv - 0.3) if nonneg else torch.sign(conv) * F.relu(conv.abs() - 0.3)
    with torch.no_grad():
        assert torch.allclose(layer(x), expected, atol=1e-12)
        layer.scale_output = False
        assert torch.allclose(layer(x), expected / layer.lipschitz, atol=1e-12)


def test_odd_sizes_and_stride_two():
    layer = CSCConv2d(3, 8, 3, stride=2, n_iter=4).eval()
    for size in [(17, 23), (16, 16), (1, 1)]:
        z = layer(torch.rand(2, 3, *size))
        assert z.shape == (2, 8, (size[0] + 1) // 2, (size[1] + 1) // 2)
    net = build_network({"type": "DnCNN", "num_feat": 8, "num_layer": 4, "conv": {"type": "csc", "where": "all"}})
    assert net(torch.rand(1, 1, 13, 7)).shape == (1, 1, 13, 7)


@pytest.mark.parametrize("arch,where,expected", [("EDSR", "first", ["conv_first"]),
                                                 ("EDSR", "all", ["conv_first", "body.0.conv1", "body.0.conv2"]),
                                                 ("WDSR", "all", ["head", "body.0.conv1", "body.0.conv2"])])
def test_sr_archs_take_csc_layers_without_edits(arch, where, expected):
    net = build_network({"type": arch, "num_feat": 8, "num_block": 1, "upscale": 2,
                         "conv": {"type": "csc", "where": where, "n_iter": 2, "nonneg": False}})
    assert [n for n, m in net.named_modules() if isinstance(m, CSCConv2d)] == expected
    assert net(torch.rand(1, 3, 9, 7)).shape == (1, 3, 18, 14)


@pytest.mark.parametrize("where,expected", [("first", ["head"]),
                                            ("all", ["head", "body.0.conv1", "body.0.conv2"])])
def test_nsr_takes_csc_layers_over_its_sparse_group_body(where, expected):
    net = build_network({"type": "NSR", "num_feat": 8, "num_block": 1, "upscale": 2, "k": 2, "d": 2,
                         "conv": {"type": "csc", "where": where, "n_iter": 2}})
    assert [n for n, m in net.named_modules() if isinstance(m, CSCConv2d)] == expected
    sparse = [n for n, m in net.named_modules() if isinstance(m, SparseGroupConv2d)]
    assert sparse == ([] if where == "all" else ["body.0.conv1", "body.0.conv2"])
    assert net(torch.rand(1, 3, 9, 7)).shape == (1, 3, 18, 14)
    with pytest.raises(OptionError, match="network_g.conv"):
        build_network({"type": "NSR", "conv": {"type": "csc", "wher": "first"}})


def test_gradients_reach_the_dictionary_and_a_learned_lambda():
    net = build_network({"type": "DnCNN", "num_feat": 8, "num_layer": 3, "use_bn": False,
                         "conv": {"type": "csc", "where": "all", "n_iter": 3, "lmbda": 0.01,
                                  "learn_lambda": True, "lambda_per_atom": True}})
    layers = csc_layers(net)
    assert len(layers) == 2 and layers[0].lmbda.shape == (8,)
    net(torch.rand(2, 1, 12, 10)).square().mean().backward()
    for layer in layers:
        assert layer.weight.grad.abs().sum() > 0 and torch.isfinite(layer.weight.grad).all()
        assert layer.lmbda.grad.abs().sum() > 0


def test_atoms_are_projected_after_a_step_and_lazily_in_training():
    layer = CSCConv2d(2, 4, 3)
    with torch.no_grad():
        layer.weight.mul_(3.0)
    assert project_all_atoms_(torch.nn.Sequential(layer)) == 1
    assert torch.allclose(layer.weight.flatten(1).norm(dim=1), torch.ones(4))
    with torch.no_grad():  # the trainer's generic post-step hook does the same
        layer.weight.mul_(3.0)
    from restore.archs import after_optimizer_step
    assert after_optimizer_step(torch.nn.Sequential(torch.nn.Conv2d(2, 2, 1), layer)) == 1
    assert torch.allclose(layer.weight.flatten(1).norm(dim=1), torch.ones(4))
    assert float(layer.lipschitz) == pytest.approx(operator_norm_sq(layer.weight))
    with torch.no_grad():  # an optimiser step nobody projected: the next training forward does
        layer.weight.mul_(2.0)
    layer.eval()(torch.rand(1, 2, 6, 6))
    assert float(layer.weight.detach().flatten(1).norm(dim=1)[0]) == pytest.approx(2.0)  # eval never touches it
    layer.train()(torch.rand(1, 2, 6, 6))
    assert torch.allclose(layer.weight.flatten(1).norm(dim=1), torch.ones(4))


def test_step_size_is_recomputed_when_a_state_dict_is_loaded():
    a, b = CSCConv2d(3, 5, 3), CSCConv2d(3, 5, 3)
    torch.nn.init.normal_(a.weight)
    a.project_atoms_()
    assert float(a.lipschitz) != float(b.lipschitz)
    assert "lipschitz" not in a.state_dict()
    b.load_state_dict(a.state_dict())
    assert float(b.lipschitz) == float(a.lipschitz)


def csc_dncnn(**conv):
    torch.manual_seed(0)
    return build_network({"type": "DnCNN", "num_feat": 8, "num_layer": 4, "use_bn": False,
                          "conv": {"type": "csc", "lmbda": 0.05, **conv}}).eval()


def test_overriding_lambda_changes_the_output_and_resets():
    net = csc_dncnn(where="all")
    x = torch.rand(2, 1, 12, 12)
    with torch.no_grad():
        base = net(x)
        set_csc_lambda(net, 0.2)
        assert all(float(l.effective_lambda().max()) == pytest.approx(0.2) for l in csc_layers(net))
        high = net(x)
        set_csc_lambda(net, 1e6)  # every code thresholded away: the codes no longer depend on x
        assert (net.head(x) == 0).all()
        set_csc_lambda(net, None)
        again = net(x)
    assert (high - base).abs().max() > 1e-4
    assert torch.equal(base, again)
    assert all(float(l.lmbda[0]) == pytest.approx(0.05) for l in csc_layers(net))  # trained value untouched


def test_auto_lambda_uses_the_per_image_residual():
    net = csc_dncnn(where="all")
    x = torch.rand(3, 1, 12, 12) + torch.tensor([0.0, 0.2, 0.5]).view(3, 1, 1, 1) * torch.randn(3, 1, 12, 12)
    fit = LambdaFit(slope=4.0, intercept=0.2, m_min=0.25, m_max=4.0)
    with torch.no_grad():
        r = first_layer_residual(net, x)
        m = fit.multiplier(r)
        assert len(set(m.tolist())) == 3
        scale_csc_lambda(net, m)
        expected = net(x)
        set_csc_lambda(net, fit)
        got = net(x)
        got_copy = copy.deepcopy(net)(x)
        set_csc_lambda(net, None)
        assert not net.head._forward_pre_hooks
    assert torch.allclose(got, expected) and torch.allclose(got_copy, expected)
    assert csc_layers(net)[1].effective_lambda().flatten().tolist() == pytest.approx([0.05])


def test_noise_estimate_hand_case_and_content_robustness():
    # one 2x2 block: HH = (a - b - c + d) / 2 = (4 - 0 - 0 + 2) / 2 = 3; sigma = 3 / 0.6745
    x = torch.tensor([[[[4.0, 0.0, 9.0], [0.0, 2.0, 9.0]]]])
    assert float(estimate_noise_sigma(x)) == pytest.approx(3 / 0.6744897501960817)
    from skimage import data
    image = torch.from_numpy(data.camera().astype(np.float32) / 255)[None, None]
    g = torch.Generator().manual_seed(0)
    for sigma in (15, 25, 50):
        noisy = image + sigma / 255 * torch.randn(image.shape, generator=g)
        assert 255 * float(estimate_noise_sigma(noisy)) == pytest.approx(sigma, rel=0.08)
    batch = torch.stack([image[0], image[0] + 0.1 * torch.randn(image.shape[1:], generator=g)])
    est = estimate_noise_sigma(batch)
    assert est.shape == (2,) and float(est[0]) < 0.01 and float(est[1]) == pytest.approx(0.1, rel=0.05)


def test_auto_lambda_with_the_noise_feature_follows_the_noise_level():
    net = csc_dncnn(where="all")
    x = torch.rand(2, 1, 16, 16)
    x[1] += 0.2 * torch.randn(1, 16, 16)
    fit = LambdaFit(slope=10.0, intercept=0.5, m_min=0.25, m_max=4.0, feature="noise_sigma")
    with torch.no_grad():
        sigma_hat = first_layer_measure(net, x, "noise_sigma")
        assert torch.equal(sigma_hat, estimate_noise_sigma(x))
        scale_csc_lambda(net, fit.multiplier(sigma_hat))
        expected = net(x)
        set_csc_lambda(net, fit)
        got = net(x)
        set_csc_lambda(net, None)
    assert torch.allclose(got, expected)
    m = fit.multiplier(sigma_hat)
    assert float(m[1]) > float(m[0])
    with pytest.raises(RestoreError, match="unknown feature"):
        LambdaFit.from_points([0.1, 0.2], [1, 2], (0.25, 4), feature="sigma")


def test_lambda_fit_roundtrip_and_option_parsing(tmp_path):
    fit = LambdaFit.from_points([1e-4, 4e-4, 9e-4], [0.5, 1.0, 1.5], (0.25, 4), points=[{"sigma": 10}])
    assert fit.slope == pytest.approx(50.0) and fit.intercept == pytest.approx(0.0, abs=1e-12)
    assert fit.multiplier(torch.tensor([1e-4, 1.0])).tolist() == pytest.approx([0.5, 4.0])  # clipped
    ckpt = os.path.join(tmp_path, "net_g_latest.pth")
    assert fit_path_for(ckpt) == os.path.join(tmp_path, "net_g_latest.csc_lambda.json")
    fit.save(fit_path_for(ckpt))
    assert LambdaFit.load(fit_path_for(ckpt)) == fit
    net = csc_dncnn()
    assert "auto" in apply_csc_lambda_option(net, "auto", ckpt)
    assert any(True for _ in net.head._forward_pre_hooks)
    apply_csc_lambda_option(net, "0.3", ckpt)
    assert net.head.lambda_override == 0.3 and not net.head._forward_pre_hooks
    with pytest.raises(RestoreError, match="expected auto"):
        apply_csc_lambda_option(net, "0.3x", ckpt)
    with pytest.raises(RestoreError, match="no CSC lambda fit"):
        apply_csc_lambda_option(net, "auto", os.path.join(tmp_path, "other.pth"))
    with pytest.raises(RestoreError, match="no CSC layers"):
        apply_csc_lambda_option(build_network({"type": "DnCNN", "num_layer": 2}), "0.1")


def test_macs_equal_the_hand_count():
    # n steps: 1 analysis conv, then 1 synthesis + 1 analysis per further step = 2n - 1 passes
    for stride, n_iter, size in [(1, 5, (10, 12)), (2, 4, (11, 13)), (1, 1, (7, 7))]:
        layer = CSCConv2d(3, 8, 3, stride, n_iter=n_iter)
        hz, wz = (size[0] - 1) // stride + 1, (size[1] - 1) // stride + 1
        expected = (2 * n_iter - 1) * 2 * hz * wz * 8 * 3 * 9
        for device in ("meta", "cpu"):
            assert count_macs(layer, (2, 3, *size), device=device)["macs"] == expected
    plain = build_network({"type": "DnCNN", "num_feat": 8, "num_layer": 4})
    csc = build_network({"type": "DnCNN", "num_feat": 8, "num_layer": 4, "conv": {"type": "csc", "n_iter": 5}})
    extra = count_macs(csc, (1, 1, 16, 16))["macs"] - count_macs(plain, (1, 1, 16, 16))["macs"]
    assert extra == 8 * 16 * 16 * 8 * 1 * 9  # the head: 9 passes instead of 1
    assert count_macs(csc, (1, 1, 16, 16))["params"] == count_macs(plain, (1, 1, 16, 16))["params"] - 8


def test_option_errors():
    with pytest.raises(OptionError, match="n_iters.*did you mean 'n_iter'"):
        build_network({"type": "DnCNN", "conv": {"type": "csc", "n_iters": 5}})
    with pytest.raises(OptionError, match="network_g.conv.where"):
        build_network({"type": "DnCNN", "conv": {"type": "csc", "where": "middle"}})
    with pytest.raises(OptionError, match="n_iter must be >= 1"):
        build_network({"type": "DnCNN", "conv": {"type": "csc", "n_iter": 0}})
    with pytest.raises(OptionError, match="unknown conv variant 'cs'"):
        build_network({"type": "DnCNN", "conv": {"type": "cs"}})


def test_bias_free_plain_variant_is_homogeneous():
    torch.manual_seed(0)
    net = build_network({"type": "DnCNN", "num_feat": 8, "num_layer": 4, "use_bn": False,
                         "conv": {"type": "plain_nobias"}})
    assert not [n for n, _ in net.named_parameters() if n.endswith("bias")]
    x = torch.rand(1, 1, 10, 10)
    with torch.no_grad():
        assert torch.allclose(net(2.5 * x), 2.5 * net(x), atol=1e-6)


def denoise_options(tmp_path, network):
    opt = train_options(tmp_path, name="csc_tiny", scale=1, train__total_iter=6,
                        logger__save_checkpoint_freq=6, val__val_freq=6)
    for phase in ("train", "val"):
        ds = opt["datasets"][phase]
        ds.update(type="DenoiseDataset", sigma=25, color="gray")
    opt["network_g"] = network
    return opt


def test_dncnn_with_csc_trains_through_the_trainer_and_calibrates(tmp_path, capsys):
    network = {"type": "DnCNN", "num_feat": 8, "num_layer": 3, "use_bn": False,
               "conv": {"type": "csc", "where": "all", "n_iter": 3, "lmbda": 0.05}}
    path = write_options(os.path.join(tmp_path, "train.yml"), denoise_options(tmp_path, network))
    result = train(parse_options(path, is_train=True))
    assert len(result["history"]) == 6 and all(np.isfinite(result["history"]))
    ckpt = os.path.join(result["experiment"], "models", "net_g_latest.pth")
    net = build_network(network)
    load_network(net, ckpt, "params_ema")
    for layer in csc_layers(net):
        assert float(layer.lipschitz) == pytest.approx(operator_norm_sq(layer.weight))
    # calibrate the fit beside the checkpoint, then use it
    val = make_images(os.path.join(tmp_path, "calib"), n=2, size=(24, 20), seed=5)
    test_opt = {"name": "t", "model_type": "SRModel", "device": "cpu", "network_g": network,
                "datasets": {"test_1": {"name": "v", "type": "DenoiseDataset", "sigma": 25,
                                        "color": "gray", "dataroot_gt": val}},
                "path": {"pretrain_network_g": ckpt, "param_key_g": "params_ema"}}
    test_path = write_options(os.path.join(tmp_path, "test.yml"), test_opt)
    code = run_cli(calibrate_main, ["-opt", test_path, "--val-dir", val, "--sigmas", "10", "40",
                                    "--multipliers", "0.5", "2"])
    assert code == 0, capsys.readouterr().err
    with open(fit_path_for(ckpt)) as f:
        saved = json.load(f)
    assert [p["sigma"] for p in saved["points"]] == [10, 40]
    assert saved["points"][0]["residual"] < saved["points"][1]["residual"]  # more noise, more residual
    assert saved["feature"] == "noise_sigma"
    assert saved["points"][0]["noise_sigma"] < saved["points"][1]["noise_sigma"]
    assert saved["m_min"] == 0.5 and saved["m_max"] == 2.0
    assert "saved" in capsys.readouterr().out
    apply_csc_lambda_option(net, "auto", ckpt)
    assert torch.isfinite(net(torch.rand(1, 1, 9, 9))).all()
