"""optuna-dashboard shows a search's study: a tiny search run in-process, then the
`optuna-dashboard sqlite:///RUN/study.db` command the README gives, its JSON API read back."""
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from tiny_search import search

pytest.importorskip("optuna_dashboard", reason="optuna-dashboard is not installed "
                    "(pip install 'netspec[dashboard]')")


def _dashboard_command() -> str:
    """The console script pip put next to this Python (or, failing that, on PATH)."""
    here = Path(sys.executable).parent / "optuna-dashboard"
    found = str(here) if here.is_file() else shutil.which("optuna-dashboard")
    if not found:
        pytest.fail("optuna_dashboard imports but its optuna-dashboard command is nowhere to be found")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def test_the_dashboard_serves_the_studys_trials(files):
    r = search(files, f"space={files / 'tiny.yaml'}", "strategy=random", "n_trials=2")
    db = r.run_dir / "study.db"
    assert db.is_file()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = files / "dashboard.log"
    with open(log, "w") as err:
        server = subprocess.Popen([_dashboard_command(), f"sqlite:///{db}", "--host", "127.0.0.1",
                                   "--port", str(port)], stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.time() + 60
        while True:     # until it answers; it may take a few seconds to import and bind
            if server.poll() is not None:
                pytest.fail(f"optuna-dashboard exited {server.returncode}:\n{log.read_text()[-3000:]}")
            try:
                studies = _get(f"{base}/api/studies")["study_summaries"]
                break
            except (urllib.error.URLError, ConnectionError):
                if time.time() > deadline:
                    pytest.fail(f"optuna-dashboard did not answer on {base} within 60 s:\n"
                                f"{log.read_text()[-3000:]}")
                time.sleep(0.2)
        assert [s["study_name"] for s in studies] == [r.study.study_name]
        detail = _get(f"{base}/api/studies/{studies[0]['study_id']}")
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    assert detail["name"] == r.study.study_name
    assert detail["directions"] == [d.name.lower() for d in r.study.directions]
    expected = r.study.trials
    assert len(expected) == 2
    shown = sorted(detail["trials"], key=lambda t: t["number"])
    assert [t["number"] for t in shown] == [t.number for t in expected]
    assert [t["state"] for t in shown] == [t.state.name.capitalize() for t in expected]
    assert [t.get("values") for t in shown] == [t.values for t in expected]
    assert [{p["name"]: p["param_external_value"] for p in t["params"]} for t in shown] == \
        [{k: str(v) for k, v in t.params.items()} for t in expected]
