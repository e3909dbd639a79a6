"""bench/gpu_check.py in CPU toy mode: every row runs (sync_batchnorm skipped: it needs CUDA)."""
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"


@pytest.mark.slow            # about 4 minutes on 2 CPU cores: nine command lines, compile and DDP
def test_gpu_check_runs_every_path_on_the_cpu():
    p = subprocess.run([sys.executable, str(SCRIPT), "--cpu"], capture_output=True, text=True,
                       timeout=900)
    table = p.stdout.split("\ncheck ")[-1]
    assert p.returncode == 0, p.stdout + p.stderr
    for row in ("preset trains", "bf16-mixed", "channels_last", "compile=true", "DDP ddp x2",
                "DDP ddp_spawn x2", "jobs=auto", "img/s"):
        (line,) = [ln for ln in table.splitlines() if row in ln]
        assert " OK " in line, line
    assert "SKIPPED(needs CUDA GPUs)" in table
    assert " vs " in [ln for ln in table.splitlines() if "img/s" in ln][0]
