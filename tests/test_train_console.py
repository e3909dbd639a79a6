"""What netspec.train prints: the help page, the config tree, the network's summary with netspec's
MACs (not the metric objects), the log file, and only the warnings a user can act on."""
import logging
import subprocess
import sys
import warnings

import pytest
from tiny_training import FAST, cfg_of, run, write_tiny

from netspec.cli import info_before_overrides
from netspec.compile import analyze, build
from netspec.train.console import _DROP, _rank_zero_loggers, config_text, quiet_lightning, summary_rows

TIP = "💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger]"
PYTREE = "`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec)`"


@pytest.fixture
def restore_filters():
    with warnings.catch_warnings():
        yield
    for log in _rank_zero_loggers():
        log.removeFilter(_DROP)


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def _said(*messages) -> tuple[list[str], list[str]]:
    """(info lines, warnings) that get through when Lightning says ``messages``."""
    from lightning_utilities.core.rank_zero import rank_zero_info
    handler = _Lines()
    log = _rank_zero_loggers()[0]
    log.addHandler(handler)
    level, disabled = log.level, log.disabled
    log.setLevel(logging.INFO)        # an earlier test (a quiet search, a Hydra run whose job
    log.disabled = False              # logging disabled existing loggers) may have changed them
    try:
        with warnings.catch_warnings(record=True) as caught:
            quiet_lightning(verbose=_said.verbose)
            for m in messages:
                rank_zero_info(m)
            warnings.warn(PYTREE, FutureWarning, stacklevel=1)
            warnings.warn("Set a lower value for log_every_n_steps", UserWarning, stacklevel=1)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        log.disabled = disabled
    return handler.lines, [str(w.message) for w in caught]


def test_tips_and_torch_deprecations_are_dropped_the_actionable_warnings_kept(restore_filters):
    _said.verbose = False
    lines, caught = _said(TIP, "TPU available: False, using: 0 TPU cores",
                          "GPU available: False, used: False")
    assert lines == ["GPU available: False, used: False"]
    assert caught == ["Set a lower value for log_every_n_steps"]


def test_verbose_keeps_everything(restore_filters):
    _said.verbose = True
    lines, caught = _said(TIP)
    assert lines == [TIP] and PYTREE in caught


def test_the_summary_rows_are_the_networks_with_netspecs_macs(tmp_path):
    spec = build(write_tiny(tmp_path)).spec
    model = build(spec)
    rows, macs = summary_rows(model, spec)
    report = analyze(spec)
    assert macs == report.macs > 0
    assert sum(r[3] for r in rows) == sum(p.numel() for p in model.parameters())
    assert sum(r[4] for r in rows) == report.macs
    assert [r[0] for r in rows][:1] == ["stem.conv1"]
    # a model its spec does not describe (a supernet): its children, and no MACs claimed
    rows, macs = summary_rows(model, {**spec, "stages": spec["stages"][:1]})
    assert macs is None and [r[0] for r in rows] == ["stem", "stages", "head"]


def test_a_run_prints_the_network_summary_not_the_metrics(tmp_path, capsys):
    run(tmp_path, write_tiny(tmp_path), "trainer.enable_model_summary=true")
    out = capsys.readouterr().out
    assert "MACs" in out and "netspec's count" in out and "stem.conv1" in out
    assert "MulticlassAccuracy" not in out and "Total FLOPs" not in out


def test_the_config_tree_is_compact_and_shows_what_is_set():
    text = config_text(cfg_of("spec=resnet20", "trainer.max_epochs=3"))
    assert text.startswith("config") and "spec resnet20" in text
    assert "max_epochs=3" in text and "accelerator=cpu" in text
    assert "min_epochs" not in text            # unset: Lightning's default
    assert "inference_mode" not in text        # set, but to Lightning's own default
    assert len(text.splitlines()) < 30


@pytest.mark.parametrize("args, fixed", [
    (["--info", "spec=resnet20"], ["--info", "all", "spec=resnet20"]),
    (["spec=resnet20", "--info"], ["spec=resnet20", "--info"]),
    (["--info", "defaults", "spec=x"], ["--info", "defaults", "spec=x"]),
    (["-i", "spec=x"], ["-i", "all", "spec=x"]),
])
def test_info_works_before_the_overrides(args, fixed):
    assert info_before_overrides(args) == fixed


def test_help_names_the_app_and_only_its_groups(capsys):
    from netspec.train import app as train_cli
    train_cli.main(["--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m netspec.train") and "powered by Hydra" not in out
    groups = out.split("config groups (group=option):")[1].split("\n\n")[0]
    assert "  trainer " in groups and "pruner" not in groups and "strategy" not in groups
    assert "--shell-completion install=bash" in out


@pytest.mark.slow
def test_the_command_writes_a_useful_log_and_no_lightning_chatter(tmp_path):
    """The real command (about 15 s here: slow): a log file that holds the config and the epoch
    lines, and none of the tips or the torch deprecation."""
    tiny = write_tiny(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "netspec.train", f"spec={tiny}", *FAST,
                           "trainer.enable_model_summary=true"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout + proc.stderr
    assert "💡" not in text and "LeafSpec" not in text and "TPU available" not in text
    assert text.lstrip().startswith("config") and "netspec's count" in text
    logs = list((tmp_path / "outputs").rglob("*.log"))
    assert len(logs) == 1 and "config" in logs[0].read_text()


def test_the_run_log_is_not_written_empty():
    """Hydra's job log opens its file at the first line (delay), and has no console copy."""
    from hydra import compose, initialize_config_dir

    from netspec.train.config import config_dir
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = compose("train", return_hydra_config=True)
    logging_cfg = cfg.hydra.job_logging
    assert logging_cfg.handlers.file.delay is True
    assert list(logging_cfg.root.handlers) == ["file"]
