"""Copy the weights of a reference model (torchvision, timm, or any module) into a compiled one."""
from __future__ import annotations

import torch
from torch import nn

from .errors import WeightsError

Pairs = list[tuple[str, torch.Tensor]]


def _tensors(module: nn.Module) -> Pairs:
    # BatchNorm's step counter is bookkeeping, not weights; some libraries don't keep it.
    return [(k, v) for k, v in module.state_dict(keep_vars=True).items()
            if not k.endswith("num_batches_tracked")]


def _shape(t: torch.Tensor) -> str:
    return "x".join(map(str, t.shape)) or "scalar"


def _core(shape: torch.Size) -> tuple:
    # a 1x1 convolution and a linear layer hold the same matrix: [out, in, 1, 1] ~ [out, in]
    return tuple(shape[:2]) if len(shape) == 4 and tuple(shape[2:]) == (1, 1) else tuple(shape)


def _fits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape or _core(a.shape) == _core(b.shape)


def _mismatch(ours: Pairs, theirs: Pairs) -> str | None:
    """Why the n-th tensor of one cannot take the n-th of the other, or None if all fit."""
    for i, ((mk, mv), (rk, rv)) in enumerate(zip(ours, theirs, strict=False)):
        if not _fits(mv, rv):
            return (f"tensor #{i} does not fit: model '{mk}' is {_shape(mv)} but "
                    f"reference '{rk}' is {_shape(rv)}")
    if len(ours) != len(theirs):
        extra = ours[len(theirs):] or theirs[len(ours):]
        side = "model" if len(ours) > len(theirs) else "reference"
        return (f"the model has {len(ours)} tensors and the reference {len(theirs)}; "
                f"the first unmatched one is {side} '{extra[0][0]}' ({_shape(extra[0][1])})")
    return None


def _example_input(module: nn.Module, example) -> torch.Tensor | None:
    if isinstance(example, torch.Tensor):
        return example
    shape = example if example is not None else getattr(module, "input_shape", None)
    if shape is None:
        return None
    return torch.zeros(1, *shape)


def _on_device_of(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    p = next(module.parameters(), None)
    return x if p is None else x.to(device=p.device, dtype=p.dtype)


def forward_order(module: nn.Module, x: torch.Tensor) -> Pairs:
    """The module's tensors (as in its state_dict) in the order its layers first run on ``x``.

    Each module contributes its own parameters and buffers when it is first called; modules that
    don't run in eval mode (auxiliary heads) follow in state_dict order. The pass runs in eval
    mode without gradients, so batch-norm statistics are left untouched.
    """
    names = {m: n for n, m in module.named_modules()}
    called: list[nn.Module] = []
    seen: set[int] = set()

    def hook(m, _args):
        if id(m) not in seen:
            seen.add(id(m))
            called.append(m)

    handles = [m.register_forward_pre_hook(hook) for m in names]
    modes = [(m, m.training) for m in names]
    module.eval()
    try:
        with torch.no_grad():
            module(_on_device_of(module, x))
    finally:
        for h in handles:
            h.remove()
        for m, training in modes:
            m.training = training
    tensors = dict(_tensors(module))
    out, done = [], set()
    for m in called + [m for m in names if id(m) not in seen]:
        prefix = names[m] + "." if names[m] else ""
        own = [*m.named_parameters(recurse=False), *m.named_buffers(recurse=False)]
        for n, _ in own:
            key = prefix + n
            if key in tensors and key not in done:
                done.add(key)
                out.append((key, tensors[key]))
    return out


TOLERANCE = 1e-3     # of the reference output's largest magnitude: float32 over a deep network


def _first_tensor(out):
    """A model's output as one tensor: itself, the first of a tuple, or HF-style ``.logits``."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    logits = getattr(out, "logits", None)
    return logits if isinstance(logits, torch.Tensor) else None


def _outputs(out) -> list[torch.Tensor]:
    """What a model returns, as tensors to compare: its logits, or each map of a backbone's
    dict (in order: a named-outputs spec against torchvision's IntermediateLayerGetter)."""
    if isinstance(out, dict):
        return [t for t in out.values() if isinstance(t, torch.Tensor)]
    t = _first_tensor(out)
    return [] if t is None else [t]


def _difference(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """max |a - b| over the scale of b; None where the shapes can't be compared."""
    if a.numel() != b.numel():
        return None
    a, b = a.reshape(-1).double(), b.reshape(-1).double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def _layer_outputs(module: nn.Module, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """(name, output) of each tensor-holding module, in the order they first run (copied:
    a later in-place activation would change them)."""
    names = {m: n for n, m in module.named_modules()}
    out, seen = [], set()

    def hook(m, _args, result):
        t = _first_tensor(result)
        if id(m) not in seen and t is not None:
            seen.add(id(m))
            out.append((names[m], t.detach().clone()))

    owners = [m for m in names if any(True for _ in m.parameters(recurse=False)) or
              any(True for _ in m.buffers(recurse=False))]
    handles = [m.register_forward_hook(hook) for m in owners]
    try:
        with torch.no_grad():
            module(x)
    finally:
        for h in handles:
            h.remove()
    return out


def verify_port(model: nn.Module, reference: nn.Module, x: torch.Tensor) -> None:
    """Both models' eval-mode outputs on ``x`` agree, or a WeightsError names the first layer
    whose output differs."""
    modes = [(m, m.training) for m in (*model.modules(), *reference.modules())]
    model.eval()
    reference.eval()
    try:
        x = _on_device_of(model, x)
        with torch.no_grad():
            ours, theirs = _outputs(model(x)), _outputs(reference(x))
        if not ours or not theirs:
            return                       # nothing comparable
        if len(ours) != len(theirs):
            raise WeightsError(f"port_weights: the model returns {len(ours)} outputs and the "
                               f"reference {len(theirs)}; verify=False skips this check")
        diffs = [_difference(o, t) for o, t in zip(ours, theirs)]
        if all(d is not None and d <= TOLERANCE for d in diffs):
            return
        i, diff = next((i, d) for i, d in enumerate(diffs) if d is None or d > TOLERANCE)
        ours, theirs = ours[i], theirs[i]
        which = f"output {i + 1} of {len(diffs)}: " if len(diffs) > 1 else ""
        said = (f"{which}the outputs have {ours.numel()} and {theirs.numel()} values"
                if diff is None else f"{which}the outputs differ by {diff:.3g} of the "
                                     f"reference's scale")
        where = ""
        for (mk, mv), (rk, rv) in zip(_layer_outputs(model, x), _layer_outputs(reference, x)):
            d = _difference(mv, rv)
            if d is None or d > TOLERANCE:
                where = (f"; the first layer whose output differs is model '{mk}' vs reference "
                         f"'{rk}'" + (f" (by {d:.3g})" if d is not None else
                                      f" ({_shape(mv)} vs {_shape(rv)})"))
                break
        raise WeightsError(
            f"port_weights: every tensor fits, but after porting {said}{where}: the two "
            f"networks compute different things with the same weights — layers used in "
            f"another order (channels concatenated in another order; a shortcut registered "
            f"before its body: shortcut_first: true), or an op that differs (an eps, a "
            f"padding, an activation); verify=False skips this check")
    finally:
        for m, training in modes:
            m.training = training


def port_weights(model: nn.Module, reference: nn.Module, example=None,
                 verify: bool = True) -> nn.Module:
    """Copy every parameter and buffer of ``reference`` into ``model``, pairing them in order.

    Tensors pair in state_dict order: zoo specs register their layers in the reference's order,
    so the n-th tensor of one is the n-th of the other. Where a reference registers its layers in
    another order than it runs them (timm's pre-activation blocks register the projection shortcut
    before the pre-activation that feeds it), the state_dict orders disagree; then both models run
    ``example`` (an input batch or a (C, H, W) shape; default: the compiled model's input shape)
    and the tensors pair in the order their layers run. A linear layer's [out, in] weight and a
    1x1 convolution's [out, in, 1, 1] are interchangeable. If neither order fits, a WeightsError
    names the first tensor of each side that does not fit.

    Tensors that fit by shape may still be used in another order (channels concatenated in
    another order give other logits from the same tensors), so with ``verify`` both models then
    run one random input (``example``'s shape) in eval mode, and outputs that differ raise a
    WeightsError naming the first layer whose output differs.
    """
    ours, theirs = _tensors(model), _tensors(reference)
    problem = _mismatch(ours, theirs)
    if problem is not None and len(ours) == len(theirs):
        x = _example_input(model, example)
        if x is None:
            raise WeightsError(f"{problem} (in state_dict order; pass example=, an input batch, "
                               f"to pair the tensors in the order the layers run)")
        try:
            ours, theirs = forward_order(model, x), forward_order(reference, x)
        except Exception as e:  # the reference may not accept the input: say so, keep the cause
            raise WeightsError(f"{problem} (in state_dict order); running both models on a "
                               f"{_shape(x)} input to pair them in forward order failed: "
                               f"{type(e).__name__}: {e}") from e
        second = _mismatch(ours, theirs)
        if second is not None:
            raise WeightsError(f"{problem} (in state_dict order); in forward order: {second}")
    elif problem is not None:
        raise WeightsError(problem)
    with torch.no_grad():
        for (_, mv), (_, rv) in zip(ours, theirs, strict=True):
            mv.copy_(rv.detach().reshape(mv.shape))
    if verify:
        x = _example_input(model, example)
        if x is not None:
            if not isinstance(example, torch.Tensor):     # random, not zeros: zeros hide a lot
                x = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
            verify_port(model, reference, x)
    return model
