"""The supernet of a space: every option's weights in one module, and the path a sample runs.

**What is shared.** A path (one sample of the space) is resolved and built as its standalone
network would be; each of its modules that holds tensors (a conv, a norm, a linear) is then given
the supernet's tensors for its *place*: its qualified name (``stages.2.block1.conv``), its class
and what else must agree. ``share="slice"`` (the default, Once-for-All's weight slicing, see
slicing.py): one tensor of the largest size per place and structure (stride, groups, bias...),
of which a path uses its first channels and centre kernel, so that kernel, expansion and width
options train each other. ``share="module"``: the place and the exact shape (class, extra_repr,
tensor shapes), so kernel, expansion and SE options have one module per option (SPOS's choice
blocks). ``share="block"``: as module, and each module of a stage row is also scoped by the
row's other decisions (see Scopes). In every mode

- a choice between ops or blocks (NASNet's cell operations, ``stages[4]``'s layer or identity)
  has one set of weights per option, shared by every path that picks it (ENAS, SPOS);
- a path computes exactly what its standalone network computes with those weights
  (``Path.state_dict`` gives them);
- repeats share the first blocks: block ``i`` of a stage is the same module in every path with
  more than ``i`` blocks (Once-for-All's elastic depth).

**All weights up front.** The optimizer and DDP need every parameter before training, so the
supernet samples the space when it is made until its set of weights stops growing: every option
of every choice once, then random paths until ``patience`` in a row bring nothing new. A path
met later that needs a weight no sampled path had is *outside* the supernet: ``path`` raises
OutsideSupernet and the samplers draw again (it is counted, and rare by construction).

**What can't be shared** is refused with a located SpecError: a training-config choice (the
space's ``train:``) and a choice that changes the input size (compound scaling's resolution):
trial search handles both.
"""
from __future__ import annotations

import random
import re
import zlib
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from ...analyze import report_of
from ...errors import SearchFailed, SpecError
from ...lang.network import gc_paused
from ..sampling import Chooser, FixedTrial, Sampler, resolve
from .paths import PinnedTrial, UniformTrial, pinned_options
from .slicing import Views, grown, index, standalone_state, structure

SHARES = ("module", "block", "slice")
CACHE = 64           # built paths kept (parameterless containers: they cost little)


@dataclass
class Path:
    """One sample of the space as the supernet runs it."""

    params: dict           # the decisions (Optuna values): the path's identity
    module: nn.Module      # its network, with the supernet's tensors
    macs: int
    n_params: int
    views: Views           # its sliced tensors (share=slice)

    def state_dict(self) -> dict:
        """The weights of the standalone network this path stands for."""
        return standalone_state(self.module, self.views)


def decision_key(params: dict) -> tuple:
    """A path's identity: its decisions in a hashable, ordered form."""
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


def _state(module: nn.Module):
    """A module's own parameters and buffers (not its children's)."""
    for name, t in module._parameters.items():
        if t is not None:
            yield name, t, True
    for name, t in module._buffers.items():
        if t is not None:
            yield name, t, False


def weight_keys(net: nn.Module, scope=lambda name: (), sliced: bool = False):
    """(key, module) of every module of ``net`` that holds tensors: the key is its place (the
    qualified name), its shape (class, extra_repr, its tensors' names, shapes and dtypes) and
    ``scope(name)``: the decisions that give it weights of its own (see Scopes). ``sliced``:
    a module of a kind slicing.py slices is keyed by its structure, not its sizes."""
    for name, m in net.named_modules():
        own = tuple((n, tuple(t.shape), str(t.dtype)) for n, t, _ in _state(m))
        if not own:
            continue
        form = structure(m) if sliced else None
        if form is not None:
            own = tuple((n, len(shape), dtype) for n, shape, dtype in own)
            yield (name, type(m).__qualname__, form, own, scope(name)), m
        else:
            yield (name, type(m).__qualname__, m.extra_repr(), own, scope(name)), m


ROW = re.compile(r"^(stem|stages|head)\[(\d+)\]")
REPEATS = "n"


class Scopes:
    """``share="block"``: the decisions of a layer row (``stages[2].mbconv.k``, ``stages[4]``)
    except its repeats ``n`` scope every module of that row (``stages.2...``): each combination
    of the row's options has all its weights to itself, and no module is trained for the outputs
    of two different kernels or expansions; the first blocks of a row are still shared across
    its repeats. ``share="module"``: no scope (the place and shape alone). Choices outside the
    rows (a cell genotype in ``blocks:``) scope nothing: ENAS shares an operation's weights
    whichever input it reads."""

    def __init__(self, share: str, params: dict):
        self.rows: dict[str, list] = {}
        if share == "block":
            for name, value in sorted(params.items()):
                m = ROW.match(name)
                last = name.replace("]", "").replace("[", ".").split(".")[-1]
                if m and last != REPEATS:
                    self.rows.setdefault(f"{m[1]}.{m[2]}", []).append((name, repr(value)))

    def __call__(self, module_name: str) -> tuple:
        parts = module_name.split(".")
        return tuple(self.rows.get(".".join(parts[:2]), ())) if len(parts) >= 2 else ()


class OutsideSupernet(Exception):
    """A path needs a weight that no path sampled when the supernet was made had."""


class Supernet(nn.Module):
    """Every option's weights of a space (``weights``), and the path it runs (``activate``)."""

    def __init__(self, space: Sampler, seed: int = 0, patience: int = 100,
                 max_samples: int = 5000, share: str = "slice"):
        super().__init__()
        if share not in SHARES:
            raise ValueError(f"share must be one of {', '.join(SHARES)}, got {share!r}")
        self.share = share
        self.sliced = share == "slice"
        self.__dict__["space"] = space           # not a module
        refuse_unshareable(space)
        self.weights = nn.Module()               # the shared tensors, under readable names
        self._names: dict[tuple, dict[str, str]] = {}   # key -> tensor name -> store name
        self.__dict__["_paths"] = OrderedDict()  # params key -> built Path (not submodules)
        self.__dict__["_active"] = None
        self.outside = 0                         # paths drawn again: outside the supernet
        self.sampled, self.macs_range, self.params_range = self._cover(seed, patience,
                                                                       max_samples)

    # -- making it ----------------------------------------------------------------------------
    def _cover(self, seed: int, patience: int, max_samples: int):
        """Sample the space until its set of weights stops growing (see the module docstring)."""
        rng = random.Random(seed)
        reference = None
        macs, params = [], []
        pinned = pinned_options(self.space)
        n, quiet = 0, 0
        with gc_paused():
            while quiet < patience or pinned:
                if n >= max_samples:
                    raise SpecError(f"search space '{self.space.name}': its supernet still grew "
                                    f"after {max_samples} sampled paths; the space is too large "
                                    f"to share weights: use a trial search (strategy=tpe, rl)")
                trial = PinnedTrial(rng, *pinned.pop(0)) if pinned else UniformTrial(rng)
                params_, net = self.resolve(trial)
                shape = net.inp.shape
                if reference is None:
                    reference = shape
                elif shape != reference:
                    bad = trial.pinned_choice or self._changed(params_)
                    raise bad.loc.error(
                        f"this choice changes the input size ({'x'.join(map(str, reference))} "
                        f"-> {'x'.join(map(str, shape))}): one supernet can't share weights "
                        f"across input sizes; search it with a trial strategy (tpe, rl, grid)")
                rep = report_of(net)
                macs.append(rep.macs)
                params.append(rep.params)
                grew = self._allocate(net, Scopes(self.share, params_))
                n += 1
                quiet = 0 if grew else quiet + 1
        return n, (min(macs), max(macs)), (min(params), max(params))

    def _changed(self, params: dict):
        """The first choice of ``params`` (for an error message that has no pinned choice)."""
        return next(c for c in self.space.index.values() if c.path in params)

    def _allocate(self, net, scope) -> bool:
        """Add the weights of the resolved path ``net`` that the supernet lacks (or, sliced,
        grow those too small for it); whether any."""
        with torch.device("meta"):
            shell = net.build()
        new = [key for key, m in weight_keys(shell, scope, self.sliced) if not self._fits(key, m)]
        if not new:
            return False
        real = dict(weight_keys(net.build(), scope, self.sliced))  # initialised as standalone
        for key in new:
            if key in self._names:                                 # sliced, and too small
                for tname, t, is_param in _state(real[key]):
                    store = self._names[key][tname]
                    table = self.weights._parameters if is_param else self.weights._buffers
                    both = grown(table[store].data, t.data)
                    table[store] = nn.Parameter(both) if is_param else both
                continue
            base = key[0].replace(".", "/") or "net"
            if any(k[0] == key[0] for k in self._names):   # another shape at the same place:
                base += f"~{zlib.crc32(repr(key[1:]).encode()):08x}"  # named by it, not by order
            names = {}
            for tname, t, is_param in _state(real[key]):
                store = f"{base}/{tname}"     # ends in the tensor's name, as in a state_dict
                if is_param:
                    self.weights.register_parameter(store, t)
                else:
                    self.weights.register_buffer(store, t)
                names[tname] = store
            self._names[key] = names
        return True

    def _fits(self, key, module) -> bool:
        names = self._names.get(key)
        if names is None:
            return False
        if not self.sliced:
            return True
        return all(index(self._tensor(names[tname]).shape, t.shape) is not None
                   for tname, t, _ in _state(module))

    def _tensor(self, store: str) -> torch.Tensor:
        got = self.weights._parameters.get(store)
        return got if got is not None else self.weights._buffers[store]

    # -- a path ------------------------------------------------------------------------------
    def resolve(self, trial):
        """(decisions, resolved tree) of the path ``trial`` draws (see paths.py)."""
        chooser = Chooser(trial, dict(self.space.index))
        net = resolve(self.space.spec, chooser)
        return dict(chooser.params), net

    def path(self, trial) -> Path:
        """The path ``trial`` draws (decisions given or drawn), built on the shared weights.
        Raises OutsideSupernet for a path that needs a weight the supernet lacks."""
        params, net = self.resolve(trial)
        key = decision_key(params)
        got = self._paths.get(key)
        if got is not None:
            self._paths.move_to_end(key)
            return got
        with torch.device("meta"):
            module = net.build()
        views = Views()
        for k, m in list(weight_keys(module, Scopes(self.share, params), self.sliced)):
            names = self._names.get(k)
            if names is None:
                self.outside += 1
                raise OutsideSupernet(f"{k[0]} ({k[1]} {k[2]})")
            for tname, store in names.items():
                full, table = self._tensor(store), (m._parameters if tname in m._parameters
                                                    else m._buffers)
                if full.shape == table[tname].shape:
                    table[tname] = full
                    continue
                where = index(full.shape, table[tname].shape)
                if where is None:
                    self.outside += 1
                    raise OutsideSupernet(f"{k[0]} ({k[1]} {tname} {tuple(table[tname].shape)})")
                views.add(m, tname, full, where)
        views.hook(module)
        rep = report_of(net)
        got = Path(params, module, rep.macs, rep.params, views)
        self._paths[key] = got
        while len(self._paths) > CACHE:
            self._paths.popitem(last=False)
        return got

    def activate(self, path: Path) -> None:
        self.__dict__["_active"] = path

    @property
    def active(self) -> Path | None:
        return self._active

    def forward(self, x):
        path = self._active
        if path is None:
            raise RuntimeError("the supernet runs one path: activate() one first")
        if path.module.training != self.training:
            path.module.train(self.training)
        return path.module(x)

    def _apply(self, fn, recurse=True):
        # .to()/.cuda() replace the buffers: built paths hold the old ones, so build them again
        out = super()._apply(fn, recurse)
        active = self._active
        self._paths.clear()
        if active is not None:
            self.activate(self.path(FixedTrial(active.params)))
        return out

    # -- what it is ---------------------------------------------------------------------------
    def shared_params(self) -> int:
        return sum(p.numel() for p in self.weights.parameters())

    def describe(self) -> str:
        lo, hi = self.macs_range
        plo, phi = self.params_range
        return (f"supernet: {self.shared_params():,} shared params in "
                f"{len(self._names)} weight modules (from {self.sampled} sampled paths); "
                f"a path has {plo:,}-{phi:,} params and {lo:,}-{hi:,} MACs")


def refuse_unshareable(space: Sampler) -> None:
    """A located SpecError for a choice one supernet can't share."""
    for c in space.train_index.values():
        raise c.loc.error(f"'{c.path}' is a training-config choice: one supernet trains with one "
                          f"config, so it can't be shared; search it with a trial strategy "
                          f"(tpe, rl, random), or fix it in the command line")
    for c in space.index.values():
        last = c.path.replace("]", "").replace("[", ".").split(".")
        if last[0] in ("input",) or (last[0] == "scale" and last[-1] in ("phi", "resolution")):
            raise c.loc.error(f"'{c.path}' changes the input size: one supernet can't share "
                              f"weights across input sizes; search it with a trial strategy "
                              f"(tpe, rl, grid)")
    if not space.index:
        raise SpecError(f"search space '{space.name}' has no choices: nothing to share")


# -- drawing a path within the constraints ---------------------------------------------------

MAX_REDRAWS = 200


class Allowed:
    """Whether a path keeps the static constraints (``where:``, max_macs, max_params); a class,
    not a closure, so that DDP's spawned ranks can unpickle it."""

    def __init__(self, space, constraints: dict):
        self.space, self.constraints = space, dict(constraints)

    def __call__(self, path) -> bool:
        from ..constraints import static_violations
        return not static_violations(self.space, self.constraints, path.params, path.macs,
                                     path.n_params)


def draw_path(supernet, make_trial, allowed):
    """The first path ``make_trial()`` draws that is inside the supernet and ``allowed(path)``
    (the static constraints, ``where:``); with the trial that drew it."""
    for _ in range(MAX_REDRAWS):
        trial = make_trial()
        try:
            path = supernet.path(trial)
        except OutsideSupernet:
            continue
        if allowed(path):
            return path, trial
    raise SearchFailed(f"no path of {MAX_REDRAWS} drawn satisfies the constraints (max_macs, "
                       f"max_params, where:); loosen them: the supernet's paths have "
                       f"{supernet.macs_range[0]:,}-{supernet.macs_range[1]:,} MACs and "
                       f"{supernet.params_range[0]:,}-{supernet.params_range[1]:,} params")
