"""``--help`` of the Hydra commands (train, search): usage, their own config groups, the config.

Written here rather than left to Hydra: Hydra's help lists every group it knows (the search-only
groups in the training command too) and composes the config once per group, about 110 times,
which alone took 5 s; this composes it once.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

from ..lang.loader import zoo

WIDTH = 100


def group_options(conf: Path, group: str) -> list[str]:
    return sorted(p.stem for p in (conf / group).glob("*.yaml"))


def help_text(app: str, usage: str, conf: Path, config_name: str, groups: list[str],
              overrides: list[str], extra: dict[str, list[str]] | None = None) -> str:
    """The help page: ``usage``, the groups with their options, then the composed config."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    lines = [usage.rstrip(), "", "config groups (group=option):"]
    for group in groups:
        options = (["<zoo name>", "path/to/spec.yaml"] if group == "spec"
                   else group_options(conf, group))
        lines.append(f"  {group:<11}{', '.join(options)}")
    for key, options in (extra or {}).items():
        lines.append(f"  {key:<11}{', '.join(options)}")
    lines.append("")
    lines += textwrap.wrap(", ".join(zoo()), WIDTH, initial_indent="the zoo: ",
                           subsequent_indent="         ", break_on_hyphens=False)
    with initialize_config_dir(config_dir=str(conf), version_base=None):
        cfg = compose(config_name, overrides=overrides)
    text = OmegaConf.to_yaml(cfg, resolve=False).rstrip()
    lines += ["", f"the composed config ({' '.join(overrides) or 'defaults'}); any key can be "
              f"overridden: key.path=value", "", text, "",
              f"Hydra's own options: python -m {app} --hydra-help (--cfg job, --info, ...)",
              f"shell completion (bash, zsh, fish) of groups and keys, through the installed "
              f"script: eval \"$({app.replace('.', '-')} --shell-completion install=bash)\" "
              f"(Hydra completes only a script or a .py file, not python -m)"]
    return "\n".join(lines)
