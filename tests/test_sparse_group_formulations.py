"""Every formulation of the sparse-group conv computes the reference's function (outputs and
gradients), and `auto` chooses deterministically for a given shape and machine."""
import json

import pytest
import torch

from restore.archs import build_network
from restore.archs.layers import sparse_group_conv as sgc
from restore.archs.layers.sparse_group_conv import FORMULATIONS, SparseGroupConv2d, set_formulation
from restore.utils.errors import OptionError
from restore.utils.measured_choice import machine_id
from tests.tiny import graph_nodes

CL = torch.channels_last
OTHERS = FORMULATIONS[1:]


@pytest.fixture(autouse=True)
def private_choices(tmp_path, monkeypatch):
    """Each test starts with no remembered choice and its own choices file."""
    monkeypatch.setenv(sgc.CACHE_ENV, str(tmp_path / "choices.json"))
    monkeypatch.setattr(sgc.CHOICES, "choices", {})


def grads_of(formulation, layer, x, gates, grad_seed=0):
    """Output and the gradients of x, the gates and every parameter, running `formulation`."""
    layer.formulation = formulation
    layer.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    gates = gates.detach().clone().requires_grad_() if gates is not None else None
    out = layer(x, gates=gates)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(grad_seed))
    out.backward(grad.to(out.device))
    found = {"out": out.detach(), "x": x.grad}
    if gates is not None:
        found["gates"] = gates.grad
    found.update({name: p.grad for name, p in layer.named_parameters() if p.grad is not None})
    return found


def assert_same(found, ref):
    assert found.keys() == ref.keys()
    for name in ref:
        torch.testing.assert_close(found[name], ref[name], rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("formulation", OTHERS)
@pytest.mark.parametrize("batch", [1, 16])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("own_gates", [False, True])
def test_formulation_equals_reference(formulation, batch, channels_last, own_gates):
    # odd sizes, C_in != C_out, weight norm and bias: every gradient path of the layer
    torch.manual_seed(batch + 2 * channels_last)
    layer = SparseGroupConv2d(5, 8, 3, k=3, d=4, weight_norm=True)
    with torch.no_grad():
        layer.bias.normal_()  # the reference initialises biases to zero only inside WDSR/NSR
    x = torch.randn(batch, 5, 7, 9)
    if channels_last:
        x = x.contiguous(memory_format=CL)
    gates = None if own_gates else torch.rand(batch, 3, 4)  # random, not normalised: any gate type
    ref = grads_of("grouped", layer, x, gates)
    found = grads_of(formulation, layer, x, gates)
    assert_same(found, ref)
    assert found["out"].is_contiguous(memory_format=CL) == ref["out"].is_contiguous(memory_format=CL) or \
        channels_last  # NCHW in, NCHW out; channels_last in: channels_last or (H, W, B, C) out


@pytest.mark.parametrize("formulation", OTHERS)
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("relu", [torch.relu, torch.relu_], ids=["relu", "relu_"])
def test_formulation_equals_reference_in_a_residual_block(formulation, channels_last, relu):
    # Two convs and a skip as in NSR: the second conv sees the first's output layout ((H, W, B, C) for
    # the grouped conv in channels_last), and x collects three gradients. WDSR's ReLU is in place.
    torch.manual_seed(7)
    a = SparseGroupConv2d(6, 6, 3, k=2, d=3, weight_norm=True)
    b = SparseGroupConv2d(6, 6, 3, k=2, d=3, weight_norm=True)
    x0 = torch.randn(4, 6, 5, 7)
    if channels_last:
        x0 = x0.contiguous(memory_format=CL)
    results = {}
    for name in ("grouped", formulation):
        for layer in (a, b):
            layer.formulation = name
            layer.zero_grad(set_to_none=True)
        x = x0.clone().requires_grad_()
        out = b(relu(a(x))) + x
        out.backward(torch.randn(out.shape, generator=torch.Generator().manual_seed(1)))
        results[name] = {"out": out.detach(), "x": x.grad,
                         **{f"a.{n}": p.grad for n, p in a.named_parameters()},
                         **{f"b.{n}": p.grad for n, p in b.named_parameters()}}
    assert_same(results[formulation], results["grouped"])


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("own_gates", [False, True])
def test_every_output_takes_an_in_place_relu_without_copy_slices(channels_last, own_gates):
    # An in-place op on a view of a conv output sends the gradient through CopySlices (a zero fill
    # and full-size copies); every formulation returns a tensor of its own, so WDSR's ReLU modifies
    # it directly. A plain reshape view of the conv shows the node the test looks for.
    layer = SparseGroupConv2d(6, 6, 3, k=2, d=3)
    x = torch.randn(4, 6, 5, 7, requires_grad=True)
    if channels_last:
        x = x.contiguous(memory_format=CL)
    gates = None if own_gates else torch.rand(4, 2, 3, requires_grad=True)
    for name in FORMULATIONS:
        layer.formulation = name
        found = graph_nodes(torch.relu_(layer(x, gates=gates)).grad_fn)
        assert "torch::autograd::CopySlices" not in found and "ReluBackward0" in found, name
    conv = torch.nn.functional.conv2d(x.reshape(1, -1, 5, 7), torch.randn(24, 6, 3, 3), groups=4)
    assert "torch::autograd::CopySlices" in graph_nodes(torch.relu_(conv.view(4, 6, 3, 5)).grad_fn)


@pytest.mark.parametrize("formulation", OTHERS)
def test_formulation_in_bf16_autocast_stays_close(formulation):
    torch.manual_seed(8)
    layer = SparseGroupConv2d(8, 8, 3, k=2, d=4, weight_norm=True)
    x = torch.randn(4, 8, 6, 6).contiguous(memory_format=CL)
    outs = {}
    for name in ("grouped", formulation):
        layer.formulation = name
        layer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = layer(x)
        out.float().sum().backward()
        outs[name] = (out.float().detach(), layer.weight_v.grad.clone())
    torch.testing.assert_close(outs[formulation][0], outs["grouped"][0], rtol=0.05, atol=0.05)
    torch.testing.assert_close(outs[formulation][1], outs["grouped"][1], rtol=0.05, atol=0.5)


def test_nsr_net_gives_the_same_step_with_every_formulation():
    torch.manual_seed(9)
    net = build_network({"type": "NSR", "num_feat": 8, "num_block": 2, "upscale": 2, "k": 2, "d": 4})
    x = torch.rand(3, 3, 6, 5)
    results = {}
    for name in FORMULATIONS:
        assert set_formulation(net, name) == 4
        net.zero_grad(set_to_none=True)
        out = net(x)
        out.abs().mean().backward()
        results[name] = {"out": out.detach(), **{n: p.grad for n, p in net.named_parameters()}}
    for name in OTHERS:
        assert_same(results[name], results["grouped"])


# --- auto -------------------------------------------------------------------------------------
def fake_times(monkeypatch, times, calls):
    def measure(layer, x, reps=3, names=FORMULATIONS):
        calls.append(tuple(x.shape))
        return {name: times[name] for name in names}
    monkeypatch.setattr(sgc, "measure_formulations", measure)


def test_auto_picks_the_fastest_once_per_shape_and_remembers_it(monkeypatch, tmp_path):
    calls = []
    fake_times(monkeypatch, {"grouped": 3.0, "loop": 1.0, "unfold": 2.0, "fused": 1.5}, calls)
    layer = SparseGroupConv2d(4, 4, 3, k=2, d=2)
    x = torch.randn(2, 4, 5, 5)
    assert layer.formulation == "auto"
    assert sgc.choose_formulation(layer, x) == "loop"
    assert sgc.choose_formulation(layer, x) == "loop"
    layer(x).sum().backward()  # the layer's forward uses the remembered choice
    assert calls == [(2, 4, 5, 5)]
    # a new process (empty in-process memory) reads the machine's choices file: same choice, no timing
    sgc.CHOICES.choices.clear()
    fake_times(monkeypatch, {"grouped": 1.0, "loop": 3.0, "unfold": 3.0, "fused": 3.0}, calls)
    assert sgc.choose_formulation(layer, x) == "loop"
    assert calls == [(2, 4, 5, 5)]
    stored = json.loads((tmp_path / "choices.json").read_text())
    assert list(stored.values()) == ["loop"] and machine_id() in next(iter(stored))
    # another shape is measured on its own
    assert sgc.choose_formulation(layer, torch.randn(3, 4, 5, 5)) == "grouped"
    assert calls == [(2, 4, 5, 5), (3, 4, 5, 5)]


def test_auto_keeps_fused_within_its_slack_else_the_fastest_ties_to_the_reference():
    pick = sgc.pick_formulation
    assert pick({"grouped": 1.0, "loop": 1.0, "unfold": 1.0, "fused": 1.0}) == "fused"
    assert pick({"grouped": 1.0, "loop": 2.0, "unfold": 3.0, "fused": 1.24}) == "fused"
    assert pick({"grouped": 1.0, "loop": 2.0, "unfold": 3.0, "fused": 1.26}) == "grouped"
    assert pick({"grouped": 1.0, "loop": 0.7, "unfold": 0.7, "fused": 1.0}) == "loop"


def test_auto_picks_by_the_measured_times_and_no_grad_never_measures(monkeypatch):
    calls = []
    fake_times(monkeypatch, {"grouped": 1.0, "loop": 2.0, "unfold": 2.0, "fused": 1.3}, calls)
    layer = SparseGroupConv2d(4, 4, 3, k=2, d=2)
    assert sgc.choose_formulation(layer, torch.randn(2, 4, 5, 5)) == "grouped"
    with torch.no_grad():
        assert sgc.choose_formulation(layer, torch.randn(5, 4, 5, 5)) == "grouped"
    assert sgc.choose_formulation(layer, torch.randn(1, 4, 5, 5)) == "grouped"  # batch 1 folds nothing
    assert calls == [(2, 4, 5, 5)]


def test_auto_choice_is_keyed_by_layout_and_dtype():
    layer = SparseGroupConv2d(4, 4, 3, k=2, d=2)
    x = torch.randn(2, 4, 5, 5)
    keys = {sgc.shape_key(layer, x), sgc.shape_key(layer, x.contiguous(memory_format=CL))}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        keys.add(sgc.shape_key(layer, x))
    assert len(keys) == 3
    assert sgc.shape_key(layer, x) == sgc.shape_key(layer, x.clone())


def test_real_measurement_returns_a_time_per_formulation_and_leaves_the_rng_alone():
    layer = SparseGroupConv2d(4, 4, 3, k=2, d=2, weight_norm=True)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    times = sgc.measure_formulations(layer, torch.randn(2, 4, 6, 6).contiguous(memory_format=CL), reps=1)
    assert set(times) == set(FORMULATIONS) and all(t > 0 for t in times.values())
    assert layer.weight_v.grad is None
    torch.manual_seed(0)
    assert torch.equal(torch.rand(3), expected)


def test_unknown_formulation_is_an_option_error():
    with pytest.raises(OptionError, match="formulation"):
        build_network({"type": "NSR", "num_feat": 8, "num_block": 1, "upscale": 2, "d": 4, "formulation": "fast"})
    with pytest.raises(ValueError, match="unknown formulation"):
        SparseGroupConv2d(4, 4, 3, k=2, d=2, formulation="fast")
