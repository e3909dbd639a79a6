"""The study's storage: an Optuna RDB storage (SQLite by default, PostgreSQL for many workers) or
a journal file, each with heartbeats and retries of trials whose worker died."""
from __future__ import annotations

import inspect
import time
import warnings
from pathlib import Path

import optuna
import sqlalchemy.exc
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import JournalStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import TrialState

from ..errors import StorageError

# Optuna >= 4.9 renamed the retry callback
RetryCallback = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or \
    optuna.storages.RetryFailedTrialCallback

# the pip package of each database driver SQLAlchemy may ask for, for the message when it is missing
_DRIVERS = {"psycopg": "'psycopg[binary]'", "psycopg2": "psycopg2-binary",
            "MySQLdb": "mysqlclient", "pymysql": "PyMySQL"}


BEAT = "netspec:heartbeat"      # a journal trial's system attribute: its worker's last beat


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """Optuna's journal storage with the heartbeat its RDB storage has (Optuna's journal storage
    has none, so a killed worker's trial stayed RUNNING for ever): the running trial's worker
    writes the time every ``interval`` seconds, and a RUNNING trial silent for ``grace``
    seconds is stale (Optuna's fail_stale_trials fails it, the callback retries it). Beats are
    the workers' clocks, so machines sharing a journal file need their clocks in step."""

    def __init__(self, backend, interval: int, grace: int, callback):
        super().__init__(backend)
        self._beat = (interval, grace, callback)

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self.set_trial_system_attr(trial_id, BEAT, time.time())
        except UpdateFinishedTrialError:      # another worker failed it as stale meanwhile
            pass

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now, grace = time.time(), self._beat[1]
        stale = []
        for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            last = t.system_attrs.get(BEAT)
            if last is None and t.datetime_start is not None:
                last = t.datetime_start.timestamp()     # local time, as the journal replays it
            if last is not None and now - last > grace:
                stale.append(t._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self._beat[0]

    def get_heartbeat_stale_trial_callback(self):
        return self._beat[2]


def _retry(max_retry: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryCallback(max_retry=max_retry)


def make_storage(url: str, heartbeat: int, max_retry: int):
    """An Optuna storage: an RDB URL (sqlite:///..., postgresql://...) or ``journal:PATH`` (a
    journal file), with heartbeats and retries of trials whose worker died (heartbeat > 0)."""
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend
        path = url[len("journal:"):].removeprefix("//")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(path)
        if heartbeat and heartbeat > 0:
            return HeartbeatJournalStorage(backend, heartbeat, 2 * heartbeat, _retry(max_retry))
        return JournalStorage(backend)
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
        hb = {"heartbeat_interval": heartbeat, "grace_period": 2 * heartbeat,
              key: _retry(max_retry)}
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
    """Whether the storage detects dead workers (a heartbeat is set)."""
    return isinstance(storage, BaseHeartbeat) and storage.get_heartbeat_interval() is not None
