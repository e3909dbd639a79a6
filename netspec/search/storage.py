"""The study's storage: an Optuna RDB storage (SQLite by default, PostgreSQL for many workers) with
heartbeats and retries of trials whose worker died, or a journal file."""
from __future__ import annotations

import inspect
import time
import warnings
from pathlib import Path

import optuna
import sqlalchemy.exc

from ..errors import StorageError

# Optuna >= 4.9 renamed the retry callback
RetryCallback = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or \
    optuna.storages.RetryFailedTrialCallback

# the pip package of each database driver SQLAlchemy may ask for, for the message when it is missing
_DRIVERS = {"psycopg": "'psycopg[binary]'", "psycopg2": "psycopg2-binary",
            "MySQLdb": "mysqlclient", "pymysql": "PyMySQL"}


def make_storage(url: str, heartbeat: int, max_retry: int):
    """An Optuna storage: an RDB URL (sqlite:///..., postgresql://...) with heartbeats and
    retries of trials whose worker died, or ``journal:PATH`` (a journal file, no heartbeat)."""
    if url.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend
        path = url[len("journal:"):].removeprefix("//")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(path))
    kwargs = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
        file = url.split(":///", 1)[-1]
        if file and file != ":memory:":
            Path(file).parent.mkdir(parents=True, exist_ok=True)
    hb = {}
    if heartbeat and heartbeat > 0:
        key = "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in \
            inspect.signature(optuna.storages.RDBStorage).parameters else "failed_trial_callback"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            hb = {"heartbeat_interval": heartbeat, "grace_period": 2 * heartbeat,
                  key: RetryCallback(max_retry=max_retry)}
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, **kwargs, **hb)
        except ImportError as e:
            missing = getattr(e.__cause__, "name", None) or getattr(e, "name", None)
            hint = f"pip install {_DRIVERS[missing]}" if missing in _DRIVERS else \
                f"the module {missing} is missing" if missing else \
                "install the database driver SQLAlchemy names for it"
            raise StorageError(f"storage={url}: no database driver for it ({hint})") from e
        except ValueError as e:   # raised by SQLAlchemy's URL parser: a port that is no number
            raise StorageError(f"storage={url}: not a valid storage URL: {e}") from e
        except sqlalchemy.exc.SQLAlchemyError as e:   # two workers creating the tables at once
            # a URL SQLAlchemy cannot read (or whose dialect it lacks) is not retried
            if attempt == 4 or isinstance(e, sqlalchemy.exc.ArgumentError):
                reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
                raise StorageError(f"storage={url}: cannot open it: {reason} (an Optuna "
                                   "storage URL: sqlite:///PATH, postgresql://USER@HOST/DB, "
                                   "journal:PATH)") from e
            time.sleep(0.5 + attempt)


def has_heartbeat(storage) -> bool:
    """Whether the storage detects dead workers (an RDB storage with a heartbeat)."""
    return isinstance(storage, optuna.storages.RDBStorage) and \
        storage.get_heartbeat_interval() is not None
