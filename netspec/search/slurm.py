"""`python -m netspec.search.slurm workers=N [partition=P] [time=MIN] ... SEARCH_ARGS`: a search
run by N workers on a cluster, one Slurm array task each, through submitit.

Each task runs the ordinary worker, ``python -m netspec.search SEARCH_ARGS``, against the
storage the arguments give (PostgreSQL, or a journal file on a shared file system): the workers
share the study as on one machine (trial-number seeds, heartbeats and retries), each with the
identity (host:pid) its trials record. ``jobs=K`` in SEARCH_ARGS runs K trials per task (one per
GPU of the task's node with ``jobs=auto``). ``cluster=local`` runs the tasks as local processes
(submitit's local executor): what the tests do, and a dry run before a cluster.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ..cli import fail, parse_args

USAGE = """\
usage: python -m netspec.search.slurm workers=N storage=URL [partition=P] [time=MINUTES]
           [gpus=G] [cpus=C] [mem_gb=M] [folder=slurm] [cluster=slurm|local] [wait=true|false]
           SEARCH_ARGS...

Submits a Slurm array of N tasks (submitit), each a netspec.search worker on one study:
SEARCH_ARGS are netspec.search's (space=, strategy=, n_trials=, ...) and must give a storage
all tasks reach: storage=postgresql://USER@HOST/DB, or storage=journal:/shared/path.log.
gpus and cpus are per task; folder holds submitit's logs; wait=true (default) waits for the
tasks and exits with the first non-zero status among them."""

KNOWN = {"workers": None, "partition": None, "time": "240", "gpus": "0", "cpus": "4",
         "mem_gb": None, "folder": "slurm", "cluster": "slurm", "wait": "true"}


def worker(args: list[str]) -> int:
    """One array task: the search worker's exit status."""
    return subprocess.run([sys.executable, "-m", "netspec.search", *args]).returncode


def _positive(options: dict, key: str) -> int:
    try:
        value = int(options[key])
    except (TypeError, ValueError):
        fail(f"{key}={options[key]}: a whole number\n{USAGE}")
    if value < (1 if key in ("workers", "time", "cpus") else 0):
        fail(f"{key}={value}: too small\n{USAGE}")
    return value


def main(argv: list[str] | None = None) -> None:
    options, search_args = parse_args(sys.argv[1:] if argv is None else argv, USAGE, KNOWN)
    if options["workers"] is None:
        fail(f"workers=N is required\n{USAGE}")
    n = _positive(options, "workers")
    storage = next((a.split("=", 1)[1] for a in search_args if a.startswith("storage=")), "")
    if not (storage.startswith("journal:") or "://" in storage) or storage.startswith("sqlite"):
        fail("give the workers one storage they all reach: storage=postgresql://USER@HOST/DB "
             "or storage=journal:/shared/path.log (SQLite is a file per machine, and locks "
             "badly over network file systems)")
    try:
        import submitit
    except ImportError:
        fail("the Slurm launcher needs submitit: pip install submitit (or the slurm extra)")
    params = {"timeout_min": _positive(options, "time"), "cpus_per_task": _positive(options, "cpus"),
              "name": "netspec-search"}
    gpus = _positive(options, "gpus")
    if gpus:
        params["gpus_per_node"] = gpus
    if options["mem_gb"] is not None:
        params["mem_gb"] = _positive(options, "mem_gb")
    if options["partition"]:
        params["slurm_partition"] = options["partition"]
    params["slurm_array_parallelism"] = n
    executor = submitit.AutoExecutor(folder=Path(options["folder"]), cluster=options["cluster"])
    executor.update_parameters(**params)
    jobs = executor.map_array(worker, [list(search_args)] * n)
    print(f"submitted {n} workers: {', '.join(j.job_id for j in jobs)} (logs in "
          f"{options['folder']}/)")
    if str(options["wait"]).lower() in ("false", "0", "no"):
        return
    statuses = [j.result() for j in jobs]
    bad = [s for s in statuses if s]
    print(f"workers done: exit statuses {statuses}")
    sys.exit(bad[0] if bad else 0)


if __name__ == "__main__":
    main()
