"""trainer.* keys: checked against Lightning's Trainer (its signature, its annotations and the
values it refuses) before anything is built; a bad one is one line and exit status 2."""
import inspect
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import pytorch_lightning as pl
from tiny_training import FAST, cfg_of, run, write_tiny

from netspec.errors import ConfigError
from netspec.train import app as train_cli
from netspec.train.config import TrainerConfig, config_dir
from netspec.train.trainer_keys import SET_BY_NETSPEC, check_trainer, describe, fits, flags, problem

# -- the command line, in a process of its own ---------------------------------------------------

BAD = [
    ("trainer.max_epochs=abc", "error: trainer.max_epochs=abc: must be an integer"),
    ("+trainer.max_epoch=3", "error: trainer.max_epoch: no such Trainer flag (did you mean "
                             "'max_epochs'?)"),
    ("trainer.precision=16-mixd", "error: trainer.precision=16-mixd (did you mean '16-mixed'?): "
                                  "must be one of 64, 32, 16, transformer-engine"),
    ("trainer.accelerator=gpux", "error: trainer.accelerator=gpux: no such accelerator (did you "
                                 "mean 'gpu'?)"),
]


def _one_line(text: str, message: str) -> None:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(message), text
    assert "Traceback" not in text


@pytest.mark.parametrize("arg, message", BAD)
def test_the_command_refuses_a_bad_trainer_key_and_leaves_no_run_dir(tmp_path, monkeypatch,
                                                                      capsys, arg, message):
    """main() as the command runs it, Hydra's run dir included (in this process: fast)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["netspec.train"])
    with pytest.raises(SystemExit) as e:
        train_cli.main([f"spec={write_tiny(tmp_path)}", *FAST, arg])
    assert e.value.code == 2
    out = capsys.readouterr()
    _one_line(out.err, message)
    assert "Traceback" not in out.out
    assert not (tmp_path / "outputs").exists()     # Hydra's run dir, removed again


@pytest.mark.slow
@pytest.mark.parametrize("arg, message", BAD)
def test_cli_refuses_a_bad_trainer_key_in_one_line_and_creates_no_run_dir(tmp_path, arg, message):
    """The real command, in a process of its own (about 5-15 s each: slow)."""
    tiny = write_tiny(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "netspec.train", f"spec={tiny}", *FAST, arg],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr
    _one_line(proc.stderr, message)
    assert "Traceback" not in proc.stdout
    assert not (tmp_path / "outputs").exists()     # Hydra's run dir, removed again


def test_train_refuses_before_it_builds_anything(tmp_path):
    with pytest.raises(ConfigError, match=r"trainer\.max_steps=-5: must be >= -1"):
        run(tmp_path, write_tiny(tmp_path), "trainer.max_steps=-5")
    assert not (tmp_path / "run").exists()


# -- in process -------------------------------------------------------------------------------------

@pytest.mark.parametrize("key, value, fragment", [
    ("max_epochs", True, "must be an integer"),              # YAML's true is no epoch count
    ("max_epochs", -2, "must be >= -1"),
    ("min_epochs", -1, "must be >= 0"),
    ("num_nodes", 0, "must be >= 1"),
    ("devices", 0, "a count must be >= 1"),
    ("devices", "zero", "device ids such as '0,1'"),
    ("devices", [0, 0], "distinct device ids"),
    ("devices", [0, "a"], "must be a list of integers or a string or an integer"),
    ("strategy", "dpp", "no such strategy (did you mean 'ddp'?)"),
    ("limit_train_batches", 1.5, "a fraction must lie in [0.0, 1.0]"),
    ("limit_val_batches", "half", "must be an integer or a number"),
    ("overfit_batches", -1, "must be >= 0"),
    ("val_check_interval", 0.0, "(0.0, 1.0]"),
    ("max_time", "12h", "DD:HH:MM:SS"),
    ("max_time", {"hour": 1}, "a duration's keys are"),
    ("accumulate_grad_batches", 0, "must be >= 1"),
    ("gradient_clip_val", -1.0, "must be >= 0"),
    ("gradient_clip_algorithm", "nrm", "(did you mean 'norm'?)"),
    ("profiler", "simpel", "(did you mean 'simple'?)"),
    ("deterministic", "yes", "must be one of warn or true or false"),
    ("enable_progress_bar", "x", "must be true or false"),
    ("logger", False, "netspec.train sets this itself; use logger=csv"),
    ("default_root_dir", "x", "use run_dir=PATH"),
    ("max_epcohs", 3, "(did you mean 'max_epochs'?)"),
])
def test_a_bad_value_names_the_key_and_what_it_must_be(key, value, fragment):
    wrong = problem(key, value)
    assert wrong is not None and fragment in wrong, wrong
    assert wrong.startswith(f"trainer.{key}")


@pytest.mark.parametrize("key, value", [
    ("max_epochs", -1), ("max_epochs", 3), ("max_steps", -1), ("precision", "bf16-mixed"),
    ("precision", 16), ("precision", "16"), ("devices", "auto"), ("devices", -1),
    ("devices", "0,1"), ("devices", [0, 1]), ("accelerator", "gpu"), ("accelerator", "cpu"),
    ("strategy", "ddp_spawn"), ("strategy", "DDP"), ("limit_train_batches", 0.5),
    ("limit_train_batches", 5), ("val_check_interval", 100), ("val_check_interval", 0.25),
    ("max_time", "00:12:00:00"), ("max_time", {"hours": 1}), ("deterministic", "warn"),
    ("fast_dev_run", True), ("fast_dev_run", 3), ("profiler", "simple"),
    ("gradient_clip_val", 0.5), ("gradient_clip_algorithm", "value"), ("max_epochs", None),
])
def test_values_lightning_takes_pass(key, value):
    assert problem(key, value) is None


def test_every_trainer_flag_is_a_key_with_an_annotation():
    """The keys follow Lightning's signature: each flag a config may set is in TrainerConfig, and
    each has a type hint the check reads (none falls through as untyped)."""
    signature = set(inspect.signature(pl.Trainer.__init__).parameters) - {"self"}
    assert set(flags()) == signature - set(SET_BY_NETSPEC)
    assert set(TrainerConfig.__dataclass_fields__) == set(flags())
    hints = typing.get_type_hints(pl.Trainer.__init__)
    for name in flags():
        assert name in hints and describe(hints[name]), name


def test_fits_reads_unions_literals_and_lists():
    hint = typing.Union[list[int], str, int]  # noqa: UP007 (Lightning's own spelling)
    assert fits([0, 1], hint) and fits("auto", hint) and fits(2, hint)
    assert not fits(2.5, hint) and not fits(True, hint) and not fits([0, "a"], hint)
    assert fits("warn", typing.Literal["warn"]) and not fits(1, typing.Literal[True])


@pytest.mark.parametrize("preset", sorted(p.stem for p in Path(config_dir(), "trainer").glob("*.yaml")))
def test_the_shipped_presets_pass(preset):
    check_trainer(cfg_of(f"trainer={preset}").trainer)


def test_check_trainer_raises_a_config_error():
    with pytest.raises(ConfigError, match=r"^trainer\.precision=16-mixd"):
        check_trainer(cfg_of("trainer.precision=16-mixd").trainer)
