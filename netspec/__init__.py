"""netspec: convolutional networks written as YAML specs, compiled to plain PyTorch modules."""
import os as _os
import sys as _sys

# Before torch loads OpenMP (this runs first in `python -m netspec.train` and the other commands):
# OpenMP threads that spin while they wait made `python -m netspec.train spec=mobilenet_v2` 4-5
# times slower (321 s against 69 s) on 2 cores shared with other programs. A user's own setting wins.
if "torch" not in _sys.modules:
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .analyze import Layer, Report  # noqa: E402
from .blocks import register_block
from .compile import analyze, build, resolve
from .errors import NetspecError, SpecError
from .lang.loader import zoo
from .weights import port_weights

__all__ = ["build", "analyze", "resolve", "port_weights", "zoo", "register_block", "SpecError",
           "NetspecError", "Report", "Layer"]
__version__ = "0.1.0"
