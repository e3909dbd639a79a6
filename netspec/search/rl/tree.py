"""The tree of tried samples, so that the controller never repeats a finished trial (``unique``).

The study's finished trials form a tree of decisions (each trial's order of decisions is kept in
its system attribute ``netspec.rl:path``), and an option whose every completion was tried already
is masked out of the softmax (its probability set to 0) before the draw. The policy gradient uses
the masked distribution the token was drawn from. Once every sample of a finite space was tried,
the controller draws freely again. A runner trial trains with a fixed seed, so a repeat would
spend a whole training to learn the same number; with a noisy reward ``unique=False`` lets the
controller sample its favourite again.
"""
from __future__ import annotations

from optuna.trial import TrialState

from .options import options_of, token_of

PATH = "netspec.rl:path"      # a trial's decisions in the order they were made (system attribute)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class Node:
    """A prefix of decisions in the tree of the study's finished samples."""

    __slots__ = ("children", "options", "end", "_done")

    def __init__(self):
        self.children: dict[str, dict[int, Node]] = {}    # next decision -> token -> node
        self.options: dict[str, int] = {}                  # next decision -> number of options
        self.end = False                                   # a sample ended here
        self._done: bool | None = None

    def child(self, name: str, token: int, n: int) -> Node:
        self.options[name] = n
        return self.children.setdefault(name, {}).setdefault(token, Node())

    def exhausted(self) -> bool:
        """Every completion of this prefix was tried: a sample ended here and nothing follows,
        or every option of the decision that follows is exhausted."""
        if self._done is None:
            if not self.children:
                self._done = self.end
            else:
                self._done = any(len(kids) == self.options[name] and
                                 all(k.exhausted() for k in kids.values())
                                 for name, kids in self.children.items())
        return self._done

    def masked(self, name: str) -> tuple[int, ...]:
        """The options of decision ``name`` whose every completion was tried already."""
        kids = self.children.get(name, {})
        banned = tuple(sorted(t for t, k in kids.items() if k.exhausted()))
        return banned if len(banned) < self.options.get(name, 0) else ()


def tried_tree(study, bins: int, max_int_options: int) -> Node:
    """The tree of every finished trial's decisions (in the order they were made)."""
    root = Node()
    for t in study.get_trials(deepcopy=False, states=FINISHED):
        node = root
        for name in t.system_attrs.get(PATH) or list(t.params):
            dist = t.distributions.get(name)
            if dist is None or dist.single():
                continue
            options = options_of(dist, bins, max_int_options)
            node = node.child(name, token_of(dist, options, t.params[name]), len(options))
        node.end = True
    return root
