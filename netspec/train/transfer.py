"""Transfer learning: weights from a checkpoint or a torchvision/timm model, a new head, freezing."""
from __future__ import annotations

import torch
from pytorch_lightning.callbacks import BaseFinetuning
from torch import nn

from ..compile import build
from ..errors import CheckpointError, did_you_mean
from ..weights import port_weights


def load_checkpoint(path: str) -> dict:
    """A Lightning checkpoint, loaded safely (tensors and plain data only)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint '{path}' does not exist") from None
    except Exception as e:  # a pickle that isn't plain data, a truncated file, ...
        raise CheckpointError(f"checkpoint '{path}' cannot be read safely: "
                              f"{str(e).splitlines()[0]}") from None


def checkpoint_spec(ckpt: dict, path: str) -> dict:
    try:
        return ckpt["hyper_parameters"]["spec"]
    except (KeyError, TypeError):
        raise CheckpointError(f"checkpoint '{path}' was not written by netspec.train "
                              f"(it has no spec)") from None


def model_state(ckpt: dict) -> dict:
    """The network's tensors of a SpecClassifier checkpoint, without the 'model.' prefix."""
    return {k[len("model."):]: v for k, v in ckpt.get("state_dict", {}).items()
            if k.startswith("model.")}


def same_network(a: dict, b: dict) -> bool:
    """Whether two resolved specs describe the same network (descriptive keys aside)."""
    skip = {"name", "paper", "doc", "reference"}
    return {k: v for k, v in a.items() if k not in skip} == \
        {k: v for k, v in b.items() if k not in skip}


def load_reference(name: str, weights: str | None) -> nn.Module:
    """``torchvision.resnet50`` or ``timm.seresnet50`` with its pretrained weights."""
    lib, _, model = name.partition(".")
    if lib == "torchvision":
        import torchvision
        try:
            return torchvision.models.get_model(model, weights=weights)
        except ValueError as e:
            known = torchvision.models.list_models()
            raise CheckpointError(f"transfer.pretrained: {e}{did_you_mean(model, known)}") from None
    if lib == "timm":
        import timm
        if not timm.is_model(model):
            raise CheckpointError(f"transfer.pretrained: timm has no model '{model}'"
                                  f"{did_you_mean(model, timm.list_models())}")
        return timm.create_model(model, pretrained=bool(weights))
    raise CheckpointError(f"transfer.pretrained must name torchvision.<model> or timm.<model>, "
                          f"got '{name}'")


def pretrained_state(spec_source, overrides, reference: str, weights: str | None) -> dict:
    """The reference model's weights in the layout of the spec (at the reference's own head)."""
    ref = load_reference(reference, weights)
    keep = [o for o in overrides if not o.startswith(("num_classes=", "input."))]
    classes = getattr(ref, "num_classes", None) or _out_features(ref)
    model = build(spec_source, [*keep, f"num_classes={classes}"])
    port_weights(model, ref)
    return model.state_dict()


def _out_features(model: nn.Module) -> int:
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return last[-1].out_features if last else 1000


def transplant(model: nn.Module, state: dict, origin: str) -> list[str]:
    """Copy every tensor whose name and shape fit; zero the new ones (a new head).

    Returns the names of the tensors that start fresh.
    """
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not fitting:
        raise CheckpointError(f"no weight of {origin} fits this network: it holds another spec")
    fresh = [k for k in own if k not in fitting and not k.endswith("num_batches_tracked")]
    model.load_state_dict(fitting, strict=False)
    with torch.no_grad():
        for name, tensor in model.named_parameters():
            if name in fresh:
                tensor.zero_()
    return fresh


def units(model: nn.Module) -> list[nn.Module]:
    """The network's blocks in order: the stem, each stage row, the head."""
    return [model.stem, *model.stages, model.head]


class FreezeBackbone(BaseFinetuning):
    """Train only the head and the last k stage rows; unfreeze the rest at an epoch, at lr x factor.

    The frozen parameters are in the optimizer from the start, in groups of their own at the lower
    rate (with the usual weight-decay rules), and only start to take gradients at the epoch: a
    group added then would be unknown to the schedule (torch's LambdaLR and OneCycleLR fail) and
    would miss the weight-decay split.
    """

    def __init__(self, train_last: int, unfreeze_epoch: int | None, lr_factor: float):
        super().__init__()
        self.train_last, self.unfreeze_epoch, self.lr_factor = train_last, unfreeze_epoch, lr_factor

    def frozen(self, pl_module) -> list[nn.Module]:
        blocks = units(pl_module.model)
        keep = 1 + self.train_last            # the head plus the last k rows
        return blocks[:max(0, len(blocks) - keep)]

    def freeze_before_training(self, pl_module):
        modules = self.frozen(pl_module)
        self.freeze(modules, train_bn=False)
        if self.unfreeze_epoch is not None:
            later = list({id(p): p for m in modules for p in m.parameters()}.values())
            pl_module.unfrozen_later = (later, self.lr_factor)

    def finetune_function(self, pl_module, current_epoch, optimizer):
        # `>=`: a run resumed after the epoch unfreezes them again
        if self.unfreeze_epoch is not None and current_epoch >= self.unfreeze_epoch:
            self.make_trainable(self.frozen(pl_module))
