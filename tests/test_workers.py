"""Storage, resume and workers: a search killed, interrupted, run by several workers or
several jobs, on SQLite, a journal file and PostgreSQL (where a server is configured); a run
that ends short of n_trials says so."""
import functools
import importlib.util
import os
import re
import signal
import subprocess
import sys
import time

import optuna
import pytest
import sqlalchemy.engine
import sqlalchemy.exc
import yaml
from optuna.trial import TrialState
from tiny_search import FAST, cli_env, search, states

import netspec
from netspec.errors import ConfigError, StorageError
from netspec.search.storage import make_storage
from netspec.search.trials import finished_trials


def test_rerun_resumes_to_the_requested_total(files):
    r = search(files, f"space={files / 'tiny.yaml'}", "strategy=tpe", "n_trials=2")
    first = {t.number: t.values for t in r.study.trials}
    started = {t.number: t.datetime_start for t in r.study.trials}
    r = search(files, f"space={files / 'tiny.yaml'}", "strategy=tpe", "n_trials=4")
    assert len(finished_trials(r.study.trials)) == 4
    assert "(2 of 4 trials done)" in r.lines[0] and len(r.lines) == 3    # two trials ran
    assert {t.number: (t.values, t.datetime_start) for t in r.study.trials if t.number in first} \
        == {n: (v, started[n]) for n, v in first.items()}   # the first two, not trained again
    r = search(files, f"space={files / 'tiny.yaml'}", "strategy=tpe", "n_trials=4")
    assert len(r.study.trials) == 4 and len(r.lines) == 1   # nothing left to do
    with pytest.raises(ConfigError, match="objectives"):
        search(files, f"space={files / 'tiny.yaml'}", "strategy=tpe", "n_trials=4",
               "objectives=[acc,macs]")


def test_journal_storage(files):
    r = search(files, f"space={files / 'tiny.yaml'}", "strategy=random", "n_trials=2",
               f"storage=journal:{files / 'journal.log'}")
    assert (files / "journal.log").is_file() and len(r.study.trials) == 2


# postgresql:// is SQLAlchemy's default driver for it (psycopg2; psycopg from SQLAlchemy 2.1): where
# it is missing, its pip package is named; where it is there, the refused connection (port 1)
PG = "postgresql://nas@127.0.0.1:1/nas"
PG_DRIVER = sqlalchemy.engine.make_url(PG).get_dialect().driver
NO_SERVER = "cannot open it" if importlib.util.find_spec(PG_DRIVER) else \
    re.escape("no database driver for it (pip install ") + f".*{PG_DRIVER}"


@pytest.mark.parametrize("url, says", [
    ("foo://x", "cannot open it"),                        # no such SQLAlchemy dialect
    ("postgresql://nas@:::bad/nas", "not a valid storage URL"),
    (PG, NO_SERVER),
])
def test_a_bad_storage_url_is_one_clear_error(files, url, says):
    with pytest.raises(StorageError, match=f"storage={re.escape(url)}: .*{says}"):
        search(files, f"space={files / 'tiny.yaml'}", "n_trials=1", f"storage={url}")


def _cli(files, run_dir, *args, seed=0):
    return [sys.executable, "-m", "netspec.search", f"space={files / 'tiny.yaml'}",
            "strategy=random", f"seed={seed}", f"run_dir={run_dir}", *FAST[:-1], *args]



def _trials_of(run_dir, name="tiny-random", storage=None):
    """The study's trials; none while the command has not created it (or its tables) yet."""
    url = storage or f"sqlite:///{run_dir / 'study.db'}"
    try:
        return optuna.load_study(study_name=name, storage=make_storage(url, 0, 0)).trials
    except (KeyError, sqlalchemy.exc.OperationalError, StorageError):
        return []


# PostgreSQL runs where a server is at hand: NETSPEC_TEST_POSTGRES=postgresql://USER@HOST/DB
POSTGRES = os.environ.get("NETSPEC_TEST_POSTGRES")
STORAGES = ["sqlite", "journal", pytest.param("postgresql", marks=pytest.mark.skipif(
    not POSTGRES, reason="set NETSPEC_TEST_POSTGRES=postgresql://USER@HOST/DB (psycopg "
                         "installed) to run the storage tests on PostgreSQL too"))]


def _storage(kind, run_dir, name):
    """A storage URL and a study name of its own (a PostgreSQL database outlives the test)."""
    if kind == "sqlite":
        return f"sqlite:///{run_dir / 'study.db'}", name
    if kind == "journal":
        return f"journal:{run_dir / 'journal.log'}", name
    return POSTGRES, f"{name}-{os.getpid()}-{time.time_ns()}"


@pytest.mark.parametrize("kind", STORAGES)
def test_resume_after_the_runner_is_killed(files, kind):
    run_dir = files / "killed"
    storage, name = _storage(kind, run_dir, "killed")
    cmd = _cli(files, run_dir, "n_trials=6", "budget.epochs=25", "heartbeat=1", "max_retry=3",
               f"storage={storage}", f"study_name={name}")
    trials_now = functools.partial(_trials_of, run_dir, name, storage)
    proc = subprocess.Popen(cmd, cwd=files, env=cli_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            trials = trials_now()
            # killed in a training: its sample drawn (a trial killed before it drew one is
            # retried with a fresh sample, there being none to repeat)
            if sum(t.state == TrialState.COMPLETE for t in trials) >= 2 and \
                    any(t.state == TrialState.RUNNING and t.params for t in trials):
                break
            time.sleep(0.2)
        else:
            pytest.fail("the search did not get going")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = {t.number: (t.values, t.params) for t in trials_now()
              if t.state == TrialState.COMPLETE}
    running = [t.number for t in trials_now() if t.state == TrialState.RUNNING]
    assert running                                     # killed mid-trial
    out = subprocess.run(cmd, cwd=files, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    trials = trials_now()
    after = {t.number: (t.values, t.params) for t in trials if t.state == TrialState.COMPLETE}
    assert all(after[n] == v for n, v in before.items())            # no completed trial lost
    assert len(finished_trials(trials)) == 6                         # the requested total
    retried = {t.system_attrs.get("failed_trial") for t in trials} - {None}
    assert set(running) <= retried and not retried & set(before)     # none repeated
    dead = next(t for t in trials if t.number == running[0])
    assert dead.state == TrialState.FAIL
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == running[0])
    assert dead.params and retry.params == dead.params and retry.state == TrialState.COMPLETE
    assert "best:" in out.stdout and (run_dir / "best.yaml").is_file()


def test_ctrl_c_then_rerun_trains_the_interrupted_sample_again(files):
    run_dir = files / "interrupted"
    cmd = _cli(files, run_dir, "n_trials=3", "budget.epochs=25", "callbacks.checkpoint=true")
    proc = subprocess.Popen(cmd, cwd=files, env=cli_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        trials = _trials_of(run_dir)
        running = [t for t in trials if t.state == TrialState.RUNNING]
        # interrupted in the middle of a training (its first checkpoint written, 24 epochs to
        # go), not in the moment between two trials, when a run may be about to end anyway
        if any(t.state == TrialState.COMPLETE for t in trials) and running and \
                (run_dir / "trials" / f"{running[0].number:04d}" / "checkpoints"
                 / "last.ckpt").is_file():
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the search did not get going")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "resumes" in err
    cut = next(t for t in _trials_of(run_dir) if t.user_attrs.get("fail_reason") == "interrupted")
    assert cut.state == TrialState.FAIL
    out = subprocess.run(cmd, cwd=files, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    trials = _trials_of(run_dir)
    assert len(finished_trials(trials)) == 3
    again = next(t for t in trials if t.user_attrs.get("retry_of") == cut.number)
    assert again.params == cut.params and again.state == TrialState.COMPLETE


@pytest.mark.parametrize("kind", STORAGES)
def test_two_workers_share_one_storage(files, kind):
    run_dir = files / "shared"
    storage, name = _storage(kind, run_dir, "shared")
    run_dir.mkdir()
    cmds = [_cli(files, run_dir / f"w{i}", "n_trials=6", f"storage={storage}",
                 f"study_name={name}", "budget.epochs=30", seed=i) for i in (1, 2)]
    procs = [subprocess.Popen(c, cwd=files, env=cli_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for c in cmds]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    trials = optuna.load_study(study_name=name, storage=make_storage(storage, 0, 0)).trials
    done = finished_trials(trials)
    assert 6 <= len(done) <= 7                 # at most one over: both may start the last one
    assert all(t.state == TrialState.COMPLETE for t in done)
    assert len({t.user_attrs["worker"] for t in done}) == 2
    # each worker writes best.yaml, though the best trial may have trained in the other's run dir
    for i in (1, 2):
        best = yaml.safe_load((run_dir / f"w{i}" / "best.yaml").read_text())
        assert netspec.analyze(best).params in {t.user_attrs["params"] for t in done}




def test_a_study_left_running_without_heartbeat_ends_incomplete(files):
    storage = f"sqlite:///{files / 'left.db'}"
    r = search(files, f"space={files / 'tiny.yaml'}", "strategy=random", "n_trials=1",
               f"storage={storage}")
    assert r.complete
    r.study.ask()                              # a worker that died in its trial (no heartbeat)
    r = search(files, f"space={files / 'tiny.yaml'}", "strategy=random", "n_trials=2",
               f"storage={storage}")
    assert not r.complete and "holds 1 of 2 trials: 1 trial(s) still RUNNING" in r.shortfall
    assert any(line.startswith("incomplete: ") for line in r.lines)


def test_timeout_starts_no_trial_after_it_and_the_rerun_goes_on(files, monkeypatch):
    from netspec.search import runner
    clock = iter(range(0, 10**6, 10))          # each reading of the clock: 10 s later
    monkeypatch.setattr(runner, "clock", lambda: next(clock))
    r = search(files, f"space={files / 'tiny.yaml'}", "strategy=random", "n_trials=4",
               "timeout=15")                   # read at 0, then 10 (a trial runs), then 20
    assert states(r.study) == [TrialState.COMPLETE]
    assert r.shortfall == "the study holds 1 of 4 trials: timeout=15 s reached"
    monkeypatch.undo()
    r = search(files, f"space={files / 'tiny.yaml'}", "strategy=random", "n_trials=4")
    assert r.complete and states(r.study) == [TrialState.COMPLETE] * 4


def test_the_command_exits_3_when_it_ends_short(files):
    out = subprocess.run(_cli(files, files / "run", "n_trials=2", "timeout=1e-9"), cwd=files,
                         env=cli_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 3, out.stderr[-2000:]
    assert "incomplete: the study holds 0 of 2 trials: timeout=1e-09 s reached" in out.stdout


@pytest.mark.parametrize("kind", STORAGES)
def test_jobs_2_runs_trials_at_once_and_records_them_all(files, kind):
    run_dir = files / "jobs"
    storage, name = _storage(kind, run_dir, "jobs")
    out = subprocess.run(_cli(files, run_dir, "n_trials=4", "jobs=2", "budget.epochs=30",
                              "heartbeat=2", f"storage={storage}", f"study_name={name}"),
                         cwd=files, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    trials = optuna.load_study(study_name=name, storage=make_storage(storage, 0, 0)).trials
    done = finished_trials(trials)
    assert len(done) >= 4 and all(t.state == TrialState.COMPLETE for t in done)
    assert len({t.user_attrs["worker"] for t in done}) == 2          # two processes
    spans = [(t.datetime_start, t.datetime_complete) for t in done]
    assert any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1:])
    lines = [line for line in out.stdout.splitlines() if re.match(r"\[\d/4\] trial ", line)]
    assert len(lines) == len(done)                  # the command reports each worker's trials
    assert (run_dir / "best.yaml").is_file() and (run_dir / "jobs" / "job-1.log").is_file()


def test_jobs_is_refused_for_a_one_shot_search_and_bad_values(files):
    with pytest.raises(ConfigError, match="jobs=2 runs trials at once; strategy=spos"):
        search(files, f"space={files / 'tiny.yaml'}", "strategy=spos", "jobs=2")
    with pytest.raises(ConfigError, match="jobs=two: a number of trials at once"):
        search(files, f"space={files / 'tiny.yaml'}", "jobs=two")


def test_ctrl_c_stops_every_job_and_the_rerun_finishes(files):
    run_dir = files / "jobs-cut"
    cmd = _cli(files, run_dir, "n_trials=4", "jobs=2", "budget.epochs=200", "heartbeat=2")
    proc = subprocess.Popen(cmd, cwd=files, env=cli_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:      # both jobs in a training
        if sum(t.state == TrialState.RUNNING and bool(t.params) for t in _trials_of(run_dir)) == 2:
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the jobs did not get going")
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 130 and "resumes" in err
    cut = [t for t in _trials_of(run_dir) if t.user_attrs.get("fail_reason") == "interrupted"]
    assert len(cut) == 2 and not [t for t in _trials_of(run_dir)
                                  if t.state == TrialState.RUNNING]
    again = _cli(files, run_dir, "n_trials=4", "jobs=2", "budget.epochs=2", "heartbeat=2")
    out = subprocess.run(again, cwd=files, env=cli_env(), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    trials = _trials_of(run_dir)
    assert len(finished_trials(trials)) == 4
    for c in cut:                        # each interrupted sample trained again
        again = next(t for t in trials if t.user_attrs.get("retry_of") == c.number)
        assert again.params == c.params and again.state == TrialState.COMPLETE


def test_the_slurm_launcher_runs_workers_on_one_study_locally(files):
    pytest.importorskip("submitit", reason="the launcher needs submitit (the dev extra has it)")
    run_dir = files / "slurm"
    storage = f"journal:{run_dir / 'journal.log'}"
    search_args = _cli(files, run_dir, "n_trials=4", "budget.epochs=30", "heartbeat=2",
                       f"storage={storage}")[3:]
    out = subprocess.run([sys.executable, "-m", "netspec.search.slurm", "workers=2",
                          "cluster=local", "cpus=1", "time=10", f"folder={files / 'logs'}",
                          *search_args], cwd=files, env=cli_env(), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "submitted 2 workers" in out.stdout and "exit statuses [0, 0]" in out.stdout
    trials = optuna.load_study(study_name="tiny-random", storage=make_storage(storage, 0, 0)).trials
    done = finished_trials(trials)
    assert len(done) >= 4 and all(t.state == TrialState.COMPLETE for t in done)
    assert len({t.user_attrs["worker"] for t in done}) == 2


def test_the_slurm_launcher_refuses_a_storage_the_tasks_cannot_share(files):
    out = subprocess.run([sys.executable, "-m", "netspec.search.slurm", "workers=2",
                          "space=mobile_stages"], cwd=files, env=cli_env(), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2 and "one storage they all reach" in out.stderr


def test_each_job_gets_a_gpu_in_turn_or_a_share_of_the_cpu_threads(monkeypatch):
    from netspec.search import jobs
    monkeypatch.setattr(jobs.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(jobs, "_gpus", lambda: [])
    env = jobs.job_env(0, 2)
    assert env["OMP_NUM_THREADS"] == env["NETSPEC_JOB_THREADS"] == "4"
    assert jobs.job_env(1, 16)["OMP_NUM_THREADS"] == "1"
    assert jobs.job_count("auto") == 1
    monkeypatch.setattr(jobs, "_gpus", lambda: ["2", "5"])       # CUDA_VISIBLE_DEVICES=2,5
    assert [jobs.job_env(k, 3)["CUDA_VISIBLE_DEVICES"] for k in range(3)] == ["2", "5", "2"]
    assert jobs.job_count("auto") == 2 and jobs.job_count("3") == 3
