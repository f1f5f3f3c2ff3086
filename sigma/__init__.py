"""sigma: Gaussian blurs whose scale σ is a differentiable, learnable parameter.

Functional API first (``sigma.blur2d_sphere(x, sigma)``), thin ``nn.Module`` layers
over it (``sigma.Blur2d``). See the book for the why and the how; the code its
chapters share (training loop, sample data, plots) is the separate :mod:`sigma.book`.
"""

from ._checks import MAX_RADIUS, ScaleError
from ._tune import tune
from .blur import blur1d, blur2d_diag, blur2d_full, blur2d_sphere, dog1d, dog2d
from .kernels import cov_radii, gauss1d, gauss2d_diag, gauss2d_full, gauss2d_sphere, kernel_radius
from .local import blur2d_local_full, blur2d_local_sphere
from .modules import Blur1d, Blur2d, DynamicBlur2d, GaussConv2d
from .njet import NJetConv2d, jet_orders, njet2d
from .params import cov_axes, cov_to_logchol, logchol_to_cov, rotated_cov

__version__ = "0.1.0"

__all__ = [
    "MAX_RADIUS",
    "ScaleError",
    "kernel_radius",
    "gauss1d",
    "gauss2d_sphere",
    "gauss2d_diag",
    "gauss2d_full",
    "cov_radii",
    "blur1d",
    "blur2d_sphere",
    "blur2d_diag",
    "blur2d_full",
    "blur2d_local_sphere",
    "blur2d_local_full",
    "dog1d",
    "dog2d",
    "njet2d",
    "jet_orders",
    "logchol_to_cov",
    "cov_to_logchol",
    "rotated_cov",
    "cov_axes",
    "Blur1d",
    "Blur2d",
    "GaussConv2d",
    "DynamicBlur2d",
    "NJetConv2d",
    "tune",
]
