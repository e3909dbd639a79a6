"""README.md stays true: its language reference names every layer and built-in block."""
from pathlib import Path

from netspec.blocks import builtin_blocks
from netspec.ops import OPS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_layer_and_block_is_documented():
    for name in list(OPS) + list(builtin_blocks()):
        assert f"`{name}`" in README, f"README.md does not document '{name}'"


def test_quick_start_has_the_commands_ci_runs():
    for marker in ("ci: main command", "ci: test command", "ci: slow test command"):
        assert f"<!-- {marker} -->" in README


def test_the_zoo_table_lists_every_spec():
    import netspec
    table = README[README.index("## The zoo"):]
    for name in netspec.zoo():
        assert f"| `{name}` |" in table, f"README's zoo table lacks '{name}'"
