"""Writing a sample: its concrete spec as YAML under a comment header (what it is, how to train it)."""
from __future__ import annotations

from pathlib import Path

import yaml


def write_spec(spec: dict, path: Path, header: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(spec, sort_keys=False, default_flow_style=None, width=100)
    lines = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    path.write_text(lines + text)
    return path
