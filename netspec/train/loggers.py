"""``logger=mlflow`` and ``logger=wandb``: experiment trackers that write under the run dir only.

Both work offline: MLflow with a local store (``RUN/mlflow.db``, artifacts in ``RUN/mlartifacts``:
mlflow 3 refuses its ``file://`` store, in maintenance mode, and recommends SQLite;
``mlflow ui --backend-store-uri sqlite:///RUN/mlflow.db`` shows it), W&B in offline mode (``RUN/wandb``;
``wandb sync RUN/wandb/offline-run-*`` uploads it later). They come beside the CSV log, which
curves.png and the summary are read from.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError

TRACKERS = ("mlflow", "wandb")


def _need(package: str, name: str):
    import importlib
    try:
        importlib.import_module(package)
    except ModuleNotFoundError:
        raise ConfigError(f"logger={name} needs the {package} package: pip install {package} "
                          f"(or pip install 'netspec[{name}]'; or use logger=csv)") from None


def tracker(name: str, project: str, run_name: str, out: Path):
    """The Lightning logger of an experiment tracker, storing into ``out``."""
    if name == "mlflow":
        _need("mlflow", name)
        from pytorch_lightning.loggers import MLFlowLogger
        return MLFlowLogger(experiment_name=project, run_name=run_name,
                            tracking_uri=f"sqlite:///{(out / 'mlflow.db').resolve()}",
                            artifact_location=(out / "mlartifacts").resolve().as_uri())
    if name == "wandb":
        _need("wandb", name)
        from pytorch_lightning.loggers import WandbLogger
        # never the network: offline unless the user asked for online W&B in the environment
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_SILENT", "true")
        return WandbLogger(project=project, name=run_name, save_dir=str(out),
                           offline=os.environ["WANDB_MODE"] == "offline")
    raise ValueError(name)


def finish_trackers(logger) -> None:
    """End the W&B run, which Lightning leaves open (for notebooks), and wait for wandb's service
    to write it out: finish() alone can return before the offline record holds the metrics (seen
    on a loaded machine: the record was its header only)."""
    from pytorch_lightning.loggers import WandbLogger
    finished = False
    for one in logger if isinstance(logger, list) else [logger]:
        if isinstance(one, WandbLogger) and one._experiment is not None:
            one.experiment.finish()
            finished = True
    if finished:
        import wandb
        wandb.teardown()          # a later run in this process starts the service again
