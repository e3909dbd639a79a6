"""Bad specs: each gives one SpecError that says where (file:line, key path), what is wrong and,
for a misspelt name, the nearest valid one. Shape problems are caught by the resolve pass, so
``netspec.build`` raises the same SpecError and never a torch error.

Every spec is written to a file so that the line numbers are real. Each starts with the same two
lines, so the first layer of ``stages`` is on line 4.
"""
from __future__ import annotations

import textwrap

import pytest

import netspec
from netspec import SpecError

HEAD = "input: {channels: 3, size: 32}\nnum_classes: 10\n"


def _write(tmp_path, text, name="net.yaml"):
    path = tmp_path / name
    path.write_text(HEAD + textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def expect_error(spec, line, path, *words, overrides=(), file=None):
    """The SpecError of ``spec`` from analyze and from build: same place, the given words."""
    errors = []
    for fn in (netspec.analyze, netspec.build):
        with pytest.raises(SpecError) as info:
            fn(spec, overrides)
        errors.append(info.value)
    e = errors[0]
    assert str(errors[1]) == str(e)
    file = str(spec) if file is None else file
    where = f"{file}:{line}" if line is not None else file
    assert (e.file, e.line, e.path) == (file, line, path), str(e)
    assert str(e).startswith(f"{where}: {path}: " if path else f"{where}: "), str(e)
    for word in words:
        assert word in e.reason, f"{word!r} not in {str(e)!r}"
    assert "Traceback" not in str(e)
    return e


# (id, spec text after HEAD, line, key path, words the message must contain)
CASES = [
    # -- YAML ------------------------------------------------------------------------------------
    ("yaml_syntax", """
        stages:
          - conv: {c: 16, k: 3
        head: [flatten]
        """, 5, "", ["invalid YAML", "flow mapping on line 4", "expected ',' or '}'"]),
    ("yaml_bad_indent", """
        stages:
          - conv: {c: 16}
         - pool: max
        """, 5, "", ["invalid YAML"]),
    ("duplicate_key", """
        stages:
          - conv: {c: 16, k: 3, c: 32}
        """, 4, "stages[0].conv.c", ["duplicate key 'c'", "first on line 4"]),
    ("duplicate_top_level_key", """
        stages: []
        num_classes: 5
        """, 4, "num_classes", ["duplicate key 'num_classes'", "first on line 2"]),
    ("python_object_tag", """
        stages:
          - conv: !!python/object:os.system {c: 16}
        """, 4, "stages[0].conv", ["YAML tag '!!python/object:os.system' is not allowed"]),
    ("python_apply_tag", """
        stages:
          - conv: {c: !!python/object/apply:os.system [ls]}
        """, 4, "stages[0].conv.c", ["'!!python/object/apply:os.system' is not allowed"]),
    ("python_name_tag", """
        vars:
          x: !!python/name:os.system ''
        """, 4, "vars.x", ["'!!python/name:os.system' is not allowed"]),
    # -- shapes ------------------------------------------------------------------------------------
    ("conv_makes_map_smaller_than_1x1", """
        stages:
          - conv: {c: 8, k: 3, s: 4}
          - conv: {c: 8, k: 9, p: 0}
        """, 5, "stages[1].conv", ["kernel 9x9", "makes the 8x8 input smaller than 1x1"]),
    ("pool_on_a_1x1_map", """
        stages:
          - conv: {c: 8, s: 4}
          - conv: {c: 8, s: 4}
          - conv: {c: 8, s: 2}
          - pool: {type: max, k: 2, s: 2}
        """, 7, "stages[3].pool", ["max pool", "stride 2", "1x1 input smaller than 1x1"]),
    ("residual_identity_branches_disagree", """
        stages:
          - residual:
              body: [conv: {c: 16, s: 2}]
              shortcut: identity
        """, 4, "stages[0].residual",
     ["residual branches disagree", "16x16x16", "3x32x32", "projection"]),
    ("residual_shortcut_path_disagrees", """
        stages:
          - residual:
              body: [conv: {c: 16}]
              shortcut: [conv: {c: 8, k: 1}]
        """, 4, "stages[0].residual",
     ["residual branches disagree", "16x32x32", "8x32x32"]),
    ("branch_concat_of_different_sizes", """
        stages:
          - branch:
              - conv: {c: 16, s: 2}
              - conv: {c: 8}
        """, 4, "stages[0].branch",
     ["cannot concatenate maps of different sizes", "16x16x16", "8x32x32"]),
    ("branch_add_of_different_shapes", """
        stages:
          - branch:
              paths: [conv: {c: 16}, conv: {c: 8}]
              merge: add
        """, 4, "stages[0].branch", ["cannot add", "16x32x32", "8x32x32"]),
    ("groups_do_not_divide_channels", """
        stages:
          - conv: {c: 16}
          - conv: {c: 24, groups: 5}
        """, 5, "stages[1].conv.groups", ["groups=5", "16", "24"]),
    ("linear_fed_a_4d_map", """
        stages:
          - conv: {c: 16}
        head:
          - linear: 10
        """, 6, "head[0].linear", ["linear needs a flat vector", "16x32x32", "flatten"]),
    ("conv_fed_a_flat_vector", """
        stages:
          - pool: global_avg
          - conv: {c: 8}
        """, 5, "stages[1].conv", ["needs a CxHxW feature map", "flat vector of 3"]),
    ("dense_layer_changes_the_map_size", """
        stages:
          - dense: {n: 2, body: {conv: {c: 4, s: 2}}}
        """, 4, "stages[0].dense.body", ["must keep the 32x32 map size", "4x16x16"]),
    ("stride_zero", """
        stages:
          - conv: {c: 8, s: 0}
        """, 4, "stages[0].conv.s", ["stride must be at least 1", "got 0"]),
    ("negative_padding", """
        stages:
          - pool: {type: avg, k: 3, p: -1}
        """, 4, "stages[0].pool.p", ["padding must be at least 0"]),
    ("groupnorm_groups_do_not_divide", """
        defaults: {norm: gn, gn_groups: 4}
        stages:
          - conv: {c: 6}
        """, 5, "stages[0].conv", ["group norm with 4 groups", "6 channels"]),
    # -- channels and numbers --------------------------------------------------------------------
    ("zero_channels", """
        stages:
          - conv: {c: 0}
        """, 4, "stages[0].conv.c", ["at least 1 output channel", "got 0"]),
    ("negative_channels", """
        stages:
          - conv: {c: 16}
          - conv: {c: -8}
        """, 5, "stages[1].conv.c", ["at least 1 output channel", "got -8"]),
    ("non_integer_channels_from_expression", """
        stages:
          - conv: {c: in * 1.5}
        """, 4, "stages[0].conv.c", ["whole number", "4.5", "in * 1.5", "round()"]),
    ("non_integer_repeats", """
        stages:
          - conv: {c: 8, n: 2.5}
        """, 4, "stages[0].conv.n", ["'n' must be a whole number", "2.5"]),
    ("zero_repeats", """
        stages:
          - conv: {c: 8, n: 0}
        """, 4, "stages[0].conv.n", ["must be at least 1", "got 0"]),
    ("runaway_repeats", """
        stages:
          - conv: {c: 8, n: 1000000}
        """, 4, "stages[0].conv.n", ["1000000 repeats", "at most 10000"]),
    ("dropout_out_of_range", """
        stages:
          - dropout: 1.5
        """, 4, "stages[0].dropout", ["dropout probability must be in [0, 1)", "1.5"]),
    ("infinite_width", """
        scale: {width: .inf}
        """, 3, "scale.width", ["'width' must be a finite number", "inf"]),
    # -- wrong types -----------------------------------------------------------------------------
    ("bool_argument_given_a_number", """
        stages:
          - conv: {c: 8, dw: 3}
        """, 4, "stages[0].conv.dw", ["'dw' must be true or false", "got 3"]),
    ("pair_argument_given_three_numbers", """
        stages:
          - conv: {c: 8, k: [1, 2, 3]}
        """, 4, "stages[0].conv.k", ["number or a pair [h, w]", "[1, 2, 3]"]),
    ("section_is_not_a_list", """
        stages: 5
        """, 3, "stages", ["'stages' must be a list of layers"]),
    ("layer_is_a_number", """
        stages:
          - conv: {c: 8}
          - 5
        """, 5, "stages[1]", ["expected a layer", "got 5"]),
    ("conv_given_a_scalar", """
        stages:
          - conv: 16
        """, 4, "stages[0].conv", ["conv needs a mapping of arguments", "got 16"]),
    ("bias_is_not_a_boolean", """
        stages:
          - conv: {c: 8, bias: 3}
        """, 4, "stages[0].conv.bias", ["bias must be true, false or auto", "got 3"]),
    ("layer_mapping_with_two_keys", """
        stages:
          - conv: {c: 8}
            pool: max
        """, 4, "stages[0]", ["exactly one name", "2 keys: conv, pool", "own list item"]),
    # -- misspelt names and keys (with the suggestion) -------------------------------------------
    ("unknown_layer_name", """
        stages:
          - convv: {c: 8}
        """, 4, "stages[0].convv", ["unknown layer or block 'convv'", "did you mean 'conv'?"]),
    ("unknown_block_name", """
        stages:
          - bottlenek: {c: 64}
        """, 4, "stages[0].bottlenek",
     ["unknown layer or block 'bottlenek'", "did you mean 'bottleneck'?"]),
    ("unknown_argument", """
        stages:
          - conv: {c: 8, kk: 3}
        """, 4, "stages[0].conv.kk", ["conv has no argument 'kk'", "did you mean 'k'?"]),
    ("unknown_top_level_key", """
        stagse:
          - conv: {c: 8}
        """, 3, "stagse", ["unknown top-level key 'stagse'", "did you mean 'stages'?"]),
    ("unknown_activation", """
        stages:
          - conv: {c: 8, act: rleu}
        """, 4, "stages[0].conv.act", ["unknown act 'rleu'", "did you mean 'relu'?"]),
    ("unknown_activation_in_defaults", """
        defaults: {norm: bn, act: reul6}
        """, 3, "defaults.act", ["unknown activation 'reul6'", "did you mean 'relu6'?"]),
    ("unknown_default_key", """
        defaults: {nrom: bn}
        """, 3, "defaults.nrom", ["unknown key 'nrom' in defaults", "did you mean 'norm'?"]),
    ("unknown_pool_type", """
        stages:
          - pool: mx
        """, 4, "stages[0].pool", ["unknown type 'mx'", "did you mean 'max'?"]),
    ("unknown_shortcut", """
        stages:
          - residual: {body: [conv: {c: 3}], shortcut: identiy}
        """, 4, "stages[0].residual.shortcut",
     ["unknown shortcut 'identiy'", "did you mean 'identity'?"]),
    ("unknown_name_in_expression", """
        stages:
          - conv: {c: 16 * wdth}
        """, 4, "stages[0].conv.c", ["unknown name 'wdth'", "did you mean 'width'?"]),
    ("unknown_name_in_condition", """
        stages:
          - conv: {c: 8, if: widht > 1}
        """, 4, "stages[0].conv.if", ["unknown name 'widht'", "did you mean 'width'?"]),
    ("layer_written_as_argument_of_residual", """
        stages:
          - residual: {conv: {c: 3}}
        """, 4, "stages[0].residual.conv",
     ["residual has no argument 'conv'", "put it under 'body:'"]),
    # -- blocks ----------------------------------------------------------------------------------
    ("missing_required_block_argument", """
        stages:
          - bottleneck: {s: 2}
        """, 4, "stages[0].bottleneck",
     ["block 'bottleneck'", "missing its required argument 'c'"]),
    ("block_argument_that_does_not_exist", """
        stages:
          - bottleneck: {c: 64, grops: 2}
        """, 4, "stages[0].bottleneck.grops",
     ["bottleneck has no argument 'grops'", "did you mean 'groups'?", "its arguments: c, s"]),
    ("error_inside_a_library_block", """
        stages:
          - conv: {c: 16}
          - bottleneck: {c: 64, groups: 3}
        """, 5, "stages[1].bottleneck",
     ["in block 'bottleneck'", "library.yaml", "groups=3 must divide"]),
    ("error_inside_a_user_block", """
        blocks:
          widen:
            args: {t: 2}
            body:
              - conv: {c: in * t, k: 1}
              - conv: {c: in * t, groups: 5}
        stages:
          - conv: {c: 8}
          - widen: {t: 2}
        """, 11, "stages[1].widen",
     ["in block 'widen'", "net.yaml:8", "blocks.widen.body[1].conv.groups", "groups=5"]),
    ("unknown_name_inside_a_user_block", """
        blocks:
          mine:
            args: {c: required}
            conv: {c: cc}
        stages:
          - mine: {c: 16}
        """, 8, "stages[0].mine",
     ["in block 'mine'", "net.yaml:6", "unknown name 'cc'", "did you mean 'c'?"]),
    ("too_many_positional_block_arguments", """
        stages:
          - fire: [16, 64, 64, 3]
        """, 4, "stages[0].fire", ["fire takes at most 3 positional arguments", "got 4"]),
    ("block_named_like_a_layer", """
        blocks:
          conv: {args: {}, body: [identity]}
        """, 4, "blocks.conv", ["has the name of a built-in layer"]),
    ("block_that_uses_itself", """
        blocks:
          loop:
            args: {c: 8}
            body: [loop: {c: c}]
        stages:
          - conv: {c: 4}
          - loop: {c: 4}
        """, 9, "stages[1].loop", ["blocks nest more than 32 deep", "'loop' use itself?"]),
    ("layer_named_like_a_module_attribute", """
        stages:
          - [conv: {c: 4, name: forward}]
        """, 4, "stages[0][0].conv.name", ["cannot be named 'forward'", "choose another"]),
    # -- unsafe expressions ----------------------------------------------------------------------
    ("attribute_access", """
        stages:
          - conv: {c: in.__class__}
        """, 4, "stages[0].conv.c", ["attribute access ('.__class__') is not allowed"]),
    ("dunder_import", """
        stages:
          - conv: {c: "__import__('os').system('ls')"}
        """, 4, "stages[0].conv.c", ["method calls ('.system()') are not allowed"]),
    ("dunder_import_call", """
        stages:
          - conv: {c: "__import__('os')"}
        """, 4, "stages[0].conv.c", ["function '__import__' is not allowed", "allowed: ceil"]),
    ("lambda", """
        stages:
          - conv: {c: "(lambda: 8)()"}
        """, 4, "stages[0].conv.c", ["lambda is not allowed"]),
    ("call_not_whitelisted", """
        stages:
          - conv: {c: flor(in * 2.5)}
        """, 4, "stages[0].conv.c", ["function 'flor' is not allowed", "did you mean 'floor'?"]),
    ("huge_power", """
        stages:
          - conv: {c: 9 ** 9 ** 9}
        """, 4, "stages[0].conv.c", ["too large"]),
    ("division_by_zero", """
        stages:
          - conv: {c: in // (in - 3)}
        """, 4, "stages[0].conv.c", ["division by zero"]),
    ("unparsable_expression", """
        stages:
          - conv: {c: in * }
        """, 4, "stages[0].conv.c", ["cannot parse expression 'in *'"]),
    # -- spec files: base, include, search choices -----------------------------------------------
    ("base_that_does_not_exist", """
        base: resnet_50
        """, 3, "base", ["unknown spec 'resnet_50'", "did you mean 'resnet50'?", "the zoo has:"]),
    ("include_of_a_missing_file", """
        include: [my_blocks.yaml]
        """, 3, "include[0]", ["no such block library: my_blocks.yaml"]),
    ("unresolved_search_choice", """
        stages:
          - conv: {c: {choice: [16, 32]}, k: 3}
        """, 4, "stages[0].conv.c", ["search choice", "netspec.search", "replace it with a value"]),
    ("unresolved_block_choice", """
        stages:
          - {choice: [conv, pool]}
        """, 4, "stages[0]", ["search choice"]),
]


@pytest.mark.parametrize("text, line, path, words", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_spec(tmp_path, text, line, path, words):
    expect_error(_write(tmp_path, text), line, path, *words)


def test_there_are_many_distinct_bad_specs():
    assert len({c[0] for c in CASES}) >= 30


def test_bad_input_key_and_num_classes(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text("input: {channels: 3, sise: 32}\nstages: []\n")
    expect_error(path, 1, "input.sise", "unknown key 'sise' in input", "did you mean 'size'?")
    path.write_text("input: {channels: 3, size: 32}\n\nnum_classes: 0\n")
    expect_error(path, 3, "num_classes", "num_classes must be at least 1", "got 0")


def test_error_in_a_child_spec_points_to_the_child(tmp_path):
    path = tmp_path / "child.yaml"
    path.write_text("base: resnet50\ninput: {size: 64}\nhead:\n  - conv: {c: 8}\n  - linear: 10\n")
    expect_error(path, 5, "head[1].linear", "linear needs a flat vector", "8x2x2")


def test_a_search_space_must_be_sampled(tmp_path):
    e = expect_error(_write(tmp_path, "stages:\n  - conv: {c: 8, k: {int: [1, 7]}}\n"), 4,
                     "stages[0].conv.k", "search choice")
    assert "{'int': [1, 7]}" in e.reason


# -- overrides ---------------------------------------------------------------------------------

def _override_error(tmp_path, override, path, *words):
    spec = _write(tmp_path, "stages:\n  - conv: {c: 16}\n")
    return expect_error(spec, None, path, *words, overrides=[override],
                        file=f"<override {override}>")


def test_misspelt_override_key(tmp_path):
    _override_error(tmp_path, "scale.widht=0.5", "scale.widht",
                    "unknown key 'widht' in scale", "did you mean 'width'?")


def test_override_without_a_value(tmp_path):
    _override_error(tmp_path, "scale.width", "", "must look like key.path=value")


def test_override_index_out_of_range(tmp_path):
    _override_error(tmp_path, "stages[3].conv.c=2", "stages[3].conv.c", "stages has no item 3")


def test_override_below_a_value(tmp_path):
    _override_error(tmp_path, "num_classes.x=3", "num_classes.x",
                    "'num_classes' is a value, not a section")


def test_override_with_a_bad_value(tmp_path):
    _override_error(tmp_path, "stages[0].conv.c=0", "stages[0].conv.c",
                    "at least 1 output channel")


def test_override_with_a_misspelt_name_in_an_expression(tmp_path):
    _override_error(tmp_path, "stages[0].conv.c=16*wdth", "stages[0].conv.c",
                    "unknown name 'wdth'", "did you mean 'width'?")


def test_override_with_a_name_where_the_list_needs_an_index(tmp_path):
    _override_error(tmp_path, "stages.conv.c=8", "stages.conv.c",
                    "'stages' is a list: give an index like [0], not 'conv'")


def test_override_with_an_unsafe_yaml_tag(tmp_path):
    _override_error(tmp_path, "scale.width=!!python/object/apply:os.system [ls]", "",
                    "cannot read the override")


# -- spec names ----------------------------------------------------------------------------------

def test_unknown_spec_name_lists_the_zoo():
    with pytest.raises(SpecError) as info:
        netspec.analyze("resnet_50")
    e = info.value
    assert str(e).startswith("resnet_50: unknown spec 'resnet_50'")
    assert "did you mean 'resnet50'?" in e.reason
    for name in ("mobilenet_v2", "vgg16", "resnet50"):
        assert name in e.reason


def test_missing_spec_file(tmp_path):
    with pytest.raises(SpecError, match="no such spec file"):
        netspec.build(tmp_path / "nope.yaml")


def test_spec_error_is_the_only_error_type():
    assert issubclass(SpecError, ValueError)
    e = SpecError("what is wrong", file="a.yaml", line=3, path="stages[1].conv")
    assert str(e) == "a.yaml:3: stages[1].conv: what is wrong"
