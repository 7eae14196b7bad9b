"""The NSR sparse-group convolution (Fan et al., "Neural Sparse Representation for Image
Restoration", NeurIPS 2020), as in the reference ychfan/pt_ir `models/wdsr_nsr.py`.

The layer stores k candidate kernel banks (k sparsity groups); its C_out filters are split into d
cardinal groups of C_out/d filters. A gate pools the layer input over space, maps it with one
Linear(C_in, k*d) and normalises over k for each cardinal group, giving per sample a weight
gamma[b, i, j] for sparsity group i in cardinal group j. Because convolution is linear, weighting the
k candidate outputs equals convolving once with the gamma-weighted kernel, so each sample gets its
own mixed kernel (and bias) and the whole batch runs as ONE grouped conv: the cost of a plain
C_in -> C_out conv plus a small per-sample overhead (pool, Linear, kernel mixing), independent of k.

Candidate filter index = i * C_out + j * (C_out / d) + c (sparsity group i, cardinal group j,
filter c), the reference's layout, so its weights map one to one.
"""
from typing import Literal, Optional

import torch
from torch import nn
from torch.nn import functional as F

from restore.archs.layers.conv_factory import CONV_VARIANTS, ConvVariant
from restore.archs.layers.weight_norm import normalised_weight, reset_conv_parameters

GateType = Literal["softmax", "sigmoid", "gumbel"]


def _is_batch_interleaved(x: torch.Tensor) -> bool:
    """Memory order (H, W, B, C): what per_sample_conv returns for a channels_last batch."""
    return x.permute(2, 3, 0, 1).is_contiguous()


def per_sample_conv(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                    stride: int = 1, padding: int = 0) -> torch.Tensor:
    """Convolve sample b of `x` (B, C_in, H, W) with its own kernel weight[b*C_out:(b+1)*C_out].

    The batch is folded into the channels and run as one conv with groups=B. A channels_last batch
    is folded as (H, W, B*C), which is channels_last for the folded (1, B*C, H, W) view, so the conv
    stays on the channels_last path (a plain `view(1, -1, H, W)` would make PyTorch see NCHW and
    silently run the slow path); the result comes back in (H, W, B, C) memory order, which the next
    sparse-group conv folds without a copy.
    """
    batch, _, height, width = x.shape
    if batch == 1:
        return F.conv2d(x, weight, bias, stride, padding)
    if _is_batch_interleaved(x) or x.is_contiguous(memory_format=torch.channels_last):
        folded = x.permute(2, 3, 0, 1).reshape(1, height, width, -1).permute(0, 3, 1, 2)
        out = F.conv2d(folded, weight, bias, stride, padding, groups=batch)
        out = out.contiguous(memory_format=torch.channels_last)
        out_h, out_w = out.shape[-2:]
        return out.permute(0, 2, 3, 1).view(out_h, out_w, batch, -1).permute(2, 3, 0, 1)
    out = F.conv2d(x.reshape(1, -1, height, width), weight, bias, stride, padding, groups=batch)
    return out.view(batch, -1, *out.shape[-2:])


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

    # per_sample_conv folds the batch into the channels: training prefers NCHW (memory_format.py)
    folds_batch = True

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, bias: bool = True,
                 k: int = 4, d: int = 16, gate: GateType = "softmax", temperature: float = 1.0,
                 weight_norm: bool = False):
        super().__init__()
        if k < 1 or d < 1 or out_ch % d:
            raise ValueError(f"need k >= 1 and d >= 1 dividing out_ch={out_ch}, got k={k}, d={d}")
        if gate not in ("softmax", "sigmoid", "gumbel"):
            raise ValueError(f"unknown gate {gate!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.in_channels, self.out_channels = in_ch, out_ch
        self.kernel_size, self.stride, self.padding = kernel_size, stride, kernel_size // 2
        self.k, self.d, self.gate, self.temperature = k, d, gate, temperature
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
        weight = torch.einsum("bkd,kdr->bdr", gates, candidates.reshape(self.k, self.d, -1))
        weight = weight.reshape(batch * self.out_channels, *candidates.shape[1:])
        bias = None
        if self.bias is not None:
            bias = torch.einsum("bkd,kdc->bdc", gates, self.bias.view(self.k, self.d, -1)).reshape(-1)
        return weight, bias

    def forward(self, x: torch.Tensor, gates: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Convolve; `gates` (B, k, d) overrides the layer's own gate (for tests and analysis)."""
        if gates is None:
            gates = self.gates(x)
        weight, bias = self.mixed_kernel(gates.to(x.dtype))
        return per_sample_conv(x, weight, bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, k={self.k}, d={self.d}, gate={self.gate}, "
                f"temperature={self.temperature}, weight_norm={hasattr(self, 'weight_v')}, "
                f"bias={self.bias is not None}")


@CONV_VARIANTS.register(name="sparse_group")
class SparseGroupConvVariant(ConvVariant):
    """`conv: {type: sparse_group, k, d, gate, temperature, weight_norm}`: the block convs become
    SparseGroupConv2d. weight_norm: null follows the arch (WDSR/NSR: on, EDSR/DnCNN: off)."""

    positions = frozenset({"body"})

    def __init__(self, k: int = 4, d: int = 16, gate: GateType = "softmax", temperature: float = 1.0,
                 weight_norm: Optional[bool] = None):
        if k < 1 or d < 1:
            raise ValueError(f"k and d must be >= 1, got k={k}, d={d}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.k, self.d, self.gate, self.temperature, self.weight_norm = k, d, gate, temperature, weight_norm

    def build(self, in_ch, out_ch, kernel_size, stride, bias, weight_norm):
        if out_ch % self.d:
            raise ValueError(f"d={self.d} cardinal groups must divide the {out_ch} output channels "
                             f"of every block conv")
        use_wn = weight_norm if self.weight_norm is None else self.weight_norm
        return SparseGroupConv2d(in_ch, out_ch, kernel_size, stride, bias, self.k, self.d,
                                 self.gate, self.temperature, use_wn)
