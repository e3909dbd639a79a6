"""README.md stays true: its language reference names every layer and built-in block, and its zoo
table says what the specs are and what the tests prove of them."""
import importlib.util
import re
from pathlib import Path

import pytest
import zoo_proofs

import netspec
from netspec.blocks import builtin_blocks
from netspec.ops import OPS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_layer_and_block_is_documented():
    for name in list(OPS) + list(builtin_blocks()):
        assert f"`{name}`" in README, f"README.md does not document '{name}'"


def test_quick_start_has_the_commands_ci_runs():
    for marker in ("ci: main command", "ci: test command", "ci: slow test command"):
        assert f"<!-- {marker} -->" in README


def _zoo_table() -> list[str]:
    section = README[README.index("## The zoo"):README.index("## Benchmarks")]
    return [line for line in section.splitlines() if line.startswith("|")]


ROW = re.compile(r"\| `(\w+)` \| (.*) \| ([\d,]+) \| ([\d.]+ [MG]) \| (.*) \|")


@pytest.fixture(scope="module")
def zoo_table_tool():
    spec = importlib.util.spec_from_file_location("zoo_table", ROOT / "tools" / "zoo_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_zoo_table_has_a_row_per_spec():
    rows = [ROW.fullmatch(line) for line in _zoo_table()[2:]]
    assert all(rows), [line for line, m in zip(_zoo_table()[2:], rows) if not m]
    assert [m.group(1) for m in rows] == netspec.zoo()


@pytest.mark.parametrize("line", _zoo_table()[2:], ids=lambda line: line.split("`")[1])
def test_a_zoo_row_is_what_the_spec_and_the_tests_say(line, zoo_table_tool):
    name, _, params, macs, proven = ROW.fullmatch(line).groups()
    report = netspec.analyze(name)
    assert params == f"{report.params:,}", f"{name}: README says {params} parameters"
    assert macs == zoo_table_tool.macs(report.macs), f"{name}: README says {macs}"
    assert proven == zoo_proofs.proven(name), f"{name}: README claims '{proven}'"
    assert line == zoo_table_tool.row(name)            # the paper column too


def test_the_zoo_table_is_the_tools(zoo_table_tool):
    assert _zoo_table()[:2] == zoo_table_tool.HEADER
