"""train.channels_last: auto | true | false -- which memory format a network trains in."""
import copy

import pytest
import torch

import tests.tiny  # noqa: F401
from restore.archs import build_network
from restore.models import build_model
from restore.models.memory_format import folds_batch, use_channels_last
from restore.utils.errors import OptionError
from restore.utils.options import parse_options
from tests.tiny import train_options, write_options

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
EDSR = {"type": "EDSR", "num_feat": 8, "num_block": 1, "upscale": 2}
NSR = {"type": "NSR", "num_feat": 8, "num_block": 1, "upscale": 2, "k": 2, "d": 2}
CSC_DNCNN = {"type": "DnCNN", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 8, "num_layer": 3,
             "conv": {"type": "csc", "where": "first", "n_iter": 2}}


@pytest.mark.parametrize("net_opt,expected", [(EDSR, True), (CSC_DNCNN, True), (NSR, False)])
def test_auto_picks_channels_last_on_the_cpu_unless_the_net_folds_the_batch(net_opt, expected):
    net = build_network(net_opt)
    assert folds_batch(net) is not expected
    assert use_channels_last("auto", net, CPU)[0] is expected
    assert use_channels_last("auto", net, CUDA)[0] is False  # not measured on a GPU: NCHW
    assert use_channels_last(True, net, CPU)[0] is True and use_channels_last(False, net, CPU)[0] is False


def _model(tmp_path, name, **over):
    opt = train_options(tmp_path / name, name=name, **over)
    return build_model(parse_options(write_options(tmp_path / f"{name}.yml", opt), True))


def test_the_model_trains_in_the_resolved_format_and_says_so(tmp_path):
    edsr = _model(tmp_path, "edsr", network_g=EDSR)
    nsr = _model(tmp_path, "nsr", network_g=NSR)
    assert edsr.channels_last and edsr.net_g.conv_first.weight.is_contiguous(memory_format=torch.channels_last)
    assert not nsr.channels_last
    assert "train.channels_last: auto -> channels_last on the CPU" in edsr.notes
    assert any("auto -> NCHW (the network has batch-folded" in n for n in nsr.notes)
    forced = _model(tmp_path, "forced", network_g=NSR, train__channels_last=True)
    assert forced.channels_last and "train.channels_last: true" in forced.notes


def test_channels_last_changes_speed_not_what_is_learned(tmp_path):
    torch.manual_seed(0)
    a = _model(tmp_path, "a", network_g=EDSR, train__channels_last=True, train__ema_decay=0.0)
    b = _model(tmp_path, "b", network_g=EDSR, train__channels_last=False, train__ema_decay=0.0)
    b.net_g.load_state_dict(copy.deepcopy(a.net_g.state_dict()))
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        batch = {"lq": torch.rand(4, 3, 8, 8, generator=g), "gt": torch.rand(4, 3, 16, 16, generator=g)}
        la, lb = a.optimize_parameters(batch)["loss"], b.optimize_parameters(batch)["loss"]
        assert la == pytest.approx(lb, rel=1e-5)
    for (k, pa), pb in zip(a.net_g.state_dict().items(), b.net_g.state_dict().values()):
        assert torch.allclose(pa, pb, atol=1e-6), k


def test_a_bad_value_is_an_error_naming_the_key(tmp_path):
    opt = train_options(tmp_path, train__channels_last="yes")
    with pytest.raises(OptionError, match=r"train\.channels_last: 'yes' is not one of True, False, auto"):
        parse_options(write_options(tmp_path / "o.yml", opt), True)


def test_an_nchw_trained_net_validates_in_channels_last_and_trains_on_unchanged(tmp_path):
    """NSR trains in NCHW (auto) but validates in channels_last on the CPU; the switch back is exact."""
    a = _model(tmp_path, "a", network_g=NSR, train__ema_decay=0.0)
    b = _model(tmp_path, "b", network_g=NSR, train__ema_decay=0.0)
    b.net_g.load_state_dict(copy.deepcopy(a.net_g.state_dict()))
    g = torch.Generator().manual_seed(2)
    batches = [{"lq": torch.rand(4, 3, 8, 8, generator=g), "gt": torch.rand(4, 3, 16, 16, generator=g)}
               for _ in range(3)]
    lq = torch.rand(1, 3, 12, 12, generator=g)
    weight = next(p for p in a.net_g.parameters() if p.dim() == 4 and p.shape[-1] > 1)
    for i, batch in enumerate(batches):
        a.optimize_parameters(batch)
        b.optimize_parameters(batch)
        assert weight.is_contiguous() and not weight.is_contiguous(memory_format=torch.channels_last)
        out = a.test(lq)  # validation in between, on one side only
        assert weight.is_contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            b.net_g.eval()
            ref = b.net_g(lq)
            b.net_g.train()
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    a.optimize_parameters(batches[0])
    b.optimize_parameters(batches[0])
    assert any(weight is p for p in a.optimizer.param_groups[0]["params"]) and weight.is_contiguous()
    for (k, pa), pb in zip(a.net_g.state_dict().items(), b.net_g.state_dict().values()):
        assert torch.equal(pa, pb), k
