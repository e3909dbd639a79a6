"""logger=mlflow and logger=wandb: the real packages, offline, writing under the run dir only."""
import sys

import pytest
from tiny_training import run, write_tiny

from netspec.errors import ConfigError

EPOCHS = ["trainer.max_epochs=2"]


def test_mlflow_logs_into_a_local_store_in_the_run_dir(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow", reason="pip install mlflow (netspec[dev])")
    monkeypatch.chdir(tmp_path)                      # nothing may land in the working directory
    r = run(tmp_path, write_tiny(tmp_path), "logger=mlflow", "logger.project=tiny-exp", *EPOCHS)
    store = r.run_dir / "mlflow.db"
    assert store.is_file()
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{store.resolve()}")
    experiment = client.get_experiment_by_name("tiny-exp")
    (found,) = client.search_runs([experiment.experiment_id])
    history = client.get_metric_history(found.info.run_id, "val/acc")
    assert len(history) == 2                         # one value per epoch
    assert history[-1].value == pytest.approx(r.metrics["val/acc"])
    assert (r.run_dir / "logs" / "metrics.csv").is_file()   # the CSV log stays beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "tiny.yaml"]


def test_wandb_logs_offline_into_the_run_dir(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="pip install wandb (netspec[dev])")
    for key in ("WANDB_MODE", "WANDB_SILENT", "WANDB_DIR", "WANDB_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    r = run(tmp_path, write_tiny(tmp_path), "logger=wandb", *EPOCHS)
    (offline,) = (r.run_dir / "wandb").glob("offline-run-*")
    # the run's record (protobuf; `wandb sync` uploads it) holds the logged metrics by name
    (record,) = offline.glob("run-*.wandb")
    data = record.read_bytes()
    assert b"val/acc" in data and b"train/loss" in data
    assert (r.run_dir / "logs" / "metrics.csv").is_file()


@pytest.mark.parametrize("name", ["mlflow", "wandb"])
def test_a_missing_package_is_one_clear_message(tmp_path, monkeypatch, name):
    monkeypatch.setitem(sys.modules, name, None)     # `import name` now fails as if not installed
    with pytest.raises(ConfigError, match=f"logger={name} needs the {name} package: pip install"):
        run(tmp_path, write_tiny(tmp_path), f"logger={name}")
