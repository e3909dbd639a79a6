"""ConvNeXt T/S/B (Liu et al. 2022) against torchvision: parameters, MACs and logits after
port_weights, and the two things eval-mode logits can't see: layer scale's initial value and the
stochastic-depth schedule."""
import pytest
import torch
import torchvision.models as tv
import zoo_proofs
from parity import check_parity

import netspec
from netspec.ops.modules import Residual


@pytest.mark.parametrize("proof", zoo_proofs.params("test_zoo_convnext.py::test_parity"))
def test_parity(proof):
    check_parity(proof.spec, proof.make, proof.size, proof.overrides)


# Table 9's blocks per stage and the stochastic-depth rates of the paper's ImageNet-1K training
# (Appendix A.1), which torchvision's constructors take
DEPTHS = {"convnext_tiny": (3, 3, 9, 3), "convnext_small": (3, 3, 27, 3),
          "convnext_base": (3, 3, 27, 3)}
DROP_PATH = {"convnext_tiny": 0.1, "convnext_small": 0.4, "convnext_base": 0.5}


def _residuals(name: str) -> list:
    """The residual nodes of the resolved spec (no weights allocated), in order."""
    return [node for _, _, node in netspec.resolve(name).walk() if node.kind == "residual"]


@pytest.mark.parametrize("name", list(DEPTHS))
def test_drop_path_is_linear_over_the_blocks_as_torchvisions(name):
    blocks = sum(DEPTHS[name])
    # torchvision: rate * i / (N - 1), from 0 at the first block to the full rate at the last
    expected = [DROP_PATH[name] * i / (blocks - 1) for i in range(blocks)]
    ours = [node.drop_path for node in _residuals(name)]
    assert ours == pytest.approx(expected, rel=1e-12, abs=1e-15)
    with torch.device("meta"):
        reference = getattr(tv, name)()
    theirs = [m.stochastic_depth.p for m in reference.modules() if hasattr(m, "stochastic_depth")]
    assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-15)


def test_a_fresh_net_starts_every_layer_scale_at_1e_6():
    model = netspec.build("convnext_tiny", ["input.size=32"])
    scales = [m.layer_scale for m in model.modules() if isinstance(m, Residual)]
    # one learnable [C, 1, 1] per block, C the stage's channels (Table 9)
    assert [tuple(s.shape) for s in scales] == [(c, 1, 1) for c, n in zip(
        (96, 192, 384, 768), DEPTHS["convnext_tiny"]) for _ in range(n)]
    assert all(s.requires_grad and torch.all(s == 1e-6) for s in scales)
