"""Setting lambda on every CSC layer of a trained net at test time: a fixed value, a multiplier of the
trained values, or "auto" (per image, from a feature of the first CSC layer's input).

Auto mode is a forward pre-hook on the first CSC layer (the one that sees the image): it measures the
fit's feature of its input (the noise-level estimate, or the layer's residual at the trained lambda:
one extra pass of that layer plus one synthesis), sets every target layer's `lambda_scale` to the
fit's multiplier (one per sample) and lets the forward run.
"""
from typing import Optional, Union

import torch
from torch import nn

from restore.archs.layers.csc_conv import CSCConv2d, csc_layers
from restore.csc.lambda_fit import ApplyTo, Feature, LambdaFit, fit_path_for
from restore.csc.noise_estimate import estimate_noise_sigma
from restore.utils.errors import RestoreError


class _StopForward(Exception):
    """Raised by a probe hook once it has what it needs, so the rest of the net is not run."""


def _layers(model: nn.Module) -> list[CSCConv2d]:
    layers = csc_layers(model)
    if not layers:
        raise RestoreError("the network has no CSC layers (use network_g.conv: {type: csc, ...})")
    return layers


def _targets(layers: list[CSCConv2d], apply_to: ApplyTo) -> list[CSCConv2d]:
    return layers[:1] if apply_to == "first" else layers


class _AutoLambda:
    def __init__(self, fit: LambdaFit, targets: list[CSCConv2d]):
        self.fit, self.targets = fit, targets

    @torch.no_grad()
    def __call__(self, first: CSCConv2d, args):
        for layer in self.targets:
            layer.lambda_scale = 1.0
        multiplier = self.fit.multiplier(measure(first, args[0], self.fit.feature))
        for layer in self.targets:
            layer.lambda_scale = multiplier


def measure(layer: CSCConv2d, x: torch.Tensor, feature: Feature) -> torch.Tensor:
    """The raw per-sample measurement behind `feature` for the input x of a CSC layer."""
    if feature == "noise_sigma":
        return estimate_noise_sigma(x)
    return layer.reconstruction_residual(x)


def reset_csc_lambda(model: nn.Module) -> None:
    """Back to the trained lambdas: no override, no scale, no auto hook."""
    for layer in csc_layers(model):
        # found by type rather than by handle, so deep copies of the net (EMA, FLOP counting) work too
        for key in [k for k, hook in layer._forward_pre_hooks.items() if isinstance(hook, _AutoLambda)]:
            del layer._forward_pre_hooks[key]
        layer.lambda_override, layer.lambda_scale = None, 1.0


def scale_csc_lambda(model: nn.Module, multiplier: Union[float, torch.Tensor], apply_to: ApplyTo = "all") -> None:
    """Trained lambda x `multiplier` (a float, or one value per sample) on the target layers; the
    other CSC layers go back to their trained lambda."""
    reset_csc_lambda(model)
    for layer in _targets(_layers(model), apply_to):
        layer.lambda_scale = multiplier


def set_csc_lambda(model: nn.Module, value: Union[None, float, LambdaFit]) -> None:
    """None: the trained lambdas; a number: that lambda on every CSC layer (every atom);
    a LambdaFit: auto, lambda per image from the first layer's residual (see module doc)."""
    layers = _layers(model) if value is not None else csc_layers(model)
    reset_csc_lambda(model)
    if value is None:
        return
    if isinstance(value, LambdaFit):
        layers[0].register_forward_pre_hook(_AutoLambda(value, _targets(layers, value.apply_to)))
        return
    if float(value) < 0:
        raise RestoreError(f"CSC lambda must be >= 0, got {value}")
    for layer in layers:
        layer.lambda_override = float(value)


def first_layer_measure(model: nn.Module, x: torch.Tensor, feature: Feature = "sqrt_residual") -> torch.Tensor:
    """The measurement of `feature` (the reconstruction residual at the layers' current lambda,
    or the noise-level estimate) per sample at the first CSC layer for the net input `x`; only the
    part of the net before that layer is run."""
    first = _layers(model)[0]
    found = {}

    def probe(module, args):
        found["r"] = measure(module, args[0], feature)
        raise _StopForward

    handle = first.register_forward_pre_hook(probe)
    try:
        model(x)
    except _StopForward:
        pass
    finally:
        handle.remove()
    if "r" not in found:
        raise RestoreError("the first CSC layer was not reached by the forward pass")
    return found["r"]


def apply_csc_lambda_option(model: nn.Module, text: Optional[str], checkpoint: Optional[str] = None) -> str:
    """`--csc-lambda` of restore-test: 'auto' (the fit beside `checkpoint`), 'auto:FIT.json', a
    number, 'trained' (back to the trained values) or None (no change). Returns a one-line description for the log."""
    if text is None:
        return "CSC lambda: trained values"
    if text == "trained":
        set_csc_lambda(model, None)
        return "CSC lambda: trained values"
    if text == "auto" or text.startswith("auto:"):
        path = text[5:] if text.startswith("auto:") else None
        if path is None:
            if not checkpoint:
                raise RestoreError("--csc-lambda auto: needs path.pretrain_network_g (the fit lives "
                                   "beside it) or an explicit auto:FIT.json")
            path = fit_path_for(checkpoint)
        set_csc_lambda(model, LambdaFit.load(path))
        return f"CSC lambda: auto, per image, from {path}"
    try:
        value = float(text)
    except ValueError:
        raise RestoreError(f"--csc-lambda: expected auto, auto:FIT.json, trained or a number, got {text!r}") from None
    set_csc_lambda(model, value)
    return f"CSC lambda: {value:g} on every CSC layer"


def first_layer_residual(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The first CSC layer's reconstruction residual per sample (see first_layer_measure)."""
    return first_layer_measure(model, x, "residual")
