"""The README's primitive written in a user's own file works as the README says, and plugins load."""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import netspec
from netspec.errors import ConfigError
from netspec.ops import OPS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _example() -> str:
    """The code block after the README's ``<!-- example: my_ops.py -->`` marker."""
    after = README[README.index("<!-- example: my_ops.py -->"):]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


NET = {
    "input": {"channels": 3, "size": 12}, "num_classes": 4,
    "stem": [{"coord_conv": {"c": 16, "k": 3}}],
    "stages": [{"conv": {"c": 16, "s": 2}}, {"coord_conv": {"c": 24, "k": 5}}],
    "head": [{"pool": "global_avg"}, {"linear": {"c": 4}}],
}


@pytest.fixture
def my_ops(tmp_path):
    path = tmp_path / "my_ops.py"
    path.write_text(_example())
    spec = importlib.util.spec_from_file_location("my_ops", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield path
    OPS.pop("coord_conv", None)             # the registry is global: leave it as it was


def test_the_readme_primitive_counts_what_its_module_holds_and_computes(my_ops):
    report = netspec.analyze(NET)
    model = netspec.build(NET).eval()
    assert report.params == sum(p.numel() for p in model.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = model(torch.randn(1, 3, 12, 12))
    assert report.macs == counter.get_total_flops() // 2
    assert out.shape == (1, 4)
    stem = next(la for la in report.layers if la.kind == "coord_conv")
    assert stem.out_shape == (16, 12, 12) and stem.params == 16 * 5 * 9 + 16


def test_the_readme_primitive_scales_with_width_and_is_fresh(my_ops):
    report = netspec.analyze(NET, ["scale.width=0.5"])
    assert report.layers[0].out_shape == (8, 12, 12)    # c is a channel argument
    relu_after = {**NET, "stem": [{"coord_conv": {"c": 16}}, "act"]}
    act = netspec.build(relu_after).stem.act1
    assert act.inplace                                  # fresh: the ReLU may overwrite its output


def test_the_readme_primitive_says_where_it_is_wrong(my_ops):
    bad = {**NET, "stem": [{"coord_conv": {"c": 16, "k": 4}}]}
    with pytest.raises(netspec.SpecError, match=r"stem\[0\]\.coord_conv\.k: .*odd kernel size"):
        netspec.analyze(bad)


def test_a_plugin_file_makes_the_primitive_known_to_the_command_lines(my_ops, tmp_path):
    spec = tmp_path / "net.yaml"
    spec.write_text("input: {channels: 3, size: 12}\nnum_classes: 4\n"
                    "stem: [coord_conv: {c: 16}]\nhead: [pool: global_avg, linear: {c: 4}]\n")
    env = {**os.environ, "NETSPEC_PLUGINS": str(my_ops)}
    run = lambda env: subprocess.run([sys.executable, "-m", "netspec.summary", f"spec={spec}"],
                                     capture_output=True, text=True, env=env, cwd=tmp_path)
    ok = run(env)
    assert ok.returncode == 0, ok.stderr
    assert "coord_conv 3x3, 16" in ok.stdout
    plain = run({k: v for k, v in os.environ.items() if k != "NETSPEC_PLUGINS"})
    assert plain.returncode == 2 and "unknown layer or block 'coord_conv'" in plain.stderr


def test_a_plugin_that_fails_is_one_line_naming_it(tmp_path, monkeypatch):
    from netspec.plugins import load_plugins
    broken = tmp_path / "broken.py"
    broken.write_text("raise ImportError('no such thing')\n")
    monkeypatch.setenv("NETSPEC_PLUGINS", f"{broken}")
    with pytest.raises(ConfigError, match=r"plugin '.*broken.py'.*ImportError: no such thing"):
        load_plugins()
    monkeypatch.setenv("NETSPEC_PLUGINS", str(tmp_path / "absent.py"))
    with pytest.raises(ConfigError, match="no such file"):
        load_plugins()


DATA_PLUGIN = """\
import torch
from netspec.train.data import Arrays, Raw, source

@source("stripes")
def load_stripes(cfg, root):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(40) % 2
    x = torch.randint(0, 60, (40, 1, 8, 8), generator=g, dtype=torch.uint8)
    x[y == 0, :, ::2, :] += 190                     # horizontal stripes
    x[y == 1, :, :, ::2] += 190                     # vertical stripes
    return Raw(Arrays(x, y), None, None, ["h", "v"], 1, (8, 8))
"""


def test_a_plugin_data_source_trains_from_the_command_line(tmp_path):
    (tmp_path / "stripes_data.py").write_text(DATA_PLUGIN)
    spec = tmp_path / "tiny.yaml"
    spec.write_text("input: {channels: 1, size: 8}\nnum_classes: 2\nstem: [conv: {c: 8}]\n"
                    "head: [pool: global_avg, linear: {c: num_classes}]\n")
    env = {**os.environ, "NETSPEC_PLUGINS": "stripes_data", "PYTHONPATH": os.pathsep.join(
        [str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "netspec.train", f"spec={spec}", "data.name=stripes",
                           "aug=none", "trainer.max_epochs=1", "callbacks=minimal", "logger=none",
                           f"run_dir={tmp_path / 'run'}"], capture_output=True, text=True, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "tiny on stripes" in proc.stdout
