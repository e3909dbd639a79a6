"""Bad inputs that once escaped as a Python traceback, a misleading message or no error at all:
each is now one located SpecError (file:line where there is a file, the key path, words a user
can act on), and the command line prints it as one ``error:`` line with exit status 2.

As in test_errors.py, every spec starts with the same two lines (HEAD), so the first layer of
``stages`` is on line 4.
"""
from __future__ import annotations

import subprocess
import sys

import pytest
from test_errors import HEAD, expect_error

import netspec
from netspec import SpecError


def write(tmp_path, name, text, head=True):
    path = tmp_path / name
    path.write_text((HEAD if head else "") + text, encoding="utf-8")
    return path


def summary_cli(*args, cwd):
    """``python -m netspec.summary ARGS`` in a process of its own: exit 2 and one error line."""
    proc = subprocess.run([sys.executable, "-m", "netspec.summary", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


# -- 1. a base: (or include:) file that is not a spec --------------------------------------------

NOTES = "just some notes\nabout the network\n"


def test_base_that_is_plain_text(tmp_path):
    (tmp_path / "notes.yaml").write_text(NOTES)
    spec = write(tmp_path, "net.yaml", "base: notes.yaml\nstages: [conv: 8]\n")
    e = expect_error(spec, 3, "base", "base 'notes.yaml' is not a spec",
                     str(tmp_path / "notes.yaml"), "plain text ('just some notes about the network')",
                     "not a mapping")
    assert "attribute" not in str(e)


def test_base_txt_file_found_from_the_working_folder(tmp_path, monkeypatch):
    """The report's own case: ``base: notes.txt`` gave "'str' object has no attribute 'get'"."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text(NOTES)
    spec = write(tmp_path, "net.yaml", "base: notes.txt\n")
    expect_error(spec, 3, "base", "base 'notes.txt' is not a spec: notes.txt holds plain text")
    line = summary_cli("spec=net.yaml", cwd=tmp_path)
    assert line.startswith("error: net.yaml:3: base: base 'notes.txt' is not a spec"), line


def test_base_that_is_a_list_or_empty(tmp_path):
    (tmp_path / "rows.yaml").write_text("- conv: 8\n- conv: 16\n")
    spec = write(tmp_path, "net.yaml", "\nbase: rows.yaml\n")
    expect_error(spec, 4, "base", "rows.yaml holds a list of 2 items, not a mapping")
    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    spec = write(tmp_path, "net2.yaml", "base: empty.yaml\n")
    expect_error(spec, 3, "base", "base 'empty.yaml' is not a spec", "empty.yaml is empty")


def test_spec_file_that_is_not_a_mapping(tmp_path):
    spec = write(tmp_path, "net.yaml", "- conv: 8\n- conv: 16\n", head=False)
    expect_error(spec, 1, "", "a spec must be a mapping", "the file holds a list of 2 items")


def test_include_that_is_plain_text(tmp_path):
    (tmp_path / "notes.yaml").write_text(NOTES)
    spec = write(tmp_path, "net.yaml", "include: [notes.yaml]\nstages: [conv: 8]\n")
    expect_error(spec, 3, "include[0]", "notes.yaml", "plain text", "not a mapping")


def test_include_that_is_plain_text_is_at_least_one_spec_error(tmp_path):
    (tmp_path / "notes.yaml").write_text(NOTES)
    spec = write(tmp_path, "net.yaml", "include: [notes.yaml]\nstages: [conv: 8]\n")
    with pytest.raises(SpecError, match="notes.yaml"):
        netspec.analyze(spec)


# -- 2. an empty spec -------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["", "# only a comment\n\n# and another\n", "{}\n"],
                         ids=["empty", "comments", "empty_mapping"])
def test_empty_spec_is_refused(tmp_path, text):
    spec = write(tmp_path, "net.yaml", text, head=False)
    expect_error(spec, None, "", "empty spec (no stem, stages or head)")


def test_empty_spec_on_the_command_line(tmp_path):
    write(tmp_path, "net.yaml", "# todo\n", head=False)
    line = summary_cli("spec=net.yaml", cwd=tmp_path)
    assert line.startswith("error: net.yaml: empty spec (no stem, stages or head)"), line


# -- 3. channel counts torch cannot allocate ----------------------------------------------------

def test_channels_past_what_torch_can_allocate(tmp_path):
    spec = write(tmp_path, "net.yaml", "stages:\n  - conv: {c: 2000000000}\n")
    expect_error(spec, 4, "stages[0].conv.c", "'c' is 2,000,000,000 channels",
                 "at most 16,777,216")


def test_channels_past_the_bound_after_width_scaling(tmp_path):
    spec = write(tmp_path, "net.yaml", "scale: {width: 4}\nstages:\n  - conv: {c: 8000000}\n")
    expect_error(spec, 5, "stages[0].conv.c", "32,000,000 channels (after width scaling)")


def test_block_argument_channels_past_the_bound(tmp_path):
    spec = write(tmp_path, "net.yaml", "blocks:\n  wide:\n    args: {c: required}\n"
                 "    conv: {c: c}\nstages:\n  - wide: {c: 30000000}\n")
    expect_error(spec, 8, "stages[0].wide.c", "'c' is 30,000,000 channels")


def test_a_layer_with_more_weights_than_torch_can_allocate(tmp_path):
    spec = write(tmp_path, "net.yaml", "stages:\n  - conv: {c: 16000000, k: 1}\n"
                 "  - conv: {c: 16000000, k: 1}\n")
    expect_error(spec, 5, "stages[1].conv", "conv has 256,000,032,000,000 parameters",
                 "at most 4,294,967,296 in one layer")
    spec = write(tmp_path, "net2.yaml", "head:\n  - pool: global_avg\n  - linear: {c: 2000000000}\n")
    expect_error(spec, 5, "head[1].linear", "linear has 8,000,000,000 parameters")


def test_input_channels_past_the_bound(tmp_path):
    spec = write(tmp_path, "net.yaml", "input: {channels: 100000000}\n", head=False)
    expect_error(spec, 1, "input.channels", "input must have 1 to 16,777,216 channels, got 100,000,000")


def test_channel_bound_on_the_command_line(tmp_path):
    write(tmp_path, "net.yaml", "stages:\n  - conv: {c: 2000000000}\n")
    line = summary_cli("spec=net.yaml", cwd=tmp_path)
    assert line.startswith("error: net.yaml:4: stages[0].conv.c: 'c' is 2,000,000,000 channels"), line


# -- 4. a file that is not UTF-8 --------------------------------------------------------------------

def test_non_utf8_byte_gives_its_line(tmp_path):
    spec = tmp_path / "net.yaml"
    spec.write_bytes(HEAD.encode() + b"# caf\xe9 au lait\nstages:\n  - conv: {c: 8}\n")
    expect_error(spec, 3, "", "not a UTF-8 text file", "byte 0xe9 at column 6", "save the file as UTF-8")


def test_base_by_name_finds_a_spec_beside_the_file(tmp_path, monkeypatch):
    """``base: mynet`` (no .yaml) reads mynet.yaml beside the spec, as a zoo name would."""
    sub = tmp_path / "specs"
    sub.mkdir()
    (sub / "mynet.yaml").write_text("base: resnet20\nnum_classes: 7\n")
    child = write(sub, "child.yaml", "base: mynet\n", head=False)
    monkeypatch.chdir(tmp_path)                       # not the spec's folder
    assert netspec.analyze(child).output_shape == (7,)
    assert netspec.analyze("resnet20").output_shape == (10,)   # a zoo name stays the zoo's


# -- 5. a bad override is blamed on the override ------------------------------------------------

@pytest.mark.parametrize("override, path, words", [
    ("input.size=0", "input.size", "input must have at least 1x1 pixels, got 3x0x0"),
    ("input.channels=0", "input.channels", "input must have 1 to"),
    ("scale.resolution=0.001", "scale.resolution", "times resolution 0.001"),
    ("stages[0].residual.n=2", "stages[0].residual", "exactly one name"),
    # a whole list item replaced: the override is the place, with no line of the zoo file's
    ("stages[1]={conv: {c: 0}}", "stages[1].conv.c", "conv needs at least 1 output channel"),
    ("stages[1]={basic: {c: 0}}", "stages[1].basic", "conv needs at least 1 output channel"),
])
def test_override_is_the_location(override, path, words):
    expect_error("resnet20", None, path, words, overrides=[override], file=f"<override {override}>")


def test_override_is_the_location_on_the_command_line(tmp_path):
    line = summary_cli("spec=resnet20", "input.size=0", cwd=tmp_path)
    assert line.startswith("error: <override input.size=0>: input.size: "), line
    assert "resnet20.yaml" not in line


# -- 6. a long expression is cut in its message -----------------------------------------------------

@pytest.mark.parametrize("expr, words", [
    ("max(" + ",".join(["1"] * 7000) + ",zz)", ["unknown name 'zz'"]),
    ("1+" * 7000 + "zz", ["cannot parse expression"]),
    ("(1 +" + "1+" * 7000 + "2", ["cannot parse expression"]),
], ids=["unknown_name", "too_deep", "syntax"])
def test_long_expression_is_cut(tmp_path, expr, words):
    spec = write(tmp_path, "net.yaml", f'stages:\n  - conv: {{c: "{expr}"}}\n')
    e = expect_error(spec, 4, "stages[0].conv.c", *words)
    assert len(str(e)) < 400, len(str(e))
    assert f"'{expr[:77]}...'" in str(e)


# -- 7. Python constructs the expression language refuses, named -------------------------------------

@pytest.mark.parametrize("expr, words", [
    ("[x for x in range(3)][0]", ["a list comprehension", "is not allowed"]),
    ("max(x for x in [1, 2])", ["a generator expression", "is not allowed"]),
    ("{x: 1 for x in [1]}[1]", ["a dict comprehension", "is not allowed"]),
    ("16 if 3 in [1, 3] else 8", ["a membership test ('in') is not allowed", "input channels"]),
], ids=["list", "generator", "dict", "membership"])
def test_comprehension_is_named(tmp_path, expr, words):
    spec = write(tmp_path, "net.yaml", f'stages:\n  - conv: {{c: "{expr}"}}\n')
    e = expect_error(spec, 4, "stages[0].conv.c", f"in expression '{expr}'", *words)
    assert "Perhaps you forgot a comma" not in str(e) and "invalid syntax" not in str(e)


# -- 8. a block written with arg: instead of args: ------------------------------------------------

BLOCK_ARG = """blocks:
  myb:
    arg: {{c: required}}
    {body}
stages:
  - myb: {{c: 8}}
"""


@pytest.mark.parametrize("body", ["body: {conv: {c: c}}", "conv: {c: c}"], ids=["body", "inline"])
def test_block_arg_instead_of_args(tmp_path, body):
    spec = write(tmp_path, "net.yaml", BLOCK_ARG.format(body=body))
    e = expect_error(spec, 5, "blocks.myb.arg", "did you mean 'args'?")
    assert "put everything in 'body'" not in str(e)


# -- 9. a tab in the indentation ----------------------------------------------------------------

def test_tab_in_indentation_is_named(tmp_path):
    spec = write(tmp_path, "net.yaml", "stages:\n  - conv: {c: 8}\n\t- conv: {c: 16}\n")
    expect_error(spec, 5, "", "invalid YAML: a tab character in the indentation (column 1)",
                 "YAML indents with spaces")


def test_tab_after_a_dash_is_named(tmp_path):
    spec = write(tmp_path, "net.yaml", "stages:\n  -\tconv: {c: 8}\n")
    expect_error(spec, 4, "", "invalid YAML: a tab character at column 4")


def test_tab_on_the_command_line(tmp_path):
    write(tmp_path, "net.yaml", "stages:\n\t- conv: {c: 8}\n")
    line = summary_cli("spec=net.yaml", cwd=tmp_path)
    assert line == ("error: net.yaml:4: invalid YAML: a tab character in the indentation "
                    "(column 1); YAML indents with spaces"), line


@pytest.mark.parametrize("drop_path, words", [
    ("{rate: 0.1, schedule: cosine}", "drop_path schedule must be linear"),
    ("{rate: 0.1, schedule: linspace, first: 1}", "first goes with schedule: linear only"),
    ("{rate: 0.1, shedule: linspace}", "did you mean 'schedule'"),
])
def test_drop_path_schedule_errors(tmp_path, drop_path, words):
    spec = write(tmp_path, "net.yaml", f"drop_path: {drop_path}\n"
                                       "stages: [bottleneck: {c: 64, drop_path: auto}]\n")
    with pytest.raises(SpecError, match=words) as e:
        netspec.analyze(spec)
    assert e.value.line == 3, str(e.value)


@pytest.mark.parametrize("override", ["defaults.act=[1, 2]", "defaults.norm={a: 1}"])
def test_a_list_or_mapping_where_a_name_goes(override):
    """Found by the fuzz test: a list where an activation's name goes raised "unhashable type"."""
    with pytest.raises(SpecError, match="unknown (activation|norm)"):
        netspec.analyze("resnet18", [override])
