"""The test-time lambda rule of a CSC net: lambda multiplier m = slope * f + intercept, clipped,
with f a per-image feature of the first CSC layer's input x (`feature`):

- `noise_sigma` (what restore-csc-calibrate fits by default): the wavelet MAD estimate of the noise
  level of x (restore/csc/noise_estimate.py), which image content hardly moves;
- `sqrt_residual`: sqrt(r), r = ||x - A z||^2 / (C H W) the layer's reconstruction residual at the
  trained lambda (for noise of level sigma r grows like sigma^2, the best threshold like sigma);
- `residual`: r itself (SDNet's straight line).

The residual features are dominated by image content on natural images (README, CSC layers); they
are kept for the comparison. The multiplier scales the trained lambda of the layers named by `apply_to`.

Stored as a small JSON file beside the checkpoint: `<checkpoint without .pth>.csc_lambda.json`,
holding the rule and the calibration points it was fitted to.
"""
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import torch

from restore.utils.errors import RestoreError
from restore.utils.img_io import atomic_write_bytes

FORMAT = "restore-csc-lambda-fit/1"
Feature = Literal["noise_sigma", "sqrt_residual", "residual"]
FEATURES = ("noise_sigma", "sqrt_residual", "residual")
ApplyTo = Literal["all", "first"]


def fit_path_for(checkpoint: str) -> str:
    """Where the fit of a checkpoint lives: beside it, `<name>.csc_lambda.json`."""
    base, ext = os.path.splitext(checkpoint)
    return (base if ext in (".pth", ".pt", ".safetensors") else checkpoint) + ".csc_lambda.json"


def feature_of(measure, feature: Feature):
    """f of the raw measurement (a residual, or a noise level for noise_sigma); numpy or torch."""
    if feature == "sqrt_residual":
        return measure.clamp_min(0).sqrt() if isinstance(measure, torch.Tensor) else np.sqrt(measure)
    return measure


@dataclass
class LambdaFit:
    slope: float
    intercept: float
    m_min: float                 # the multiplier is clipped to the calibrated range
    m_max: float
    feature: Feature = "sqrt_residual"
    apply_to: ApplyTo = "all"
    points: list = field(default_factory=list)   # [{sigma, residual, noise_sigma, best_multiplier, ...}]
    info: dict = field(default_factory=dict)     # what it was calibrated on

    @classmethod
    def from_points(cls, measures, best_multipliers, m_range, feature: Feature = "sqrt_residual",
                    apply_to: ApplyTo = "all", points=(), info=None) -> "LambdaFit":
        """Least-squares line through (f(measure), best multiplier); a constant for one point."""
        if feature not in FEATURES:
            raise RestoreError(f"csc lambda fit: unknown feature {feature!r} (one of {', '.join(FEATURES)})")
        x = feature_of(np.asarray(measures, dtype=np.float64), feature)
        y = np.asarray(best_multipliers, dtype=np.float64)
        if len(x) == 0:
            raise RestoreError("csc lambda fit: no calibration points")
        if len(x) == 1 or np.ptp(x) == 0:
            slope, intercept = 0.0, float(y.mean())
        else:
            slope, intercept = (float(v) for v in np.polyfit(x, y, 1))
        return cls(slope, intercept, float(min(m_range)), float(max(m_range)), feature, apply_to,
                   list(points), dict(info or {}))

    def multiplier(self, measure: torch.Tensor) -> torch.Tensor:
        """The lambda multiplier for each measurement (a tensor of any shape) of this fit's feature."""
        return (self.slope * feature_of(measure, self.feature) + self.intercept).clamp(self.m_min, self.m_max)

    def save(self, path: str) -> None:
        data = {"format": FORMAT, **asdict(self)}
        atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode())

    @classmethod
    def load(cls, path: str) -> "LambdaFit":
        if not os.path.isfile(path):
            raise RestoreError(f"{path}: no CSC lambda fit there (make one with restore-csc-calibrate)")
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            raise RestoreError(f"{path}: not a readable CSC lambda fit ({e})") from None
        if not isinstance(data, dict) or data.pop("format", None) != FORMAT:
            raise RestoreError(f"{path}: not a CSC lambda fit (expected format {FORMAT})")
        try:
            fit = cls(**data)
        except TypeError as e:
            raise RestoreError(f"{path}: malformed CSC lambda fit ({e})") from None
        if fit.feature not in FEATURES:
            raise RestoreError(f"{path}: unknown feature {fit.feature!r} (one of {', '.join(FEATURES)})")
        return fit
