"""netspec: convolutional networks written as YAML specs, compiled to plain PyTorch modules."""
from .analyze import Layer, Report
from .blocks import register_block
from .compile import analyze, build, resolve
from .errors import SpecError
from .spec.loader import zoo
from .weights import port_weights

__all__ = ["build", "analyze", "resolve", "port_weights", "zoo", "register_block", "SpecError",
           "Report", "Layer"]
__version__ = "0.1.0"
