"""``jobs=N``: N trials at once on this host, each job a worker process of its own on the study.

The command that is given ``jobs=N`` opens the study, then starts N workers
(``python -m netspec.search.jobs CONFIG K``) and watches the storage: it prints each finished
trial's line and keeps the results files current, as one worker does; the workers run trials
and are quiet (their output is in ``jobs/job-K.log``). Each worker is the ordinary one, on the
same storage: samples come from the trial numbers (seeding.py), heartbeats and retries, pruning
and grid points work across them as across machines.

Devices: where GPUs are visible each job gets one (``CUDA_VISIBLE_DEVICES``, in turn when there
are more jobs than GPUs; ``jobs=auto`` is one per GPU); on the CPU the cores are divided, each
job's torch and OpenMP threads a share. Ctrl-C reaches the workers once (they run in sessions
of their own, and this process passes it on): each requeues its trial and stops, and the same
command resumes.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from ..errors import ConfigError
from .trials import finished_trials


def job_count(value) -> int:
    """``jobs=N`` or ``jobs=auto`` (one per visible GPU, 1 without one)."""
    text = str(value).strip().lower()
    if text == "auto":
        return max(1, len(_gpus()))
    try:
        n = int(text)
    except ValueError:
        raise ConfigError(f"jobs={value}: a number of trials at once (>= 1) or auto "
                          f"(one per visible GPU)") from None
    if n < 1:
        raise ConfigError(f"jobs={value}: at least 1")
    return n


def _gpus() -> list[str]:
    """The visible GPUs as CUDA_VISIBLE_DEVICES names them (indices otherwise)."""
    import torch
    if not torch.cuda.is_available():
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        return [v.strip() for v in visible.split(",") if v.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


def job_env(k: int, n: int) -> dict:
    """Job k's environment: its GPU, or its share of the CPU's threads."""
    env = dict(os.environ)
    gpus = _gpus()
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[k % len(gpus)]
    threads = max(1, (os.cpu_count() or 1) // n)
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    env["NETSPEC_JOB_THREADS"] = str(threads)
    return env


def run_jobs(search, n: int) -> str | None:
    """Run the study's trials in ``n`` worker processes; why it ended short (None: it did not)."""
    folder = search.out / "jobs"
    folder.mkdir(parents=True, exist_ok=True)
    cfg = OmegaConf.to_container(search.cfg, resolve=True)
    cfg.update(jobs="1", run_dir=str(search.out))
    config = folder / "config.yaml"
    config.write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))
    study = search.study
    seen = {t.number for t in finished_trials(study.get_trials(deepcopy=False))}
    procs = []
    for k in range(n):
        log = open(folder / f"job-{k}.log", "a")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "netspec.search.jobs", str(config), str(k)],
            env=job_env(k, n), stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        log.close()
    search.log(f"jobs: {n} workers on this host (jobs/job-K.log)")
    try:
        while True:
            alive = [p for p in procs if p.poll() is None]
            _report_new(search, study, seen)
            if not alive:
                break
            time.sleep(1.0)
    except KeyboardInterrupt:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=120)
            except subprocess.TimeoutExpired:
                p.kill()
        _report_new(search, study, seen)
        raise
    bad = [(k, p.returncode) for k, p in enumerate(procs) if p.returncode not in (0, 3)]
    if bad:
        return "; ".join(f"job {k} exited with status {rc} (see {folder / f'job-{k}.log'})"
                         for k, rc in bad)
    return None


def _report_new(search, study, seen: set) -> None:
    """The progress line (and results files) of each trial finished since the last look."""
    for t in finished_trials(study.get_trials(deepcopy=False)):
        if t.number not in seen:
            seen.add(t.number)
            search.progress(study, t, done=len(seen))


def worker(config: Path, k: int) -> int:
    """One job: the ordinary search loop on the study, quiet; its exit status."""
    from . import run_search
    threads = os.environ.get("NETSPEC_JOB_THREADS")
    if threads:
        import torch
        torch.set_num_threads(int(threads))
    cfg = OmegaConf.load(config)
    try:
        result = run_search(cfg, log=lambda line: print(f"[job {k}] {line}", flush=True),
                            results=False)
    except KeyboardInterrupt:
        return 130
    return 0 if result.complete else 3


if __name__ == "__main__":
    from ..cli import user_errors
    with user_errors():
        sys.exit(worker(Path(sys.argv[1]), int(sys.argv[2])))
