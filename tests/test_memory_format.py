"""train.channels_last: auto | true | false -- which memory format a network trains in."""
import copy
import json

import pytest
import torch

import tests.tiny  # noqa: F401
from restore.archs import build_network
from restore.models import build_model
from restore.models import memory_format
from restore.models.memory_format import use_channels_last
from restore.utils.measured_choice import machine_id
from restore.utils.errors import OptionError
from restore.utils.options import parse_options
from tests.tiny import train_options, write_options

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
EDSR = {"type": "EDSR", "num_feat": 8, "num_block": 1, "upscale": 2}
NSR = {"type": "NSR", "num_feat": 8, "num_block": 1, "upscale": 2, "k": 2, "d": 2}
CSC_DNCNN = {"type": "DnCNN", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 8, "num_layer": 3,
             "conv": {"type": "csc", "where": "first", "n_iter": 2}}


def test_auto_is_timed_on_the_cpu_and_nchw_on_cuda():
    net = build_network(EDSR)
    assert use_channels_last("auto", net, CPU)[0] is None  # decided at the first training step
    assert use_channels_last("auto", net, CUDA)[0] is False  # not measured on a GPU: NCHW
    assert use_channels_last(True, net, CPU)[0] is True and use_channels_last(False, net, CPU)[0] is False


def _model(tmp_path, name, **over):
    opt = train_options(tmp_path / name, name=name, **over)
    return build_model(parse_options(write_options(tmp_path / f"{name}.yml", opt), True))


@pytest.fixture
def private_choices(tmp_path, monkeypatch):
    monkeypatch.setenv("RESTORE_MEMORY_FORMAT_CACHE", str(tmp_path / "formats.json"))
    monkeypatch.setattr(memory_format.CHOICES, "choices", {})
    return tmp_path / "formats.json"


def fake_timings(monkeypatch, times: dict, calls: list):
    def fake(net, shape, amp_dtype=None, reps=4):
        calls.append(tuple(shape))
        return dict(times)
    monkeypatch.setattr(memory_format, "measure_layouts", fake)


def test_auto_trains_in_the_faster_format_timed_once_per_net_shape_and_machine(tmp_path, monkeypatch,
                                                                               private_choices, caplog):
    calls = []
    fake_timings(monkeypatch, {"channels_last": 2.0, "nchw": 1.0}, calls)
    batch = {"lq": torch.rand(4, 3, 8, 8), "gt": torch.rand(4, 3, 16, 16)}
    edsr = _model(tmp_path, "edsr", network_g=EDSR)
    assert edsr.channels_last is None and "train.channels_last: auto -> timed on the first batch's shape" in edsr.notes
    with caplog.at_level("INFO", logger="restore"):
        edsr.optimize_parameters(batch)
    assert edsr.channels_last is False and edsr.net_g.conv_first.weight.is_contiguous()
    assert "auto -> nchw (timed: channels_last 2000 ms, nchw 1000 ms)" in caplog.text
    assert calls == [(4, 3, 8, 8)]
    stored = json.loads(private_choices.read_text())
    assert list(stored.values()) == ["nchw"] and machine_id() in next(iter(stored))
    # another process on this machine (empty in-process memory): the file's choice, no timing
    memory_format.CHOICES.choices.clear()
    fake_timings(monkeypatch, {"channels_last": 1.0, "nchw": 2.0}, calls)
    again = _model(tmp_path, "again", network_g=EDSR)
    with caplog.at_level("INFO", logger="restore"):
        again.optimize_parameters(batch)
    assert again.channels_last is False and "auto -> nchw (this machine's earlier timing)" in caplog.text
    assert calls == [(4, 3, 8, 8)]
    # another network, or another batch shape, is timed on its own
    nsr = _model(tmp_path, "nsr", network_g=NSR)
    nsr.optimize_parameters(batch)
    assert nsr.channels_last is True
    weight = next(p for p in nsr.net_g.parameters() if p.dim() == 4 and p.shape[-1] > 1)
    assert weight.is_contiguous(memory_format=torch.channels_last)
    smaller = _model(tmp_path, "smaller", network_g=EDSR)
    smaller.optimize_parameters({"lq": torch.rand(2, 3, 8, 8), "gt": torch.rand(2, 3, 16, 16)})
    assert smaller.channels_last is True
    assert calls == [(4, 3, 8, 8), (4, 3, 8, 8), (2, 3, 8, 8)]
    forced = _model(tmp_path, "forced", network_g=NSR, train__channels_last=True)
    assert forced.channels_last and "train.channels_last: true" in forced.notes


def test_timing_the_formats_leaves_the_net_and_the_rng_stream_alone():
    net = build_network({**NSR, "gate": "gumbel"})  # gumbel gates draw from the global RNG
    before = copy.deepcopy(net.state_dict())
    torch.manual_seed(5)
    state = torch.get_rng_state()
    times = memory_format.measure_layouts(net, (2, 3, 8, 8), reps=1)
    assert set(times) == {"channels_last", "nchw"} and all(t > 0 for t in times.values())
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())


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
    """NSR trained in NCHW validates in channels_last on the CPU; the switch back is exact."""
    a = _model(tmp_path, "a", network_g=NSR, train__ema_decay=0.0, train__channels_last=False)
    b = _model(tmp_path, "b", network_g=NSR, train__ema_decay=0.0, train__channels_last=False)
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


def test_a_resumed_run_keeps_the_format_it_trained_in(tmp_path, monkeypatch, private_choices):
    """The format is part of the training state: resuming where the cache is gone (another machine,
    a cleared home folder) still sums in the same order."""
    from restore.utils.checkpoint import load_safely
    calls = []
    fake_timings(monkeypatch, {"channels_last": 2.0, "nchw": 1.0}, calls)
    model = _model(tmp_path, "first", network_g=EDSR)
    model.optimize_parameters({"lq": torch.rand(4, 3, 8, 8), "gt": torch.rand(4, 3, 16, 16)})
    (tmp_path / "models").mkdir()
    (tmp_path / "states").mkdir()
    model.save(str(tmp_path / "models"), str(tmp_path / "states"), 1, 0, {})
    private_choices.unlink()
    memory_format.CHOICES.choices.clear()
    fake_timings(monkeypatch, {"channels_last": 1.0, "nchw": 2.0}, calls)
    resumed = _model(tmp_path, "resumed", network_g=EDSR)
    resumed.resume(load_safely(str(tmp_path / "states" / "1.state")), str(tmp_path / "models" / "net_g_1.pth"))
    resumed.optimize_parameters({"lq": torch.rand(4, 3, 8, 8), "gt": torch.rand(4, 3, 16, 16)})
    assert resumed.channels_last is False and resumed.net_g.conv_first.weight.is_contiguous()
    assert "train.channels_last: auto -> nchw (the resumed run's format)" in resumed.notes
    assert calls == [(4, 3, 8, 8)]  # nothing timed for the resumed run
