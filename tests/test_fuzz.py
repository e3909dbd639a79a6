"""Mutated zoo specs: the compiler answers with a report or a SpecError, never anything else.

Hypothesis takes the shipped specs (at a small input size so a resolve takes milliseconds),
deletes keys, swaps values for random ints/floats/strings/lists/None, misspells keys, gives
strides, kernels and channels odd values, inserts garbage layers or corrupts the YAML text, and
checks that ``netspec.analyze`` either succeeds or raises :class:`netspec.SpecError`. Any other
exception (a TypeError, a ZeroDivisionError, a torch error) is a compiler bug. When a mutant
resolves and is small, it is also built and run: a spec that resolves must never fail in torch.
"""
from __future__ import annotations

import copy
from functools import cache

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netspec
from netspec import SpecError
from netspec.lang.loader import spec_path

SIZE = 32          # input size for the fuzzed specs: small maps make shape errors likely and fast


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


# too deep for SIZE: their pools and strided convs shrink a 32x32 map below 1x1 (they resolve at
# their own sizes, which test_zoo_specs_resolve_at_the_fuzz_size checks)
TOO_SMALL_AT_SIZE = {"alexnet", "alexnet_paper", "googlenet_paper", "inception_resnet_v2",
                     "inception_v3", "inception_v4", "unet", "zfnet_paper"}


@cache
def too_small() -> dict[str, SpecError]:
    """The zoo specs that do not resolve at SIZE, with their errors."""
    out = {}
    for name in netspec.zoo():
        try:
            netspec.analyze(name, [f"input.size={SIZE}"])
        except SpecError as e:
            out[name] = e
    return out


@cache
def zoo_specs() -> dict[str, str]:
    """The YAML text of every zoo spec that resolves unmodified at SIZE."""
    return {name: spec_path(name).read_text(encoding="utf-8") for name in netspec.zoo()
            if name not in too_small()}


def _plain_tree(text: str) -> dict:
    tree = yaml.safe_load(text)
    tree.setdefault("input", {})
    if isinstance(tree["input"], dict):
        tree["input"]["size"] = SIZE
    return tree


# -- mutations ------------------------------------------------------------------------------------

NAMES = ["conv", "pool", "linear", "flatten", "norm", "act", "dropout", "se", "shuffle", "lrn",
         "identity", "branch", "residual", "dense", "bottleneck", "basic", "inverted_residual",
         "mbconv", "inception", "fire", "dense_layer", "dense_block", "transition", "c", "k", "s",
         "p", "d", "n", "t", "groups", "dw", "in", "width", "num_classes", "global_avg", "max",
         "avg", "relu", "none", "bn", "gn", "auto", "projection", "identity", "same", "concat",
         "add", "required", "if", "name", "body", "paths", "shortcut", "merge", "type", "size"]
EXPRESSIONS = ["in * 2", "in * 1.5", "in // 0", "c * width", "round(in * 0.3)", "in - in",
               "make_divisible(in, 0)", "max()", "min(1)", "sqrt(-1)", "1 / 0", "-in", "2 ** 70",
               "(10.0 ** 64) ** 64", "nope + 1", "__import__('os')", "in.real", "[1][0]",
               "lambda: 1", "'a' < 3", "1 if in else", "int(1e400)", "ceil(1e400)", "in ** 0.5",
               "floor(-in)", "x" * 200]
ODD_NUMBERS = [0, -1, 1, 2, 3, 5, 7, 13, 64, 100, 1000, 2.5, 0.5, -0.5, 1e9, 10**12]
GARBAGE_LAYERS = [
    {"conv": {"c": 0}}, {"conv": {"c": -4, "k": 3}}, {"conv": {"k": 99, "s": 99}},
    {"conv": {"c": 7, "groups": 3}}, {"conv": {"c": 8, "dw": True}}, {"conv": {"p": -2}},
    {"conv": {"s": 0}}, {"conv": {"k": 0}}, {"conv": {"d": 0}}, {"conv": {"k": [3, 0]}},
    {"pool": {"k": 0}}, {"pool": {"s": 0}}, {"pool": {"type": "adaptive_avg", "size": 0}},
    {"pool": "global_avg"}, {"pool": {"type": "max", "k": 64, "s": 64}}, {"pool": "bogus"},
    {"linear": 10}, {"linear": 0}, "flatten", {"flatten": None}, {"lrn": {"size": 0}},
    {"dropout": 1.5}, {"shuffle": 0}, {"shuffle": 5}, {"se": {"c": 0}}, {"norm": "gn"},
    {"act": "bogus"}, {"identity": {"x": 1}}, {"conv": {"c": 6, "norm": "gn"}},
    {"conv": {"p": [1, "a"]}}, {"conv": {"bias": 3}}, {"norm": {"type": "gn"}},
    {"residual": [{"conv": {"c": 5, "s": 2}}]},
    {"residual": {"body": [{"conv": {"c": 5, "s": 2}}], "shortcut": "identity"}},
    {"residual": {"body": [{"conv": {"s": 3}}], "shortcut": "pad"}},
    {"residual": {"body": "flatten", "shortcut": "projection"}},
    {"residual": {"body": [{"conv": {"c": 4}}], "shortcut": [{"conv": {"c": 5}}]}},
    {"branch": [{"conv": {"c": 4, "s": 2}}, {"conv": {"c": 4}}]},
    {"branch": {"paths": [{"conv": {"c": 4}}, {"conv": {"c": 5}}], "merge": "add"}},
    {"branch": {"paths": [], "merge": "concat"}}, {"branch": ["flatten", "flatten"]},
    {"dense": {"n": 2, "body": {"conv": {"c": 4, "s": 2}}}},
    {"dense": {"n": 0, "body": "identity"}},
    {"bottleneck": {"c": 6, "groups": 4}}, {"bottleneck": {"s": 2}}, {"inception": [1, 2]},
    {"fire": [0, 0, 0]}, {"mbconv": {"c": 8, "t": 0}}, {"transition": {"compression": 0}},
    {"dense_block": {"n": -1}}, {"conv": {"c": 4, "n": 0}}, {"conv": {"c": 4, "if": "in >"}},
    {"conv": {"c": 4, "name": "3x"}}, [{"conv": {"c": 4, "name": "forward"}}],
    [{"conv": {"c": 4, "name": "a"}}, {"conv": {"c": 4, "name": "a"}}],
    {"conv": {"c": 4, "width": 0}}, {"conv": {"c": 4, "bias": 3}},
    {"conv": {"c": 4}, "pool": "max"}, {"conv": {"c": {"choice": [4, 8]}}}, {"conv": [1, 2]},
    {"unknown_layer": 1}, 42, None, [], [[]], "in * 2", {"conv": {"c": "in * 1.5"}},
    {"dense": {"n": 2, "body": {"conv": {"c": 4, "if": False}}}},
    {"branch": [{"conv": {"c": 4, "if": False}}, "identity"]},
    {"branch": {"paths": [{"conv": {"c": 4}}, {"conv": {"c": 4}}], "split": True}},
    {"branch": {"paths": [{"conv": {"c": 4}}, {"conv": {"c": 4}}, "identity"], "split": True}},
    {"aux": [{"pool": "global_avg"}, {"linear": 3}]}, {"aux": {"body": "flatten", "weight": -1}},
    {"aux": [{"conv": {"c": 4}}]},
    {"residual": {"body": [{"conv": {"c": 4}}], "pre": [{"norm": "bn"}, "flatten"]}},
    {"factorized_reduce": {"c": 5}}, {"factorized_reduce": {"c": 0}},
    {"cells": [{"cell": {"c": 8, "genotype": [{"inputs": [1, 0], "ops": ["identity", "bogus"]}]}}]},
    {"cells": [{"cell": {"c": 8, "genotype": [{"inputs": [1, 7], "ops": ["identity",
                                                                         "identity"]}]}}]},
    {"cells": [{"cell": {"c": 8, "s": 2, "genotype": [{"inputs": [1, 0], "ops": [
        "sep_conv_3x3", "max_pool_3x3"], "combine": "concat"}], "concat": [0, 9]}}]},
    {"cells": [{"cell": {"c": 8, "genotype": "nope"}}]}, {"cells": [{"conv": {"c": 4}}]},
    {"cell": {"c": 8, "genotype": [{"inputs": [1], "ops": ["identity"]}]}},
    {"cells": [{"cell": {"c": 8, "genotype": [{"inputs": [1, 0], "ops": ["sep_conv_7x7",
                                                                         "avg_pool_3x3"]}]},
                "n": 3}]},
]

scalars = st.one_of(
    st.integers(-5, 5000), st.sampled_from(ODD_NUMBERS),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
    st.sampled_from(NAMES), st.sampled_from(EXPRESSIONS), st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(NAMES), inner, max_size=3)),
    max_leaves=6,
)


def _slots(tree, path=()):
    """Every (container, key) below ``tree``, depth first."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield tree, k
            yield from _slots(v, (*path, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield tree, i
            yield from _slots(v, (*path, i))


def _misspell(word: str, data) -> str:
    if not word:
        return "x"
    i = data.draw(st.integers(0, len(word) - 1))
    how = data.draw(st.sampled_from(["drop", "double", "swap", "case", "append"]))
    if how == "drop" and len(word) > 1:
        return word[:i] + word[i + 1:]
    if how == "swap" and i + 1 < len(word):
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if how == "case":
        return word.upper()
    if how == "append":
        return word + "s"
    return word[:i] + word[i] + word[i:]


HOW = ["insert_layer"] * 3 + ["odd_number"] * 3 + ["replace"] * 2 + ["rename", "wrap", "delete",
                                                                    "misspell", "duplicate"]
LAYER_NAMES = NAMES[:23]


def mutate(tree, data) -> None:
    """One random change of ``tree`` in place (mostly in the layers, where the rules are)."""
    slots = list(_slots(tree))
    inside = {id(c) for key in ("stem", "stages", "head", "blocks")
              for c, _ in _slots(tree.get(key))}
    layers = [s for s in slots if id(s[0]) in inside]
    if layers and data.draw(st.integers(0, 9)) > 0:
        slots = layers
    how = data.draw(st.sampled_from(HOW))
    if how == "insert_layer":
        section = data.draw(st.sampled_from(["stem", "stages", "head"]))
        layers = tree.get(section)
        if not isinstance(layers, list):
            layers = tree[section] = []
        at = data.draw(st.integers(0, len(layers)))
        layers.insert(at, copy.deepcopy(data.draw(st.sampled_from(GARBAGE_LAYERS))))
        return
    if not slots:
        return
    container, key = data.draw(st.sampled_from(slots))
    if how in ("rename", "wrap"):           # a layer under another name, or inside a combinator
        single = [(c, k) for c, k in slots if isinstance(c, dict) and len(c) == 1
                  and isinstance(c.get(k), (dict, list, type(None), int, str))]
        if not single:
            return
        container, key = data.draw(st.sampled_from(single))
        if how == "rename":
            container[data.draw(st.sampled_from(LAYER_NAMES))] = container.pop(key)
        else:
            layer = {key: container.pop(key)}
            wrapper = data.draw(st.sampled_from([
                lambda x: {"residual": [x]}, lambda x: {"residual": {"body": x, "shortcut": "pad"}},
                lambda x: {"branch": [x, x]}, lambda x: {"branch": {"paths": [x, "identity"],
                                                                  "merge": "add"}},
                lambda x: {"dense": {"n": 2, "body": x}}, lambda x: {"residual": {
                    "body": [x], "shortcut": [x]}}]))
            container.update(wrapper(layer))
        return
    if how == "odd_number":
        numeric = [(c, k) for c, k in slots
                   if isinstance(c, dict) and k in ("c", "k", "s", "p", "n", "t", "d", "groups",
                                                    "size", "channels", "num_classes", "width",
                                                    "depth", "divisor", "compression", "se")]
        if numeric:
            container, key = data.draw(st.sampled_from(numeric))
        value = data.draw(st.one_of(st.sampled_from(ODD_NUMBERS), st.sampled_from(EXPRESSIONS)))
        container[key] = value
    elif how == "delete":
        del container[key]
    elif how == "replace":
        container[key] = data.draw(values)
    elif how == "misspell" and isinstance(container, dict):
        value = container.pop(key)
        container[_misspell(str(key), data)] = value
    elif how == "duplicate" and isinstance(container, list):
        container.insert(key, copy.deepcopy(container[key]))


def _corrupt_text(text: str, data) -> str:
    """A character-level change of the YAML text (the loader must cope too)."""
    i = data.draw(st.integers(0, max(0, len(text) - 1)))
    junk = data.draw(st.sampled_from(["", ":", "- ", "{", "]", "\t", "  ", "&a ", "*a", "<<: ",
                                      "? ", "'", '"', "\n  x: 1\n", "#", "\x00",
                                      "!!python/object:os.system ", "!!binary "]))
    cut = data.draw(st.integers(0, 3))
    return text[:i] + junk + text[i + cut:]


_counter = iter(range(10**9))


def _check_report_or_spec_error(spec, overrides=()):
    try:
        return netspec.analyze(spec, overrides)
    except SpecError as e:
        msg = str(e)
        assert msg and e.reason, "a SpecError must say what is wrong"
        assert msg.startswith(e.file), msg
        return None


def _small(report) -> bool:
    return report is not None and report.params < 300_000 and report.macs < 30_000_000


def _forward(spec, report, overrides=()):
    model = netspec.build(spec, overrides).eval()
    with torch.no_grad():
        out = model(torch.randn(1, *report.input_shape))
    if report.outputs:                        # a backbone's dict of maps
        assert {k: tuple(v.shape[1:]) for k, v in out.items()} == report.outputs
    else:
        assert tuple(out.shape[1:]) == tuple(report.output_shape)


# -- the tests ------------------------------------------------------------------------------------

def test_zoo_specs_resolve_at_the_fuzz_size():
    """Every zoo spec is fuzzed but the few too deep for SIZE, and those fail only for that."""
    assert set(too_small()) == TOO_SMALL_AT_SIZE
    for name, error in too_small().items():
        assert "smaller than 1x1" in error.reason, (name, str(error))
        netspec.analyze(name)                           # at its own input size
    assert len(zoo_specs()) == len(netspec.zoo()) - len(TOO_SMALL_AT_SIZE)


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_mutated_zoo_specs_raise_only_spec_errors(fuzz_dir, data):
    names = sorted(zoo_specs())
    name = data.draw(st.sampled_from(names))
    tree = _plain_tree(zoo_specs()[name])
    for _ in range(data.draw(st.integers(1, 3))):
        mutate(tree, data)
    if data.draw(st.booleans()):
        spec = tree                                  # as a Python dict
    else:                                            # as a YAML file (the loader's path)
        spec = fuzz_dir / f"mutant{next(_counter)}.yaml"
        try:
            spec.write_text(yaml.safe_dump(tree, sort_keys=False), encoding="utf-8")
        except (yaml.YAMLError, ValueError):
            return
    overrides = []
    if data.draw(st.integers(0, 4)) == 0:
        key = data.draw(st.sampled_from(["scale.width", "scale.depth", "scale.widht", "input.size",
                                         "stages[0].c", "stages[99].c", "head", "num_classes",
                                         "stem[0].conv.s", "defaults.act", "input", "vars.x"]))
        value = data.draw(st.sampled_from(["0.5", "0", "-1", "abc", "[1, 2]", "", "{a: 1}",
                                           "null", "1e9", ".nan", ".inf", "in * 2"]))
        overrides = [f"{key}={value}"]
    report = _check_report_or_spec_error(spec, overrides)
    if _small(report):
        _forward(spec, report, overrides)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_corrupted_yaml_text_raises_only_spec_errors(fuzz_dir, data):
    name = data.draw(st.sampled_from(sorted(zoo_specs())))
    text = zoo_specs()[name]
    for _ in range(data.draw(st.integers(1, 3))):
        text = _corrupt_text(text, data)
    path = fuzz_dir / f"corrupt{next(_counter)}.yaml"
    path.write_text(text, encoding="utf-8")
    _check_report_or_spec_error(path, [f"input.size={SIZE}"])


@pytest.mark.parametrize("name, overrides", [
    ("squeezenet1_0", ["input.size=32", "num_classes=7"]),
    ("mobilenet_v2", ["input.size=32", "scale.width=0.25", "num_classes=5"]),
])
def test_tiny_zoo_networks_build_and_run(name, overrides):
    """Built and run, a resolved spec gives the output shape its report promised."""
    _forward(name, netspec.analyze(name, overrides), overrides)
