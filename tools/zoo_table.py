"""Print the README's zoo table from the specs themselves: python tools/zoo_table.py"""
import re

import netspec
from netspec.lang.loader import load_spec

# what the tests prove for the specs no library has (tests/test_zoo_*.py)
PAPER = {
    "alexnet_paper": "paper count exact",
    "densenet264": "paper count exact; torchvision DenseNet(32, (6,12,64,48)) logits",
    "densenet_bc100": "paper count exact", "googlenet_paper": "seed 002 table per module (errata named)",
    "lenet5": "paper count exact", "mobilenet_v1": "paper Tables 6-7 MACs within 1%; timm params",
    "nasnetamobile": "paper 5.3M / 564M within 1%", "nin": "count exact",
    "preact_resnet164": "paper count exact", "resnet20": "paper count exact",
    "resnet56": "paper count exact", "resnet110": "paper count exact",
    "resnet1202": "paper count exact", "resnet110_sd": "paper count; survival schedule",
    "shufflenet_v1": "paper Tables 1-2 MACs (g=3 1x: 137.5M vs 140M label)",
    "vgg11_lrn": "paper count exact", "vgg16c": "paper count exact",
    "wrn28_10": "paper count exact", "zfnet_paper": "paper map sizes; hand count",
}
ONLY_PARAMS_MACS = {"nasnetalarge": "params, MACs (TF padding: logits differ)"}


def authors(paper: str) -> str:
    m = re.search(r"\(([^()]*\d{4})\)\s*$", paper)
    return m.group(1) if m else paper


def macs(n: int) -> str:
    return f"{n / 1e9:.2f} G" if n >= 1e9 else f"{n / 1e6:.1f} M"


print("| spec | paper | params | MACs | proven against |")
print("|---|---|---:|---:|---|")
for name in netspec.zoo():
    spec = load_spec(name)
    report = netspec.analyze(name)
    ref = spec.get("reference")
    if ref:
        proof = f"{ref}: " + ONLY_PARAMS_MACS.get(name, "params, MACs, logits")
    else:
        proof = PAPER.get(name, "paper")
    print(f"| `{name}` | {authors(str(spec.get('paper', '')))} | {report.params:,} | "
          f"{macs(report.macs)} | {proof} |")
