"""The plain ``nn.Module`` classes the builders emit. ``forward`` does what a hand-written model does."""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .activations import activation
from .tape import Tape, combine


class GlobalPool(nn.Module):
    """Global average/max pooling to a flat (N, C) vector."""

    def __init__(self, mode: str = "avg"):
        super().__init__()
        self.mode = mode

    def forward(self, x):
        pool = F.adaptive_avg_pool2d if self.mode == "avg" else F.adaptive_max_pool2d
        return torch.flatten(pool(x, 1), 1)

    def extra_repr(self):
        return self.mode


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): x * gate(fc2(act(fc1(avgpool(x)))))."""

    def __init__(self, channels: int, squeeze: int, act: str = "relu", gate: str = "sigmoid"):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.act = activation(act)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.gate = activation(gate)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: (N, g*c, H, W) -> transpose the group and channel axes."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        n, c, h, w = x.shape
        x = x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2)
        return x.reshape(n, c, h, w)

    def extra_repr(self):
        return f"groups={self.groups}"


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): drop a whole residual branch per sample while training."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self):
        return f"p={self.p}"


class PadShortcut(nn.Module):
    """ResNet option A shortcut: subsample by the stride and zero-pad the new channels."""

    def __init__(self, stride: int, extra: int):
        super().__init__()
        self.stride, self.extra = stride, extra

    def forward(self, x):
        if self.stride > 1:
            x = x[:, :, ::self.stride, ::self.stride]
        if self.extra:
            lo = self.extra // 2
            x = F.pad(x, (0, 0, 0, 0, lo, self.extra - lo))
        return x


class Branch(nn.Module):
    """Parallel paths on the same input (or on equal channel slices of it), merged by concat, sum
    or product."""

    def __init__(self, paths: list[nn.Module], merge: str, split: int = 0):
        super().__init__()
        self.paths = nn.ModuleList(paths)
        self.merge, self.split = merge, split

    def forward(self, x):
        if self.split:
            outs = [p(xi) for p, xi in zip(self.paths, x.chunk(self.split, 1))]
        else:
            outs = [p(x) for p in self.paths]
        return combine(outs, self.merge)


class Residual(nn.Module):
    """out = act(scale * drop_path(body(x)) + shortcut(x)).

    ``layer_scale``: (initial value, body's output shape): a learnable per-channel multiplier of
    body(x), this module's own parameter ``layer_scale`` ([C, 1, 1] on maps, [C] on vectors), so
    that it leads the state_dict as torchvision's ConvNeXt block's does.

    With ``pre`` (a shared pre-activation): p = pre(x) feeds the body and a non-identity
    shortcut, while an identity shortcut carries x itself. ``add_in_place``: the body's output is
    a tensor nothing else needs (see Node.overwritable), so the shortcut is added into it, as
    torchvision's ResNet and EfficientNet do: one large allocation less per block.
    """

    def __init__(self, body: nn.Module, shortcut: nn.Module | None, act: nn.Module | None,
                 drop_path: float = 0.0, scale: float = 1.0, shortcut_first: bool = False,
                 pre: nn.Module | None = None, identity: bool = False, add_in_place: bool = False,
                 layer_scale: tuple[float, tuple] | None = None):
        super().__init__()
        self.layer_scale = None
        if layer_scale is not None:
            value, shape = layer_scale
            self.layer_scale = nn.Parameter(
                torch.full((shape[0], *([1] * (len(shape) - 1))), float(value)))
        self.pre = pre                      # registered first when given (None: no module)
        self.identity = identity or shortcut is None
        if shortcut_first:      # registration order is state_dict order: a reference's layout
            self.shortcut = shortcut if shortcut is not None else nn.Identity()
        self.body = body
        self.shortcut = shortcut if shortcut is not None else nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.act = act if act is not None else nn.Identity()
        self.scale = scale
        self.add_in_place = add_in_place
        # the modules that are identities are not called: a call costs more than it does
        self._drop, self._act = drop_path > 0, act is not None

    def forward(self, x):
        if self.pre is not None:
            p = self.pre(x)
            skip = x if self.identity else self.shortcut(p)
            out = self.body(p)
        else:
            skip = x if self.identity else self.shortcut(x)
            out = self.body(x)
        fresh = self.add_in_place
        if self._drop and self.training:
            out, fresh = self.drop_path(out), True
        if self.layer_scale is not None:
            out, fresh = out * self.layer_scale, True
        if self.scale != 1.0:
            out = out * self.scale
        out = out.add_(skip) if fresh else out + skip
        return self.act(out) if self._act else out

    def extra_repr(self):
        return "add in place" if self.add_in_place else ""


class Dense(nn.Module):
    """DenseNet connectivity: each layer sees the concatenation of the input and all earlier outputs."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        feats = [x]
        for layer in self.layers:
            feats.append(layer(torch.cat(feats, 1)))
        return torch.cat(feats, 1)


class Aux(nn.Module):
    """An auxiliary head: passes its input on; in training keeps the head's output for the loss."""

    def __init__(self, body: nn.Module, weight: float):
        super().__init__()
        self.body, self.weight = body, weight
        self.output = None

    def forward(self, x):
        self.output = self.body(x) if self.training else None
        return x


class Network(nn.Sequential):
    """A compiled spec: ``stem``, ``stages`` and ``head`` in sequence.

    ``spec_name`` and ``spec`` (the resolved, plain spec dict) travel with the module so that a
    checkpoint can say which network it holds. ``outputs``: the names of the spec's ``outputs:``
    with their tape keys; the forward then returns a dict of those tensors (a backbone's maps)
    instead of the last layer's output. ``tape`` holds the named tensors during a forward.
    """

    def __init__(self, parts, spec_name: str = "", spec: dict | None = None,
                 tape: Tape | None = None, outputs: dict[str, str] | None = None):
        super().__init__(OrderedDict(parts))
        self.spec_name = spec_name
        self.spec = spec or {}
        self.__dict__["tape"] = tape if tape is not None else Tape()
        self.outputs = dict(outputs or {})
        # a plain list, not submodules: the heads are already registered where the spec puts them
        self.__dict__["aux_heads"] = [m for m in self.modules() if isinstance(m, Aux)]

    def forward(self, x):
        tape = self.tape
        tape.clear()
        try:
            out = super().forward(x)
            if self.outputs:
                out = {name: tape.read(key) for name, key in self.outputs.items()}
        finally:
            tape.clear()
        if self.training and self.aux_heads:
            # (logits, [(weight, aux_logits), ...]) as GoogLeNet/Inception train with them
            return out, [(m.weight, m.output) for m in self.aux_heads]
        return out


class RadixSoftmax(nn.Module):
    """Softmax across the ``radix`` splits of each of ``groups`` channel groups (ResNeSt's split
    attention: the weights of the splits sum to 1 per channel); a sigmoid when radix is 1.
    The input's shape is kept (timm's flattens)."""

    def __init__(self, radix: int, groups: int):
        super().__init__()
        self.radix, self.groups = radix, groups

    def forward(self, x):
        if self.radix == 1:
            return torch.sigmoid(x)
        n = x.size(0)
        y = x.reshape(n, self.groups, self.radix, -1).transpose(1, 2).softmax(1)
        return y.reshape(x.shape)

    def extra_repr(self):
        return f"radix={self.radix}, groups={self.groups}"
