"""A wheel installed elsewhere finds every spec, block library and config (package data)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_specs_and_runs_from_another_directory(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(ROOT)],
                   check=True, cwd=tmp_path)
    assert (target / "netspec" / "specs" / "vgg16.yaml").is_file()
    assert (target / "netspec" / "blocks" / "library.yaml").is_file()
    env = {**os.environ, "PYTHONPATH": str(target)}
    assert (target / "netspec" / "conf" / "train.yaml").is_file()
    assert (target / "netspec" / "conf" / "data" / "digits.yaml").is_file()
    assert (target / "netspec" / "train" / "app.py").is_file()
    code = ("import netspec, pathlib; "
            f"assert pathlib.Path(netspec.__file__).is_relative_to(pathlib.Path({str(target)!r})); "
            "from netspec.train.config import config_dir; "
            "pkg = pathlib.Path(netspec.__file__).parent; "
            "assert pathlib.Path(config_dir()).is_relative_to(pkg); "
            "print(len(netspec.zoo()), netspec.analyze('vgg16').params)")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) == len(list((ROOT / "specs").glob("*.yaml")))
    assert out[1] == "138357544"


def test_every_python_package_is_in_the_wheel():
    """pyproject lists the packages by hand: a new subpackage missing there is missing from an
    installed netspec (netspec.search.oneshot was)."""
    import tomllib
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for p in (ROOT / "netspec").rglob("__init__.py")}
    assert found - listed == set()
