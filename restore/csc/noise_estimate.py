"""A content-robust estimate of the level of additive white Gaussian noise in an image.

Donoho and Johnstone's wavelet rule: the finest diagonal Haar detail HH = (a - b - c + d) / 2 of
each 2x2 block has, for white noise of level sigma, exactly standard deviation sigma, while natural
image content puts little energy there except at edges; the median absolute value, which ignores
those few large coefficients, gives sigma = median(|HH|) / 0.6745 (0.6745 = the Gaussian's
median |z|). This is what auto lambda measures when the first CSC layer's residual is dominated by
image content rather than noise (README, CSC layers).
"""
import torch

GAUSS_MAD = 0.6744897501960817  # median of |N(0, 1)|


def estimate_noise_sigma(x: torch.Tensor) -> torch.Tensor:
    """Noise level of each sample of an (N, C, H, W) batch, in the units of x (all channels pooled)."""
    if x.dim() != 4 or min(x.shape[-2:]) < 2:
        raise ValueError(f"expected an (N, C, H, W) batch with H, W >= 2, got {tuple(x.shape)}")
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    x = x[..., :h, :w].float()
    hh = (x[..., 0::2, 0::2] - x[..., 0::2, 1::2] - x[..., 1::2, 0::2] + x[..., 1::2, 1::2]) / 2
    return hh.abs().flatten(1).median(dim=1).values / GAUSS_MAD
