"""Test-time lambda of nets with CSC layers (restore/archs/layers/csc_conv.py): set it, scale it,
calibrate a per-image rule on a validation set, apply the rule ("auto")."""
from restore.archs.layers.csc_conv import CSCConv2d, csc_layers, project_all_atoms_
from restore.csc.control import (apply_csc_lambda_option, first_layer_measure, first_layer_residual,
                                 reset_csc_lambda, scale_csc_lambda, set_csc_lambda)
from restore.csc.lambda_fit import LambdaFit, fit_path_for
from restore.csc.noise_estimate import estimate_noise_sigma

__all__ = ["CSCConv2d", "LambdaFit", "apply_csc_lambda_option", "csc_layers", "estimate_noise_sigma",
           "first_layer_measure", "first_layer_residual", "fit_path_for", "project_all_atoms_",
           "reset_csc_lambda", "scale_csc_lambda", "set_csc_lambda"]
