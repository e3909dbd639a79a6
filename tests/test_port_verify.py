"""port_weights checks itself: tensors that fit by shape but are used in another order give other
outputs, and the port says so, naming the first layer whose output differs."""
from __future__ import annotations

import pytest
import torch
from parity import assert_logits_match, randomize
from torch import nn

import netspec
from netspec.errors import WeightsError

# two 3x3 paths concatenated, then a 1x1 conv to 6 channels, pooled to 10 logits
SPEC = {"input": {"channels": 3, "size": 8}, "num_classes": 10,
        "defaults": {"norm": "none", "act": "relu"},
        "stages": [{"branch": {"paths": [[{"conv": {"c": 4, "k": 3}}],
                                         [{"conv": {"c": 4, "k": 3}}]]}},
                   {"conv": {"c": 6, "k": 1}}],
        "head": [{"pool": "global_avg"}, {"linear": {"c": "num_classes"}}]}


class Concat(nn.Module):
    """The spec's network, its two paths concatenated in the order given."""

    def __init__(self, swapped: bool):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 3, padding=1)
        self.mix = nn.Conv2d(8, 6, 1)
        self.fc = nn.Linear(6, 10)
        self.swapped = swapped

    def forward(self, x):
        a, b = torch.relu(self.a(x)), torch.relu(self.b(x))
        y = torch.relu(self.mix(torch.cat([b, a] if self.swapped else [a, b], 1)))
        return self.fc(y.mean((2, 3)))


def test_the_same_order_ports_and_gives_the_same_logits():
    ref = randomize(Concat(swapped=False)).eval()
    model = netspec.port_weights(netspec.build(SPEC), ref).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert_logits_match("concat", model(x), ref(x))


def test_channels_concatenated_in_another_order_fail_at_the_port():
    ref = randomize(Concat(swapped=True))
    model = netspec.build(SPEC)
    with pytest.raises(WeightsError) as e:
        netspec.port_weights(model, ref)
    msg = str(e.value)
    assert "every tensor fits, but after porting the outputs differ by" in msg
    # the paths agree; the 1x1 conv that reads their concatenation is the first to differ
    assert "the first layer whose output differs is model 'stages.1" in msg
    assert "reference 'mix'" in msg and "concatenated in another order" in msg
    assert "verify=False" in msg
    netspec.port_weights(model, ref, verify=False)        # what it did before: silently
    with torch.no_grad():
        x = torch.randn(2, 3, 8, 8)
        assert not torch.allclose(model.eval()(x), ref.eval()(x), rtol=1e-3, atol=1e-5)


def test_dla_with_an_aggregation_node_reading_its_inputs_in_another_order():
    """DLA-34 (timm) with level 2's node concatenating [l2_1, l2_2] instead of [l2_2, l2_1]: every
    tensor fits, and the port names the node's conv as the first layer that differs."""
    import timm
    from parity import random_reference, unported
    reference = random_reference(lambda: timm.create_model("dla34")).eval()
    model = unported("dla34", ["input.size=64", "stages[3].concat=[l2_1, l2_2]"])
    with pytest.raises(WeightsError, match=r"first layer whose output differs is model "
                                           r"'stages.4.conv' vs reference 'level2.root.conv'"):
        netspec.port_weights(model, reference)
