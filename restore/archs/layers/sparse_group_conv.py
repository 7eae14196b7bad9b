"""The NSR sparse-group convolution (Fan et al., "Neural Sparse Representation for Image
Restoration", NeurIPS 2020), as in the reference ychfan/pt_ir `models/wdsr_nsr.py`.

The layer stores k candidate kernel banks (k sparsity groups); its C_out filters are split into d
cardinal groups of C_out/d filters. A gate pools the layer input over space, maps it with one
Linear(C_in, k*d) and normalises over k for each cardinal group, giving per sample a weight
gamma[b, i, j] for sparsity group i in cardinal group j. Because convolution is linear, weighting the
k candidate outputs equals convolving once with the gamma-weighted kernel, so each sample gets its
own mixed kernel (and bias): the cost of a plain C_in -> C_out conv plus a small per-sample overhead
(pool, Linear, kernel mixing), independent of k.

Candidate filter index = i * C_out + j * (C_out / d) + c (sparsity group i, cardinal group j,
filter c), the reference's layout, so its weights map one to one.

How the per-sample conv runs is a `formulation`; all compute the same function (equal outputs and
gradients to float rounding, tests/test_sparse_group_formulations.py), at different speed:

    grouped  the reference: the batch folded into the channels, one conv with groups=B
    loop     B batch-1 convs, one per sample (each a plain conv in the input's memory format)
    unfold   im2col (F.unfold) + one batched GEMM (torch.bmm) per layer
    fused    `grouped` inside one autograd Function with the kernel mixing (and the softmax gate):
             the backward goes from the conv's weight gradient straight to the gate, candidate and
             gate-Linear gradients, and adds the pooling's gradient into the input's in place
    auto     per input shape, the fastest of these, measured once per shape and machine and
             cached (restore/utils/measured_choice.py)
"""
import copy
import time
from functools import partial
from typing import Literal, Optional

import torch
from torch import nn
from torch.nn import functional as F

from restore.archs.layers.conv_factory import CONV_VARIANTS, ConvVariant
from restore.archs.layers.weight_norm import normalised_weight, reset_conv_parameters
from restore.utils.measured_choice import ChoiceCache, device_label, machine_id, synchronize

GateType = Literal["softmax", "sigmoid", "gumbel"]
Formulation = Literal["auto", "grouped", "loop", "unfold", "fused"]
FORMULATIONS = ("grouped", "loop", "unfold", "fused")  # the first is the reference
CACHE_ENV = "RESTORE_SPARSE_GROUP_CACHE"  # a JSON file, or "off" for an in-process choice only


def _is_batch_interleaved(x: torch.Tensor) -> bool:
    """Memory order (H, W, B, C): what the grouped conv returns for a channels_last batch."""
    return x.permute(2, 3, 0, 1).is_contiguous()


def _folds_interleaved(x: torch.Tensor) -> bool:
    return _is_batch_interleaved(x) or x.is_contiguous(memory_format=torch.channels_last)


def _fold(x: torch.Tensor, interleaved: bool) -> torch.Tensor:
    """(B, C, H, W) -> (1, B*C, H, W). A channels_last batch is folded as (H, W, B*C), which is
    channels_last for the folded view, so the conv stays on the channels_last path (a plain
    `view(1, -1, H, W)` would make PyTorch see NCHW and silently run the slow path)."""
    height, width = x.shape[-2:]
    if interleaved:
        return x.permute(2, 3, 0, 1).reshape(1, height, width, -1).permute(0, 3, 1, 2)
    return x.reshape(1, -1, height, width)


def _unfold_batch(out: torch.Tensor, batch: int, interleaved: bool) -> torch.Tensor:
    """The inverse of `_fold`. An interleaved result keeps the (H, W, B, C) memory order, which the
    next sparse-group conv folds without a copy."""
    out_h, out_w = out.shape[-2:]
    if interleaved:
        out = out.contiguous(memory_format=torch.channels_last)
        return out.permute(0, 2, 3, 1).view(out_h, out_w, batch, -1).permute(2, 3, 0, 1)
    return out.reshape(batch, -1, out_h, out_w)


class OwnView(torch.autograd.Function):
    """`view(tensor)` as an autograd node of its own rather than a view autograd tracks, for the
    per-sample conv outputs (a reshape of the conv's). An in-place op on a tracked view (WDSR's ReLU
    after a block's first conv) makes autograd send the gradient through CopySlices, a zero fill and
    full-size copies per layer: 1.33x the whole NSR step in bf16 channels_last on the 2-core Xeon
    (docs/performance.md). Values and gradients are the view's; `unview` maps the gradient back."""

    @staticmethod
    def forward(ctx, tensor, view, unview):
        ctx.unview = unview
        return view(tensor).detach()

    @staticmethod
    def backward(ctx, grad):
        return ctx.unview(grad), None, None


def own_view(tensor: torch.Tensor, view, unview) -> torch.Tensor:
    """OwnView where autograd records, the plain view elsewhere (inference, and the ONNX exporter's
    trace, which cannot export a Python autograd Function)."""
    if tensor.requires_grad and not torch.jit.is_tracing():
        return OwnView.apply(tensor, view, unview)
    return view(tensor)


def grouped_conv(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                 stride: int = 1, padding: int = 0) -> torch.Tensor:
    """The reference: the batch folded into the channels, one conv with groups=B; a channels_last
    batch comes back in (H, W, B, C) memory order."""
    batch = x.shape[0]
    if batch == 1:
        return F.conv2d(x, weight, bias, stride, padding)
    interleaved = _folds_interleaved(x)
    out = F.conv2d(_fold(x, interleaved), weight, bias, stride, padding, groups=batch)
    return own_view(out, partial(_unfold_batch, batch=batch, interleaved=interleaved),
                    partial(_fold, interleaved=interleaved))


def loop_conv(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
              stride: int = 1, padding: int = 0) -> torch.Tensor:
    """One batch-1 conv per sample. split/unbind (not indexing) so that autograd gathers the
    per-sample gradients with one cat/stack instead of a zero-filled full tensor per sample."""
    batch = x.shape[0]
    weights = weight.unflatten(0, (batch, -1)).unbind(0)
    biases = bias.view(batch, -1).unbind(0) if bias is not None else (None,) * batch
    return torch.cat([F.conv2d(xb, wb, bb, stride, padding)
                      for xb, wb, bb in zip(x.split(1), weights, biases)])


def unfold_conv(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                stride: int = 1, padding: int = 0) -> torch.Tensor:
    """im2col (F.unfold) and one batched GEMM: (B, C_out, C_in*K*K) @ (B, C_in*K*K, H'*W')."""
    batch, _, height, width = x.shape
    ksize = weight.shape[-1]
    cols = F.unfold(x, ksize, padding=padding, stride=stride)
    kernels = weight.reshape(batch, -1, cols.shape[1]).to(cols.dtype)
    if bias is None:
        out = torch.bmm(kernels, cols)
    else:
        out = torch.baddbmm(bias.view(batch, -1, 1).to(cols.dtype), kernels, cols)
    out_size = (batch, -1, (height + 2 * padding - ksize) // stride + 1, (width + 2 * padding - ksize) // stride + 1)
    out = own_view(out, partial(torch.Tensor.view, size=out_size), partial(torch.Tensor.reshape, shape=out.shape))
    # keep the memory format the net runs in
    return out.contiguous(memory_format=torch.channels_last) if _folds_interleaved(x) else out


PER_SAMPLE_CONVS = {"grouped": grouped_conv, "loop": loop_conv, "unfold": unfold_conv}


def per_sample_conv(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                    stride: int = 1, padding: int = 0, formulation: str = "grouped") -> torch.Tensor:
    """Convolve sample b of `x` (B, C_in, H, W) with its own kernel weight[b*C_out:(b+1)*C_out]
    (and bias[b*C_out:(b+1)*C_out]); `formulation` grouped, loop or unfold (module docstring)."""
    return PER_SAMPLE_CONVS[formulation](x, weight, bias, stride, padding)


def mix_candidates(gates: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """(B, d, r) per-sample rows sum_i gates[b, i, j] * candidates[i, j] for gates (B, k, d) and
    candidates (k, d, r)."""
    return torch.einsum("bkd,kdr->bdr", gates, candidates)


def mix_backward(gates: torch.Tensor, candidates: torch.Tensor, grad: torch.Tensor, need_gates: bool,
                 need_candidates: bool):
    """Gradients of `mix_candidates` for the output gradient `grad` (B, d, r)."""
    grad_gates = torch.einsum("bdr,kdr->bkd", grad, candidates) if need_gates else None
    grad_candidates = torch.einsum("bkd,bdr->kdr", gates, grad) if need_candidates else None
    return grad_gates, grad_candidates


def _conv_dtype(x: torch.Tensor) -> torch.dtype:
    device = x.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return x.dtype


def _contiguous_as(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """`x` contiguous in `dtype`, in one copy where both change (`to(dtype, memory_format=...)`
    returns a non-contiguous `x` itself when the dtype is already right)."""
    return x.contiguous() if x.dtype == dtype else x.to(dtype, memory_format=torch.contiguous_format)


def _mixed_conv(folded, gates, candidates, bias, stride: int, padding: int):
    """Forward of `fused`: (output, the tensors its backward needs)."""
    batch, k, d = gates.shape
    dtype = _conv_dtype(folded)
    with torch.autocast(folded.device.type, enabled=False):
        cand = candidates.reshape(k, d, -1)
        gates_c = gates.to(cand.dtype)
        # the cast and the reshape's copy of einsum's (d, B, r)-ordered result as one copy
        weight = _contiguous_as(mix_candidates(gates_c, cand), dtype).view(
            batch * candidates.shape[0] // k, *candidates.shape[1:])
        mixed_bias = None
        if bias is not None:
            mixed_bias = mix_candidates(gates_c, bias.view(k, d, -1)).reshape(-1).to(dtype)
        folded_c = folded.to(dtype)
        out = F.conv2d(folded_c, weight, mixed_bias, stride, padding, groups=batch)
    return out, (folded_c, gates_c, cand, weight, bias)


def _mixed_conv_backward(grad_out, saved, stride: int, padding: int, need_x: bool, need_gates: bool,
                         need_cand: bool, need_bias: bool):
    """Backward of `fused`: gradients of the folded input, the gates, the candidates and their bias."""
    folded, gates, cand, weight, bias = saved
    batch, k, d = gates.shape
    need_weight = need_gates or need_cand
    grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
        grad_out.to(weight.dtype), folded, weight, [weight.shape[0]] if bias is not None else None,
        [stride, stride], [padding, padding], [1, 1], False, [0, 0], batch,
        [need_x, need_weight, bias is not None and (need_bias or need_gates)])
    grad_gates = grad_cand = grad_bias = None
    if need_weight:
        grad_w = _contiguous_as(grad_w, cand.dtype).view(batch, d, -1)
        grad_gates, grad_cand = mix_backward(gates, cand, grad_w, need_gates, need_cand)
        if grad_cand is not None:
            grad_cand = grad_cand.reshape(-1, *weight.shape[1:])
    if grad_b is not None:
        bias_gates, grad_bias = mix_backward(gates, bias.view(k, d, -1), grad_b.reshape(batch, d, -1).to(bias.dtype),
                                             need_gates, need_bias)
        if bias_gates is not None:
            grad_gates = grad_gates + bias_gates
        if grad_bias is not None:
            grad_bias = grad_bias.reshape(-1)
    return grad_x, grad_gates, grad_cand, grad_bias


def _unfolded_output(out: torch.Tensor, batch: int, interleaved: bool) -> torch.Tensor:
    """`_unfold_batch(out)` as a tensor of its own over the same memory (detach: not an autograd view
    of `out`). The `fused` Functions return it: a view made inside a Function may not be modified in
    place, and an in-place op (WDSR's ReLU) on a view of any conv output makes autograd route the
    gradient through CopySlices, a zero fill and full-size copies per layer."""
    return _unfold_batch(out, batch, interleaved).detach()


class FusedMixedConv(torch.autograd.Function):
    """Kernel mixing + the grouped conv of a folded batch (1, B*C_in, H, W) as one autograd node
    (`fused`, for given gates), returning the unfolded (B, C_out, H', W'). The backward takes the
    grouped conv's weight gradient straight to the gate and candidate gradients (two small
    contractions) instead of going through einsum's, reshape's and the conv's separate autograd
    nodes; the mixed kernels are made once and kept for the backward. Under autocast the conv runs
    in the autocast dtype and the mixing in the candidates' dtype. Folding stays outside, as a view
    autograd knows."""

    @staticmethod
    def forward(ctx, folded, batch: int, interleaved: bool, gates, candidates, bias, stride: int, padding: int):
        out, saved = _mixed_conv(folded, gates, candidates, bias, stride, padding)
        ctx.save_for_backward(*saved)
        ctx.conf = (stride, padding, folded.dtype, gates.dtype, interleaved)
        return _unfolded_output(out, batch, interleaved)

    @staticmethod
    def backward(ctx, grad_out):
        stride, padding, folded_dtype, gates_dtype, interleaved = ctx.conf
        need_x, _, _, need_gates, need_cand, need_bias = ctx.needs_input_grad[:6]
        grad_x, grad_gates, grad_cand, grad_bias = _mixed_conv_backward(
            _fold(grad_out, interleaved), ctx.saved_tensors, stride, padding, need_x, need_gates, need_cand,
            need_bias)
        return (grad_x.to(folded_dtype) if grad_x is not None else None, None, None,
                grad_gates.to(gates_dtype) if grad_gates is not None else None, grad_cand, grad_bias, None, None)


class FusedGatedConv(torch.autograd.Function):
    """`fused` with the layer's own softmax gate inside: pooling, Linear, softmax, mixing and conv as
    one node. Its backward adds the pooling's gradient (a per-channel constant) into the conv's input
    gradient in place, where autograd would materialise a full-size mean gradient and add the two.
    Like FusedMixedConv it returns the unfolded output."""

    @staticmethod
    def forward(ctx, folded, batch: int, interleaved: bool, mlp_weight, mlp_bias, k: int, d: int,
                temperature: float, candidates, bias, stride: int, padding: int):
        with torch.autocast(folded.device.type, enabled=False):
            # sum, then divide in the Linear's dtype: bf16's mean costs 3 of its sums on the CPU
            pooled = folded.sum(dim=(2, 3)).view(batch, -1).to(mlp_weight.dtype) / folded.shape[-2:].numel()
            gates = (F.linear(pooled, mlp_weight, mlp_bias).view(batch, k, d) / temperature).softmax(dim=1)
        out, saved = _mixed_conv(folded, gates, candidates, bias, stride, padding)
        ctx.save_for_backward(*saved, pooled, mlp_weight)
        ctx.conf = (stride, padding, folded.dtype, temperature, mlp_bias is not None, folded.shape[-2:].numel(),
                    interleaved)
        return _unfolded_output(out, batch, interleaved)

    @staticmethod
    def backward(ctx, grad_out):
        *saved, pooled, mlp_weight = ctx.saved_tensors
        stride, padding, folded_dtype, temperature, has_mlp_bias, pixels, interleaved = ctx.conf
        need_x, _, _, need_mlp_w, need_mlp_b, _, _, _, need_cand, need_bias = ctx.needs_input_grad[:10]
        need_gates = need_x or need_mlp_w or need_mlp_b
        grad_x, grad_gates, grad_cand, grad_bias = _mixed_conv_backward(
            _fold(grad_out, interleaved), saved, stride, padding, need_x, need_gates, need_cand, need_bias)
        grad_mlp_w = grad_mlp_b = None
        if grad_gates is not None:
            gates = saved[1]
            grad_logits = gates * (grad_gates - (grad_gates * gates).sum(dim=1, keepdim=True)) / temperature
            grad_logits = grad_logits.reshape(gates.shape[0], -1)
            if need_mlp_w:
                grad_mlp_w = grad_logits.t() @ pooled
            if need_mlp_b and has_mlp_bias:
                grad_mlp_b = grad_logits.sum(dim=0)
            if grad_x is not None:
                grad_pooled = (grad_logits @ mlp_weight) / pixels
                grad_x.add_(grad_pooled.reshape(1, -1, 1, 1).to(grad_x.dtype))
        if grad_x is not None:
            grad_x = grad_x.to(folded_dtype)
        return grad_x, None, None, grad_mlp_w, grad_mlp_b, None, None, None, grad_cand, grad_bias, None, None


def fused_conv(x: torch.Tensor, gates: torch.Tensor, candidates: torch.Tensor, bias: Optional[torch.Tensor],
               stride: int = 1, padding: int = 0) -> torch.Tensor:
    batch = x.shape[0]
    interleaved = batch > 1 and _folds_interleaved(x)
    return FusedMixedConv.apply(_fold(x, interleaved), batch, interleaved, gates, candidates, bias, stride, padding)


def fused_gated_conv(x: torch.Tensor, mlp: nn.Linear, k: int, d: int, temperature: float,
                     candidates: torch.Tensor, bias: Optional[torch.Tensor], stride: int = 1,
                     padding: int = 0) -> torch.Tensor:
    batch = x.shape[0]
    interleaved = batch > 1 and _folds_interleaved(x)
    return FusedGatedConv.apply(_fold(x, interleaved), batch, interleaved, mlp.weight, mlp.bias, k, d,
                                temperature, candidates, bias, stride, padding)


def apply_formulation(formulation: str, x: torch.Tensor, gates: torch.Tensor, candidates: torch.Tensor,
                      bias: Optional[torch.Tensor], stride: int = 1, padding: int = 0) -> torch.Tensor:
    """The sparse-group conv of `x` for gates (B, k, d), candidate filters (k*C_out, C_in, K, K) and
    candidate biases (k*C_out), computed by `formulation` (one of FORMULATIONS)."""
    if formulation == "fused":
        return fused_conv(x, gates, candidates, bias, stride, padding)
    batch, k, d = gates.shape
    weight = mix_candidates(gates, candidates.reshape(k, d, -1))
    weight = weight.reshape(batch * candidates.shape[0] // k, *candidates.shape[1:])
    if bias is not None:
        bias = mix_candidates(gates, bias.view(k, d, -1)).reshape(-1)
    return per_sample_conv(x, weight, bias, stride, padding, formulation)


# --- formulation: auto --------------------------------------------------------------------------
# Which formulation is fastest depends on the CPU, the shape, the memory format and the dtype, so
# `auto` times them all once per shape (a training step's forward + backward of this one layer, on
# random data from a private generator: the global RNG stream is untouched) and keeps the fastest
# (`pick_formulation`), per machine (restore/utils/measured_choice.py). Only training measures:
# without gradients (validation, inference, batch 1) `auto` is the reference, whose inference speed
# the inference paths were tuned for.
CHOICES = ChoiceCache(CACHE_ENV, "sparse_group_formulations.json")
# A layer timed alone misses part of what `fused` saves inside a net (its backward's in-place
# pooling gradient, fewer autograd nodes and saved tensors): whole NSR steps ran `fused` 2-16 %
# faster than `grouped` on every CPU measured, while the layers alone timed `fused` up to 1.2x
# slower (the gray denoiser's 36x36 layer in bf16 on the Xeon, whose restore-train iteration `fused`
# made 1.1x faster; docs/performance.md). So `fused` is kept unless another formulation's layer is
# faster by more than this factor.
FUSED_SLACK = 1.25
# Raised when the rule that picks from the timings changes, so that choices cached under an older rule
# are measured anew (2: FUSED_SLACK).
PICK_RULE = 2


def pick_formulation(times: dict) -> str:
    """`auto`'s choice from measured {formulation: seconds} (see FUSED_SLACK; other ties: the first
    of FORMULATIONS, the reference)."""
    fastest = min(FORMULATIONS, key=times.__getitem__)
    return "fused" if times["fused"] <= FUSED_SLACK * times[fastest] else fastest


def shape_key(layer: "SparseGroupConv2d", x: torch.Tensor) -> str:
    layout = "channels_last" if _folds_interleaved(x) and not x.is_contiguous() else "nchw"
    dtype = str(_conv_dtype(x)).replace("torch.", "")
    return (f"{machine_id()} | pick {PICK_RULE} | {device_label(x.device)} {dtype} {layout} "
            f"{'x'.join(map(str, x.shape))} -> {layer.out_channels} K{layer.kernel_size} s{layer.stride} "
            f"k{layer.k} d{layer.d} bias {layer.bias is not None}")


def measure_formulations(layer: "SparseGroupConv2d", x: torch.Tensor, reps: int = 3,
                         names=FORMULATIONS) -> dict:
    """Min seconds of a forward + backward of a copy of `layer` on `x`'s shape, per formulation;
    the formulations take turns, after one warm-up turn. A softmax gate runs as in training; other
    gates (gumbel draws from the global RNG) get fixed random gates."""
    probe = copy.deepcopy(layer)
    gen = torch.Generator(device=x.device).manual_seed(0)
    data = torch.empty_like(x).copy_(torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype))
    data.requires_grad_()
    gates = None
    if layer.gate != "softmax":
        gates = torch.rand(x.shape[0], layer.k, layer.d, generator=gen, device=x.device).to(x.dtype)
    grad = None
    times = {name: [] for name in names}
    for rep in range(reps + 1):
        for name in names:
            probe.formulation = name
            synchronize(x.device)
            t0 = time.perf_counter()
            out = probe(data, gates=gates)
            if grad is None:
                grad = torch.empty_like(out).copy_(torch.randn(out.shape, generator=gen, device=out.device,
                                                               dtype=out.dtype))
            out.backward(grad)
            synchronize(x.device)
            if rep:
                times[name].append(time.perf_counter() - t0)
            data.grad = None
            probe.zero_grad(set_to_none=True)
    return {name: min(t) for name, t in times.items()}


def choose_formulation(layer: "SparseGroupConv2d", x: torch.Tensor) -> str:
    """What `auto` runs for `layer` on `x` (see above)."""
    if x.shape[0] == 1 or not torch.is_grad_enabled() or torch.compiler.is_compiling():
        return FORMULATIONS[0]

    def measure():
        with torch.enable_grad():
            return measure_formulations(layer, x)

    return CHOICES.choose(shape_key(layer, x), FORMULATIONS, measure, pick_formulation)


def one_hot_over_groups(logits: torch.Tensor) -> torch.Tensor:
    """A one-hot (B, k, d) tensor marking the largest logit along k for each cardinal group."""
    return torch.zeros_like(logits).scatter_(1, logits.argmax(dim=1, keepdim=True), 1.0)


class SparseGroupConv2d(nn.Module):
    """A 'same'-padded conv with k sparsity groups x d cardinal groups, mixed per sample by a gate.

    gate: softmax (over k, the reference), sigmoid (independent per group) or gumbel (straight-through
    hard choice with Gumbel noise in training, hard top-1 without noise in eval). `temperature`
    divides the logits. With weight_norm each of the k*C_out candidate filters is normalised
    separately (g * v / ||v||) before mixing, as in the reference.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, bias: bool = True,
                 k: int = 4, d: int = 16, gate: GateType = "softmax", temperature: float = 1.0,
                 weight_norm: bool = False, formulation: Formulation = "auto"):
        super().__init__()
        check_formulation(formulation)
        if k < 1 or d < 1 or out_ch % d:
            raise ValueError(f"need k >= 1 and d >= 1 dividing out_ch={out_ch}, got k={k}, d={d}")
        if gate not in ("softmax", "sigmoid", "gumbel"):
            raise ValueError(f"unknown gate {gate!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.in_channels, self.out_channels = in_ch, out_ch
        self.kernel_size, self.stride, self.padding = kernel_size, stride, kernel_size // 2
        self.k, self.d, self.gate, self.temperature = k, d, gate, temperature
        self.formulation = formulation
        shape = (k * out_ch, in_ch, kernel_size, kernel_size)
        if weight_norm:
            self.weight_v = nn.Parameter(torch.empty(shape))
            self.weight_g = nn.Parameter(torch.empty(k * out_ch, 1, 1, 1))
        else:
            self.weight = nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.empty(k * out_ch)) if bias else None
        reset_conv_parameters(self._stored_weight(), self.bias)
        if weight_norm:
            with torch.no_grad():
                self.weight_g.copy_(self.weight_v.flatten(1).norm(dim=1).view(-1, 1, 1, 1))
        self.mlp = nn.Linear(in_ch, k * d)

    def _stored_weight(self) -> torch.Tensor:
        return self.weight_v if hasattr(self, "weight_v") else self.weight

    @property
    def candidate_weight(self) -> torch.Tensor:
        """The k*C_out candidate filters (after weight norm when enabled)."""
        if hasattr(self, "weight_v"):
            return normalised_weight(self.weight_g, self.weight_v)
        return self.weight

    def gate_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, k, d) logits from the global average of the layer input."""
        return self.mlp(x.mean(dim=(2, 3))).view(x.shape[0], self.k, self.d)

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        """(B, k, d) mixing weights gamma for the input batch `x`."""
        logits = self.gate_logits(x) / self.temperature
        if self.gate == "softmax":
            return logits.softmax(dim=1)
        if self.gate == "sigmoid":
            return logits.sigmoid()
        if not self.training:
            return one_hot_over_groups(logits)
        uniform = torch.rand_like(logits).clamp_(1e-10, 1.0 - 1e-7)
        soft = (logits - torch.log(-torch.log(uniform))).softmax(dim=1)
        return one_hot_over_groups(soft) - soft.detach() + soft

    def mixed_kernel(self, gates: torch.Tensor):
        """Per-sample kernels (B*C_out, C_in, K, K) and biases (B*C_out) for gates (B, k, d)."""
        batch = gates.shape[0]
        candidates = self.candidate_weight
        weight = mix_candidates(gates, candidates.reshape(self.k, self.d, -1))
        weight = weight.reshape(batch * self.out_channels, *candidates.shape[1:])
        bias = None
        if self.bias is not None:
            bias = mix_candidates(gates, self.bias.view(self.k, self.d, -1)).reshape(-1)
        return weight, bias

    def forward(self, x: torch.Tensor, gates: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Convolve; `gates` (B, k, d) overrides the layer's own gate (for tests and analysis)."""
        formulation = choose_formulation(self, x) if self.formulation == "auto" else self.formulation
        if gates is None and formulation == "fused" and self.gate == "softmax":
            return fused_gated_conv(x, self.mlp, self.k, self.d, self.temperature, self.candidate_weight,
                                    self.bias, self.stride, self.padding)
        if gates is None:
            gates = self.gates(x)
        return apply_formulation(formulation, x, gates.to(x.dtype), self.candidate_weight, self.bias,
                                 self.stride, self.padding)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, k={self.k}, d={self.d}, gate={self.gate}, "
                f"temperature={self.temperature}, weight_norm={hasattr(self, 'weight_v')}, "
                f"formulation={self.formulation}, "
                f"bias={self.bias is not None}")


def check_formulation(formulation: str) -> None:
    if formulation != "auto" and formulation not in FORMULATIONS:
        raise ValueError(f"unknown formulation {formulation!r} (auto, {', '.join(FORMULATIONS)})")


def set_formulation(net: nn.Module, formulation: str) -> int:
    """Make every sparse-group conv of `net` run `formulation`; returns how many there are."""
    check_formulation(formulation)
    layers = [m for m in net.modules() if isinstance(m, SparseGroupConv2d)]
    for layer in layers:
        layer.formulation = formulation
    return len(layers)


@CONV_VARIANTS.register(name="sparse_group")
class SparseGroupConvVariant(ConvVariant):
    """`conv: {type: sparse_group, k, d, gate, temperature, weight_norm, formulation}`: the block
    convs become SparseGroupConv2d. weight_norm: null follows the arch (WDSR/NSR: on, EDSR/DnCNN:
    off); formulation: how the per-sample conv runs (auto, or one of FORMULATIONS)."""

    positions = frozenset({"body"})

    def __init__(self, k: int = 4, d: int = 16, gate: GateType = "softmax", temperature: float = 1.0,
                 weight_norm: Optional[bool] = None, formulation: Formulation = "auto"):
        check_formulation(formulation)
        if k < 1 or d < 1:
            raise ValueError(f"k and d must be >= 1, got k={k}, d={d}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.k, self.d, self.gate, self.temperature, self.weight_norm = k, d, gate, temperature, weight_norm
        self.formulation = formulation

    def build(self, in_ch, out_ch, kernel_size, stride, bias, weight_norm):
        if out_ch % self.d:
            raise ValueError(f"d={self.d} cardinal groups must divide the {out_ch} output channels "
                             f"of every block conv")
        use_wn = weight_norm if self.weight_norm is None else self.weight_norm
        return SparseGroupConv2d(in_ch, out_ch, kernel_size, stride, bias, self.k, self.d,
                                 self.gate, self.temperature, use_wn, self.formulation)
