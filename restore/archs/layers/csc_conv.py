"""Convolutional sparse coding (CSC) layers as drop-in convolutions (after SDNet, Dai et al. 2022).

A CSC layer returns codes z (one channel per atom) that approximately solve the LASSO

    min_z  1/2 ||x - A z||^2 + lambda ||z||_1        (optionally z >= 0)

where A^T = conv2d(., W, stride, padding) and A = conv_transpose2d(., W, ...) share the weight W
[atoms, in_ch, k, k], so A is exactly the adjoint of A^T for every input size (the output padding
is chosen per input so A z has the size of x, odd sizes and stride 2 included). The codes come
from `n_iter` unrolled proximal-gradient steps from z = 0: ISTA, with FISTA momentum from the third
step; autograd runs through all of them, so the dictionary learns end to end.

Step size 1/L, L = ||A||^2 bounded for every input size at once: the zero-padded operator is a
compression of the infinite-plane convolution, whose norm is the sup over frequencies of the
largest singular value of its (polyphase, for stride > 1) symbol. The symbol is sampled on an
N x N FFT grid (N = 16 x its degree n) and the grid maximum is divided by 1 - 2 (pi n / N)^2:
by Bernstein's inequality that makes L a true upper bound (about 8% above ||A||^2), so the
steps never diverge, whatever the image size.

L depends on the weight only. It is recomputed when the layer is built, when a state_dict is loaded,
by `project_atoms_()` and, as a fallback, by a training-mode forward that finds the weight changed
since (e.g. an optimiser step without `project_all_atoms_`); an eval-mode forward never recomputes
it, so it costs exactly the 2 n_iter - 1 convolution passes that FlopCounterMode counts.

The layer returns L z by default (`scale_output`): the same codes in the units of a conv's output.

SDNet's own modes (docs/csc.md): `step: sdnet` takes eta = 0.9 / L_pi, L_pi the power-iteration
estimate of ||A||^2 at the current input size (at most 50 iterations, tolerance 1e-5 on the squared
change of the unit vector, warm-started from the last estimate for that size; recomputed when the
size or the weight changes), where `step: bound` (the default) takes 1 / L for the size-independent
bound above. `momentum: sdnet` evaluates the gradient at the current codes z while stepping from the
extrapolated point y (z+ = prox(y + eta A^T (x - A z))), where `momentum: fista` (the default,
textbook FISTA) evaluates it at y. Both differ only from the third step on.

Atoms are kept at unit norm by projection (after each optimiser step: call
`project_all_atoms_(net)` after `optimizer.step()`; a training forward also projects weights that
changed without it). Lambda is a buffer, or a parameter with `learn_lambda` (per layer, or per atom
with `lambda_per_atom`); at test time `lambda_override` (an absolute value) and `lambda_scale` (a
multiplier, a float or one per sample) change it without touching the trained value.

This module also registers `plain_nobias`: plain convolutions without any additive bias (the
bias-free baseline of Mohan et al., ICLR 2020), because the `plain` variant has no bias option.
"""
import math
from typing import Literal, Optional, Union

import torch
from torch import nn
from torch.nn import functional as F

from restore.archs.layers.conv_factory import CONV_VARIANTS, ConvVariant, plain_conv

StepRule = Literal["bound", "sdnet"]
MomentumRule = Literal["fista", "sdnet"]
SDNET_STEP_FACTOR = 0.9      # SDNet: eta = 0.9 / (power-iteration estimate of ||A||^2)
SDNET_POWER_ITERATIONS = 50
SDNET_POWER_TOL = 1e-5       # on the squared change of the unit vector between iterations
GRID_PER_DEGREE = 16  # frequencies per axis per unit of symbol degree: L overestimates by < 9%
ROUNDING_MARGIN = 1e-4  # the symbol's eigenvalues are computed in float32


def symbol_degree(kernel_size: int, stride: int, padding: int) -> int:
    """Taps per polyphase component minus one: the trigonometric degree, per axis, of the symbol
    of conv2d(., W, stride, padding) acting on the stride x stride polyphase components of x."""
    return (kernel_size - 1 - padding) // stride - (-padding // stride)


def bernstein_factor(degree: int, grid: int) -> float:
    """sup over the frequency plane <= this x the max over a grid x grid sampling, for a
    nonnegative trigonometric polynomial of this degree per axis (Bernstein's inequality bounds its
    second derivatives by degree^2 x its sup; the maximum is within pi / grid of a grid point)."""
    return 1.0 / (1.0 - 2.0 * (math.pi * degree / grid) ** 2) if degree else 1.0


def polyphase_kernel(weight: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
    """The stride-1 kernel [C_out, C_in * s^2, Q, Q] acting on the s x s polyphase components of x
    that equals conv2d(x, weight, stride=s, padding=padding) on the infinite plane."""
    c_out, c_in, k, _ = weight.shape
    s = stride
    taps = symbol_degree(k, s, padding) + 1
    offset = -padding - s * (-padding // s)  # where tap 0 lands in the padded s * taps grid
    padded = weight.new_zeros(c_out, c_in, s * taps, s * taps)
    padded[:, :, offset:offset + k, offset:offset + k] = weight
    phases = padded.view(c_out, c_in, taps, s, taps, s).permute(0, 1, 3, 5, 2, 4)
    return phases.reshape(c_out, c_in * s * s, taps, taps)


@torch.no_grad()
def operator_norm_sq(weight: torch.Tensor, stride: int = 1, padding: Optional[int] = None) -> float:
    """An upper bound, valid for every input size, on ||conv2d(., weight, stride, padding)||^2,
    at most ~8.5% above the infinite-plane norm: the largest squared singular value of the
    (polyphase) symbol over a frequency grid, times the Bernstein factor."""
    k = weight.shape[-1]
    padding = k // 2 if padding is None else padding
    kernel = polyphase_kernel(weight.detach().float(), stride, padding)
    degree = symbol_degree(k, stride, padding)
    grid = max(1, GRID_PER_DEGREE * degree)
    # real kernel: G(-w) = conj G(w), so half the plane (rfft2) holds every singular value
    symbol = torch.fft.rfft2(kernel, s=(grid, grid))  # [C_out, C_in s^2, N, N/2+1]
    rows, cols = symbol.shape[:2]
    if min(rows, cols) == 1:
        top = symbol.abs().square().sum(dim=(0, 1))
    else:
        # the smaller of G G^H and G^H G, one per frequency (contiguous: strided complex matmul
        # is two orders of magnitude slower on the CPU)
        order = (2, 3, 0, 1) if rows <= cols else (2, 3, 1, 0)
        symbol = symbol.permute(order).contiguous()
        gram = symbol @ symbol.conj().transpose(-1, -2).contiguous()
        top = torch.linalg.eigvalsh(gram)[..., -1]
    return float(top.max()) * bernstein_factor(degree, grid) * (1.0 + ROUNDING_MARGIN)


def _check_rules(step, momentum) -> None:
    if step not in ("bound", "sdnet"):
        raise ValueError(f"step must be bound or sdnet, got {step!r}")
    if momentum not in ("fista", "sdnet"):
        raise ValueError(f"momentum must be fista or sdnet, got {momentum!r}")


def _refresh_after_load(module: "CSCConv2d", _incompatible_keys) -> None:
    module.refresh_step_size()


class CSCConv2d(nn.Module):
    """Codes of x under a convolutional dictionary of `out_ch` atoms [in_ch, k, k] (see module doc).

    n_iter: unrolled steps (2 n_iter - 1 conv passes); nonneg: codes >= 0 (one-sided threshold);
    fista: momentum from the third step; lmbda: the l1 weight, for unit-norm atoms;
    scale_output: return L z rather than z (same codes, in the units of a conv output: one step
    is then exactly shrink(A^T x, lambda)). Without it the codes are about 1/L the size of a plain
    conv's output (L ~ 50 for 32 atoms on a gray image) and a net without normalisation after the
    layer barely trains (a DnCNN-8 stayed at "predict no noise" for 60 Adam steps).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, n_iter: int = 5,
                 lmbda: float = 0.1, learn_lambda: bool = False, lambda_per_atom: bool = False,
                 nonneg: bool = True, fista: bool = True, scale_output: bool = True,
                 step: StepRule = "bound", momentum: MomentumRule = "fista"):
        super().__init__()
        _check_rules(step, momentum)
        if n_iter < 1:
            raise ValueError(f"n_iter must be >= 1, got {n_iter}")
        if lmbda < 0:
            raise ValueError(f"lmbda must be >= 0, got {lmbda}")
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.in_channels, self.out_channels = in_ch, out_ch
        self.kernel_size, self.stride, self.padding = kernel_size, stride, kernel_size // 2
        self.n_iter, self.nonneg, self.fista, self.scale_output = n_iter, nonneg, fista, scale_output
        self.step, self.momentum = step, momentum
        self._power_vectors: dict = {}   # step 'sdnet': the last top singular vector per code size
        self._power_cache: dict = {}     # (input size, weight version) -> L_pi
        self.weight = nn.Parameter(torch.empty(out_ch, in_ch, kernel_size, kernel_size))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        lam = torch.full((out_ch if lambda_per_atom else 1,), float(lmbda))
        if learn_lambda:
            self.lmbda = nn.Parameter(lam)
        else:
            self.register_buffer("lmbda", lam)
        # ||A||^2; derived from the weight, so not saved (recomputed on load)
        self.register_buffer("lipschitz", torch.ones(()), persistent=False)
        self.lambda_override: Optional[float] = None
        self.lambda_scale: Union[float, torch.Tensor] = 1.0
        self._weight_version = -1
        self.register_load_state_dict_post_hook(_refresh_after_load)
        self.project_atoms_()

    # --- the dictionary and its step size ------------------------------------------------------
    def after_optimizer_step(self) -> None:
        """The trainer's post-step hook (restore.archs.after_optimizer_step): back onto the constraint set."""
        self.project_atoms_()

    @torch.no_grad()
    def project_atoms_(self) -> None:
        """Rescale every atom to unit l2 norm (the constraint set), then refresh the step size."""
        norms = self.weight.flatten(1).norm(dim=1).clamp_min(1e-12)
        self.weight.div_(norms.view(-1, 1, 1, 1))
        self.refresh_step_size()

    @torch.no_grad()
    def refresh_step_size(self) -> None:
        """Recompute L >= ||A||^2 for the current weight (a no-op on the meta device)."""
        if not self.weight.is_meta:
            self.lipschitz.fill_(max(operator_norm_sq(self.weight, self.stride, self.padding), 1e-12))
        self._weight_version = self.weight._version

    def _weight_changed(self) -> bool:
        return self.weight._version != self._weight_version

    @torch.no_grad()
    def power_iteration(self, size) -> float:
        """SDNet's estimate of ||A||^2 for inputs of spatial `size`: power iteration on A^T A over
        one code map, warm-started from the previous vector for this size (seeded randn at first)."""
        key = (int(size[0]), int(size[1]), self.weight._version)
        if key in self._power_cache:
            return self._power_cache[key]
        weight = self.weight.detach()
        code_hw = tuple((int(n) + 2 * self.padding - self.kernel_size) // self.stride + 1 for n in size)
        v = self._power_vectors.get(code_hw)
        if v is None:
            v = torch.randn(1, self.out_channels, *code_hw, generator=torch.Generator().manual_seed(0))
        v = v.to(weight)
        change, steps = math.inf, 0
        while steps < SDNET_POWER_ITERATIONS and change > SDNET_POWER_TOL:
            nxt = F.conv2d(self._synthesis_with(weight, v, size), weight, None, self.stride, self.padding)
            nxt = F.normalize(nxt.flatten(), dim=0).view_as(v)
            change = float((nxt - v).square().sum())
            v, steps = nxt, steps + 1
        estimate = float(self._synthesis_with(weight, v, size).square().sum())
        self._power_vectors[code_hw] = v
        self._power_cache = {k: e for k, e in self._power_cache.items() if k[2] == self.weight._version}
        self._power_cache[key] = estimate
        return estimate

    def step_size(self, size):
        """eta for inputs of spatial `size`: 1 / L (step 'bound'), 0.9 / L_pi (step 'sdnet')."""
        if self.step == "sdnet":
            return SDNET_STEP_FACTOR / max(self.power_iteration(size), 1e-12)
        return 1.0 / self.lipschitz

    # --- the two operators ---------------------------------------------------------------------
    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """A^T x: image (in_ch channels) to code domain (out_ch channels, 1/stride resolution)."""
        return F.conv2d(x, self.weight, None, self.stride, self.padding)

    def synthesis(self, z: torch.Tensor, size) -> torch.Tensor:
        """A z, of spatial `size` (the size of the x the codes were computed from)."""
        return self._synthesis_with(self.weight, z, size)

    def _synthesis_with(self, weight: torch.Tensor, z: torch.Tensor, size) -> torch.Tensor:
        in_h = (z.shape[-2] - 1) * self.stride - 2 * self.padding + self.kernel_size
        in_w = (z.shape[-1] - 1) * self.stride - 2 * self.padding + self.kernel_size
        extra = (int(size[0]) - in_h, int(size[1]) - in_w)
        return F.conv_transpose2d(z, weight, None, self.stride, self.padding, extra)

    # --- lambda --------------------------------------------------------------------------------
    def trained_lambda(self) -> torch.Tensor:
        """The layer's own lambda (1 or out_ch values, >= 0)."""
        return self.lmbda.clamp_min(0)

    def effective_lambda(self) -> torch.Tensor:
        """Lambda as used: override or trained, times lambda_scale; shape (1 or B, 1 or C, 1, 1)."""
        if self.lambda_override is not None:
            lam = torch.full((1,), float(self.lambda_override), device=self.lmbda.device, dtype=self.lmbda.dtype)
        else:
            lam = self.trained_lambda()
        lam = lam.view(1, -1, 1, 1)
        scale = self.lambda_scale
        if isinstance(scale, torch.Tensor):
            return lam * scale.to(lam).view(-1, 1, 1, 1)
        return lam * scale if scale != 1.0 else lam

    # --- the codes -----------------------------------------------------------------------------
    def shrink(self, u: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
        """The proximal map of threshold * ||.||_1 (+ the z >= 0 constraint)."""
        if self.nonneg:
            return torch.clamp_min(u - threshold, 0.0)  # not F.relu: its backward keeps the output, which archs may ReLU in place
        return torch.sign(u) * F.relu(u.abs() - threshold)

    def solve(self, x: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
        """`n_iter` proximal-gradient steps from z = 0 for the given lambda (broadcast over B, C)."""
        size = x.shape[-2:]
        eta = self.step_size(size)
        threshold = lam * eta
        # the step folded into the analysis weight: one element-wise pass less per step
        step_weight = self.weight * eta
        step0 = F.conv2d(x, step_weight, None, self.stride, self.padding)  # eta A^T x, used by every step
        z = self.shrink(step0, threshold)
        z_prev, t = z, 1.0
        for _ in range(self.n_iter - 1):
            t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
            momentum = (t - 1.0) / t_next if self.fista else 0.0
            y = torch.lerp(z_prev, z, 1.0 + momentum) if momentum else z  # z + momentum (z - z_prev)
            at = z if self.momentum == "sdnet" else y  # where the gradient is taken
            gradient_step = F.conv2d(self.synthesis(at, size), step_weight, None, self.stride, self.padding)
            z_prev, z = z, self.shrink(y - gradient_step + step0, threshold)
            t = t_next
        return z

    def reconstruction_residual(self, x: torch.Tensor) -> torch.Tensor:
        """||x - A z||^2 / (C H W) per sample, z the codes at the current lambda: how much of x the
        dictionary leaves unexplained (grows with the noise level)."""
        z = self.solve(x, self.effective_lambda())
        return (x - self.synthesis(z, x.shape[-2:])).square().flatten(1).mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self._weight_changed():
            self.project_atoms_()
        z = self.solve(x, self.effective_lambda())
        if not self.scale_output:
            return z
        return z * self.lipschitz if self.step == "bound" else z / self.step_size(x.shape[-2:])

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, n_iter={self.n_iter}, lambda_shape={tuple(self.lmbda.shape)}, "
                f"learn_lambda={isinstance(self.lmbda, nn.Parameter)}, nonneg={self.nonneg}, "
                f"fista={self.fista}, scale_output={self.scale_output}, step={self.step}, momentum={self.momentum}")


def csc_layers(model: nn.Module) -> list[CSCConv2d]:
    """Every CSC layer of a model, in module order (the first is the one that sees the image)."""
    return [m for m in model.modules() if isinstance(m, CSCConv2d)]


def project_all_atoms_(model: nn.Module) -> int:
    """Project every CSC layer's atoms to unit norm; call after each `optimizer.step()`.
    Returns the number of CSC layers (0 for a net without any: then it does nothing)."""
    layers = csc_layers(model)
    for layer in layers:
        layer.project_atoms_()
    return len(layers)


@CONV_VARIANTS.register(name="csc")
class CSCConvVariant(ConvVariant):
    """`conv: {type: csc, where: first | all, n_iter, lmbda, learn_lambda, lambda_per_atom, nonneg,
    fista, scale_output, step: bound | sdnet, momentum: fista | sdnet}` (see CSCConv2d).
    first: only the conv that sees the image (SDNet-18's stem); all: that conv and every block conv
    (SDNet-18-all). Tail and skip convs stay plain: their output is the image (or the noise) itself,
    not a code. CSC layers have no bias and ignore the arch's weight norm."""

    def __init__(self, where: Literal["first", "all"] = "first", n_iter: int = 5, lmbda: float = 0.1,
                 learn_lambda: bool = False, lambda_per_atom: bool = False, nonneg: bool = True,
                 fista: bool = True, scale_output: bool = True, step: StepRule = "bound",
                 momentum: MomentumRule = "fista"):
        _check_rules(step, momentum)
        if n_iter < 1:
            raise ValueError(f"n_iter must be >= 1, got {n_iter}")
        if lmbda < 0:
            raise ValueError(f"lmbda must be >= 0, got {lmbda}")
        self.positions = frozenset({"first"} if where == "first" else {"first", "body"})
        self.options = {"n_iter": n_iter, "lmbda": lmbda, "learn_lambda": learn_lambda,
                        "lambda_per_atom": lambda_per_atom, "nonneg": nonneg, "fista": fista,
                        "scale_output": scale_output, "step": step, "momentum": momentum}

    def build(self, in_ch, out_ch, kernel_size, stride, bias, weight_norm):
        return CSCConv2d(in_ch, out_ch, kernel_size, stride, **self.options)


@CONV_VARIANTS.register(name="plain_nobias")
class BiasFreePlainConv(ConvVariant):
    """Plain convolutions with no bias anywhere, whatever the arch asks (with `use_bn: false` in
    DnCNN this gives the bias-free denoiser: the net is then positively homogeneous)."""

    def build(self, in_ch, out_ch, kernel_size, stride, bias, weight_norm):
        return plain_conv(in_ch, out_ch, kernel_size, stride, False, weight_norm)
