"""The command lines' arguments: netspec.train (Hydra, spec paths, sweeps), netspec.eval and
netspec.export (key=value); a user's mistake is one line on stderr and exit status 2."""
import json
import subprocess
import sys

import pytest
import torch
from tiny_training import FAST, TINY, run, write_tiny

from netspec import eval as eval_cli
from netspec import export as export_cli
from netspec.train import app as train_cli


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    return run(tmp, write_tiny(tmp)).best_checkpoint


def exits(main, argv, capsys, status=2) -> str:
    """Run a CLI's main(argv); it must exit with ``status``; returns stdout + stderr."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == status
    out = capsys.readouterr()
    return out.out + out.err


def one_error_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines[0].startswith("error: ") and "Traceback" not in text, text
    return lines[0]


# -- netspec.train --------------------------------------------------------------------------------

def test_train_cli_prints_one_message_and_exits_2(tmp_path):
    """The real command, in a process of its own."""
    tiny = write_tiny(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "netspec.train", f"spec={tiny}", *FAST, "data=mnist",
         f"data.root={tmp_path / 'nowhere'}", f"run_dir={tmp_path / 'cli'}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "data.root" in one_error_line(proc.stderr) and "does not exist" in proc.stderr


def test_train_cli_refuses_a_spec_file_that_does_not_exist(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    text = exits(train_cli.main, ["spec=nets/missing.yaml", *FAST], capsys)
    assert one_error_line(text) == "error: nets/missing.yaml: spec file 'nets/missing.yaml' does not exist"


def test_train_cli_trains_a_spec_file_and_sweeps_two(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["netspec.train"])
    (tmp_path / "a.yaml").write_text(TINY)
    (tmp_path / "b.yaml").write_text(TINY.replace("c: 16}\n  - conv: {c: 16}", "c: 24}"))
    quiet = [*FAST, "trainer.limit_train_batches=1", "trainer.limit_val_batches=1",
             "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]
    train_cli.main(["spec=a.yaml", *quiet, f"run_dir={tmp_path / 'one'}"])
    assert "netspec.train: a on fake" in capsys.readouterr().out
    assert (tmp_path / "one" / "checkpoints" / "last.ckpt").is_file()
    # a sweep over two files: each is registered, each trains in its own folder
    train_cli.main(["-m", "spec=a.yaml,b.yaml", *quiet, f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    out = capsys.readouterr().out
    assert "netspec.train: a on fake" in out and "netspec.train: b on fake" in out
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir()) == ["0", "1"]


# -- netspec.eval ---------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    ([], "error: ckpt_path=... is required"),
    (["split=train", "ckpt_path=x.ckpt"], "error: split must be test or val, got 'train'"),
    (["ckpt_path=x.ckpt", "epochs=3"], "error: unknown argument 'epochs=3'"),
    (["ckpt_path"], "error: arguments are key=value, got 'ckpt_path'"),
    (["ckpt_path=nowhere.ckpt"], "error: checkpoint 'nowhere.ckpt' does not exist"),
])
def test_eval_cli_mistakes(argv, message, capsys):
    assert one_error_line(exits(eval_cli.main, argv, capsys)) == message


def test_eval_cli_help(capsys):
    assert exits(eval_cli.main, ["--help"], capsys, status=0).startswith(
        "usage: python -m netspec.eval ckpt_path=PATH")


def test_eval_cli_reads_its_arguments(checkpoint, tmp_path, capsys):
    out = tmp_path / "report"
    eval_cli.main([f"ckpt_path={checkpoint}", "split=val", f"out={out}", "data.num_samples=40"])
    printed = capsys.readouterr().out
    said = "val (10 images; the split that picked the best checkpoint): acc "
    assert printed.startswith(said) and f"wrote {out / 'metrics.json'}" in printed
    report = json.loads((out / "metrics.json").read_text())
    assert report["split"] == "val"
    # data.num_samples=40 reached the data: 10 of 40 fake images validate (a quarter; 24 of the
    # 96 the run trained with)
    assert sum(map(sum, report["confusion_matrix"])) == 10


# -- netspec.export -------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    ([], "error: ckpt_path=... is required"),
    (["ckpt_path=x.ckpt", "format=tflite"], "error: format must be one of onnx, torchscript, pt2, "
                                             "got 'tflite'"),
    (["ckpt_path=x.ckpt", "opset=17"], "error: unknown argument 'opset=17'"),
    (["ckpt_path=nowhere.ckpt"], "error: checkpoint 'nowhere.ckpt' does not exist"),
])
def test_export_cli_mistakes(argv, message, capsys):
    assert one_error_line(exits(export_cli.main, argv, capsys)) == message


@pytest.mark.parametrize("batch", ["two", "0"])
def test_export_cli_batch_must_be_a_number(checkpoint, capsys, batch):
    text = exits(export_cli.main, [f"ckpt_path={checkpoint}", f"batch={batch}"], capsys)
    assert one_error_line(text) == f"error: batch must be a whole number of at least 1, got '{batch}'"


def test_export_cli_reads_its_arguments(checkpoint, tmp_path, capsys):
    path = tmp_path / "net.pt2"
    export_cli.main([f"ckpt_path={checkpoint}", "format=pt2", f"out={path}", "batch=3"])
    printed = capsys.readouterr().out
    assert printed.startswith(f"wrote {path} (pt2, raw weights); max |diff| against PyTorch ")
    # torch.export keeps the example's shape: the batch of 3 images of the spec's size
    program = torch.export.load(str(path))
    (name,) = program.graph_signature.user_inputs
    (node,) = [n for n in program.graph.nodes if n.name == name]
    assert tuple(node.meta["val"].shape) == (3, 3, 16, 16)
    assert program.module()(torch.randn(3, 3, 16, 16)).shape == (3, 10)
