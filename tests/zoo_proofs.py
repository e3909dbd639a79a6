"""What the tests prove about each zoo spec: the one list the proving tests are parametrized from.

Every claim names the test that proves it (``file::function``), and that test takes its cases
from here (``params(test)``), so a claim without its test cannot exist: test_zoo_proofs.py
checks that each named test is parametrized with exactly its claims. tools/zoo_table.py prints
the README zoo table's "proven against" column from ``proven(spec)``, and test_readme.py checks
the README against it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Parity:
    """The spec equals a live reference: params and MACs at the spec's input and at ``size``,
    eval logits at ``size`` after port_weights from the randomised reference (parity.check_parity)."""
    spec: str
    reference: str                  # "torchvision.resnet50", "timm.seresnet50": what the table names
    size: int                       # input size of the logits comparison
    test: str
    kwargs: tuple = ()              # the constructor's keyword arguments, as (key, value) pairs
    overrides: tuple = ()           # the spec's overrides that make it the reference
    variant: str = ""               # what differs from the spec as shipped ("width 0.5")
    slow: bool = False

    @property
    def id(self) -> str:
        return "-".join([self.spec, *self.variant.replace(",", "").split()])

    def make(self):
        """A fresh reference model, as its library initialises it."""
        library, _, name = self.reference.partition(".")
        kwargs = dict(self.kwargs)
        if library == "torchvision":
            import torchvision.models
            return getattr(torchvision.models, name)(**kwargs)
        if library == "timm":
            import timm
            return timm.create_model(name, **kwargs)
        if self.reference == "torchvision IntermediateLayerGetter(resnet50)":
            import torchvision.models
            from torchvision.models._utils import IntermediateLayerGetter
            return IntermediateLayerGetter(torchvision.models.resnet50(**kwargs), {
                "layer1": "c2", "layer2": "c3", "layer3": "c4", "layer4": "c5"})
        if self.reference.startswith("torchvision DenseNet"):
            from torchvision.models.densenet import DenseNet
            return DenseNet(**kwargs)
        raise ValueError(f"{self.spec}: no constructor for reference {self.reference!r}")


@dataclass(frozen=True)
class Derived:
    """A count or figure of the spec, checked against numbers derived in the test from the
    paper's own table (written into the test as data), or a hand count where the spec is not
    the paper's network."""
    spec: str
    claim: str                      # the table's words
    test: str
    printed: str = ""               # the paper's total as printed, ending "<millions>M": the test
                                    # checks that the derived count rounds to it
    slow = False                    # analysis only: milliseconds

    @property
    def id(self) -> str:
        return self.spec

    def rounds_to_printed(self, count: int) -> bool:
        millions = self.printed.split()[-1].removesuffix("M")
        return f"{count / 1e6:.{len(millions.partition('.')[2])}f}" == millions


def _tv(spec, size, test, name=None, **kw):
    return Parity(spec, f"torchvision.{name or spec}", size, test, **kw)


def _timm(spec, size, test, name=None, **kw):
    return Parity(spec, f"timm.{name or spec}", size, test, **kw)


PARITY_T = "test_parity.py::test_parity_with_torchvision"
CLASSIC_T = "test_zoo_classic.py::test_torchvision_parity"
DENSE_T = "test_zoo_dense.py::test_logits"
EFFICIENT_T = "test_zoo_efficient.py::test_parity"
INCEPTION_T = "test_zoo_inception.py::test_logits"
RESIDUAL_T = "test_zoo_residual.py::test_parity_with_reference"

PARITY = [
    # test_parity.py: the hardest network of each family, and overrides of the shipped specs
    _tv("resnet50", 64, PARITY_T),
    _tv("resnet50", 32, PARITY_T, kwargs=(("num_classes", 10),), overrides=("num_classes=10",),
        variant="10 classes"),
    _tv("googlenet", 64, PARITY_T, kwargs=(("aux_logits", False), ("init_weights", True))),
    _tv("densenet121", 64, PARITY_T),
    _tv("mobilenet_v2", 64, PARITY_T),
    _tv("mobilenet_v2", 32, PARITY_T, kwargs=(("width_mult", 0.5),),
        overrides=("scale.width=0.5",), variant="width 0.5"),
    _tv("efficientnet_b0", 64, PARITY_T),
    _tv("squeezenet1_0", 64, PARITY_T),
    # test_zoo_classic.py
    *[_tv(name, 64 if name == "alexnet" else 32, CLASSIC_T)
      for name in ("alexnet", "vgg11", "vgg13", "vgg16", "vgg19",
                   "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn")],
    # test_zoo_dense.py
    *[_tv(name, 64, DENSE_T) for name in ("densenet161", "densenet169", "densenet201",
                                          "squeezenet1_1")],
    Parity("densenet264", "torchvision DenseNet(32, (6, 12, 64, 48))", 64, DENSE_T,
           kwargs=(("growth_rate", 32), ("block_config", (6, 12, 64, 48)),
                   ("num_init_features", 64))),
    # test_zoo_efficient.py
    _timm("mobilenetv1_100", 32, EFFICIENT_T),
    _tv("mobilenet_v2", 32, EFFICIENT_T, kwargs=(("width_mult", 1.4),),
        overrides=("scale.width=1.4",), variant="width 1.4"),
    *[_tv(name, 32, EFFICIENT_T) for name in (
        "mobilenet_v3_large", "mobilenet_v3_small", "mnasnet1_0", "shufflenet_v2_x0_5",
        "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
        "efficientnet_b1", "efficientnet_b2", "efficientnet_b3")],
    *[_tv(name, 32, EFFICIENT_T, slow=True) for name in (
        "efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7")],
    # test_zoo_inception.py
    _tv("inception_v3", 299, INCEPTION_T, kwargs=(("init_weights", True),)),
    _tv("inception_v3", 107, INCEPTION_T, kwargs=(("aux_logits", False), ("init_weights", True)),
        overrides=("vars.aux_logits=false",), variant="no aux head"),
    _tv("inception_v3", 299, "test_zoo_inception.py::test_inception_v3_training_outputs",
        kwargs=(("init_weights", True),), variant="training, aux logits"),
    _timm("inception_v4", 107, INCEPTION_T),
    _timm("inception_resnet_v2", 107, INCEPTION_T),
    _timm("xception", 64, INCEPTION_T, name="legacy_xception"),
    # test_zoo_nasnet.py: timm pads its stride-2 average pools unlike TF (see the test)
    _timm("nasnetalarge", 35, "test_zoo_nasnet.py::test_nasnetalarge_logits",
          variant="avg pools as in TF", slow=True),
    # test_zoo_residual.py
    *[_tv(name, 32, RESIDUAL_T) for name in (
        "resnet18", "resnet34", "resnet101", "resnet152", "resnext50_32x4d",
        "resnext101_32x8d", "wide_resnet50_2")],
    _tv("wide_resnet101_2", 32, RESIDUAL_T, slow=True),      # 127M parameters, twice
    _timm("seresnet50", 32, RESIDUAL_T),
    _timm("seresnext50_32x4d", 32, RESIDUAL_T, name="legacy_seresnext50_32x4d"),
    _timm("resnetv2_50", 32, RESIDUAL_T),
    _timm("dla34", 64, RESIDUAL_T),          # named tensors: the aggregation nodes' concats
    # test_zoo_convnext.py
    *[_tv(name, 32, "test_zoo_convnext.py::test_parity")
      for name in ("convnext_tiny", "convnext_small", "convnext_base")],
    # test_zoo_regnet.py: the widths and depths from the paper's rule in the spec
    *[_tv(name, 32, "test_zoo_regnet.py::test_parity", slow=name.endswith("16gf")) for name in (
        "regnet_x_400mf", "regnet_x_800mf", "regnet_x_1_6gf", "regnet_x_8gf", "regnet_x_16gf",
        "regnet_y_400mf", "regnet_y_800mf", "regnet_y_1_6gf", "regnet_y_8gf", "regnet_y_16gf")],
    # test_zoo_efficientnet_v2.py
    *[_tv(name, 32, "test_zoo_efficientnet_v2.py::test_parity")
      for name in ("efficientnet_v2_s", "efficientnet_v2_m")],
    _tv("efficientnet_v2_l", 32, "test_zoo_efficientnet_v2.py::test_parity", slow=True),  # 118.5M
    # test_zoo_maps.py: networks that return maps
    Parity("resnet50_backbone", "torchvision IntermediateLayerGetter(resnet50)", 64,
           "test_zoo_maps.py::test_backbone_maps"),
]

CLASSIC_D = "test_zoo_classic.py::test_count_derived"
SHAPES_D = "test_zoo_classic.py::test_paper_shapes"
RESIDUAL_D = "test_zoo_residual.py::test_count_derived"
CIFAR = "count derived from Sec. 4.2 (6n+2 layers, option A)"

DERIVED = [
    Derived("lenet5", "hand count with a dense C3 and plain pools (the paper's C1, C5, F6 counts)",
            CLASSIC_D),
    Derived("lenet5", "Fig. 2 map sizes", SHAPES_D),
    Derived("alexnet_paper", "count derived from Sec. 3.5's kernels", CLASSIC_D),
    Derived("alexnet_paper", "Fig. 2 map sizes", SHAPES_D),
    Derived("zfnet_paper", "hand count of Fig. 3 (conv3-5 dense; no total printed)", CLASSIC_D),
    Derived("zfnet_paper", "Fig. 3 map sizes", SHAPES_D),
    Derived("vgg11_lrn", "count derived from Table 1, column A-LRN", CLASSIC_D,
            printed="Table 2: 133M"),
    Derived("vgg16c", "count derived from Table 1, column C", CLASSIC_D, printed="Table 2: 134M"),
    Derived("nin", "hand count of the authors' CIFAR-10 model (the paper prints no widths)",
            CLASSIC_D),
    Derived("nin", "that model's map sizes", SHAPES_D),
    Derived("googlenet_paper", "Table 1 per module (errata named)",
            "test_zoo_classic.py::test_googlenet_table_row"),
    Derived("densenet_bc100", "count derived from Sec. 3 (BC, L=100, k=12)",
            "test_zoo_dense.py::test_count_derived", printed="Table 2: 0.8M"),
    Derived("densenet264", "count derived from Table 1 (k=32, blocks 6-12-64-48)",
            "test_zoo_dense.py::test_count_derived"),
    Derived("mobilenet_v1", "Tables 6-7 MACs within 1%; timm.mobilenetv1_100 params",
            "test_zoo_efficient.py::test_mobilenet_v1_tables"),
    Derived("shufflenet_v1", "Tables 1-2 MACs (g=3 1x: 137.5M vs 140M label)",
            "test_zoo_efficient.py::test_shufflenet_v1_tables"),
    Derived("nasnetamobile", "Table 2: 5.3M / 564M within 1%", "test_zoo_nasnet.py::test_table_2"),
    Derived("nasnetalarge", "Table 2: 88.9M / 23.8B within 1%", "test_zoo_nasnet.py::test_table_2"),
    Derived("resnet20", CIFAR, RESIDUAL_D, printed="Table 6: 0.27M"),
    Derived("resnet56", CIFAR, RESIDUAL_D, printed="Table 6: 0.85M"),
    Derived("resnet110", CIFAR, RESIDUAL_D, printed="Table 6: 1.7M"),
    Derived("resnet1202", CIFAR, RESIDUAL_D, printed="Table 6: 19.4M"),
    Derived("resnet110_sd", "ResNet-110's count derived from He et al. 2016, Sec. 4.2", RESIDUAL_D),
    Derived("resnet110_sd", "survival p_l = 1 - l/2L (Eq. 4)",
            "test_zoo_residual.py::test_stochastic_depth_survival"),
    Derived("preact_resnet164", "count derived from Sec. 4 (9n+2 bottleneck units)", RESIDUAL_D,
            printed="the paper's 1.7M"),
    Derived("wrn28_10", "count derived from Table 1 (N=4, k=10)", RESIDUAL_D,
            printed="Table 4: 36.5M"),
    Derived("efficientnet_v2_s", "count derived from Table 4 (with BN's moving statistics, as "
            "Table 7 counts)", "test_zoo_efficientnet_v2.py::test_count_derived",
            printed="Table 7: 22M"),
    Derived("unet", "hand count of Fig. 1 (23 convs, 4 up-convs)",
            "test_zoo_maps.py::test_unet_count_derived"),
    Derived("unet", "Fig. 1 map sizes", "test_zoo_maps.py::test_unet_map_sizes"),
]

PROOFS = PARITY + DERIVED


def cases(test: str) -> list:
    """The claims the test ``file::function`` proves, in the registry's order."""
    return [p for p in PROOFS if p.test == test]


def params(test: str) -> list:
    """``cases(test)`` as pytest parameters: named by their id, slow ones marked slow."""
    import pytest
    return [pytest.param(p, id=p.id, marks=[pytest.mark.slow] if p.slow else [])
            for p in cases(test)]


def proven(spec: str) -> str:
    """The zoo table's "proven against" text: each reference once, with the variants tested."""
    parts, variants = [], {}
    for p in PARITY:
        if p.spec == spec:
            variants.setdefault(p.reference, []).append(p.variant)
    for reference, vs in variants.items():
        text = f"{reference}: params, MACs, logits"
        extra = [v for v in vs if v]
        if extra:
            text += f" ({'; '.join((['as shipped'] if '' in vs else []) + extra)})"
        parts.append(text)
    parts += [d.claim + (f"; {d.printed}" if d.printed else "") for d in DERIVED if d.spec == spec]
    return "; ".join(parts)
