"""The summary table: it reproduces the lecture notes' VGG-16 table, works for the whole zoo, cuts
the tree by depth, and the command line fails with one line (exit status 2) on a bad spec."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import netspec
from netspec.summary import main
from netspec.table import COLUMNS, format_table

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"

# The VGG-16 table of the lecture notes (CS231n), as the seed file has it; used when the seeds
# folder is not next to the checkout.
VGG16_NOTES = """\
INPUT: [224x224x3] memory: 224*224*3=150K params: 0 (not counting biases)
CONV3-64: [224x224x64] memory: 224*224*64=3.2M params: (3*3*3)*64 = 1,728
CONV3-64: [224x224x64] memory: 224*224*64=3.2M params: (3*3*64)*64 = 36,864
POOL2: [112x112x64] memory: 112*112*64=800K params: 0
CONV3-128: [112x112x128] memory: 112*112*128=1.6M params: (3*3*64)*128 = 73,728
CONV3-128: [112x112x128] memory: 112*112*128=1.6M params: (3*3*128)*128 = 147,456
POOL2: [56x56x128] memory: 56*56*128=400K params: 0
CONV3-256: [56x56x256] memory: 56*56*256=800K params: (3*3*128)*256 = 294,912
CONV3-256: [56x56x256] memory: 56*56*256=800K params: (3*3*256)*256 = 589,824
CONV3-256: [56x56x256] memory: 56*56*256=800K params: (3*3*256)*256 = 589,824
POOL2: [28x28x256] memory: 28*28*256=200K params: 0
CONV3-512: [28x28x512] memory: 28*28*512=400K params: (3*3*256)*512 = 1,179,648
CONV3-512: [28x28x512] memory: 28*28*512=400K params: (3*3*512)*512 = 2,359,296
CONV3-512: [28x28x512] memory: 28*28*512=400K params: (3*3*512)*512 = 2,359,296
POOL2: [14x14x512] memory: 14*14*512=100K params: 0
CONV3-512: [14x14x512] memory: 14*14*512=100K params: (3*3*512)*512 = 2,359,296
CONV3-512: [14x14x512] memory: 14*14*512=100K params: (3*3*512)*512 = 2,359,296
CONV3-512: [14x14x512] memory: 14*14*512=100K params: (3*3*512)*512 = 2,359,296
POOL2: [7x7x512] memory: 7*7*512=25K params: 0
FC: [1x1x4096] memory: 4096 params: 7*7*512*4096 = 102,760,448
FC: [1x1x4096] memory: 4096 params: 4096*4096 = 16,777,216
FC: [1x1x1000] memory: 1000 params: 4096*1000 = 4,096,000
"""
NOTE_ROW = re.compile(r"^(INPUT|CONV3-\d+|POOL2|FC): \[(\d+)x(\d+)x(\d+)\] memory: .*?"
                      r"params: (.*)$")
# which of our layer kinds each row of the notes is
NOTE_KIND = {"INPUT": "image", "CONV3": "conv", "POOL2": "pool max", "FC": "linear"}


def notes_rows() -> list[tuple[str, str, int]]:
    """(kind, output as we write it, weights) of each row of the notes' VGG-16 table."""
    text = VGG16_NOTES
    for seed in sorted(SEEDS.glob("*.txt")) if SEEDS.is_dir() else ():
        body = seed.read_text(encoding="utf-8", errors="replace")
        if "CONV3-64: [224x224x64]" in body:
            text = body
            break
    rows = []
    for line in text.splitlines():
        m = NOTE_ROW.match(line.strip())
        if not m:
            continue
        kind, h, w, c, params = m.groups()
        out = c if (h, w) == ("1", "1") else f"{h}x{w}x{c}"     # the notes write FC as 1x1xN
        count = params.split("=")[-1] if "=" in params else params.split()[0]
        rows.append((NOTE_KIND[kind.split("-")[0]], out, int(count.replace(",", ""))))
    assert len(rows) == 22, f"the notes' VGG-16 table should have 22 rows, found {len(rows)}"
    return rows


def parse_table(text: str) -> list[dict]:
    """Our table back into cells: the name is the first word, the last seven are numbers."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["layer", "type"])
    rows = []
    for line in lines[start + 2:]:
        if line.startswith("---"):
            break
        words = line.split()
        rows.append(dict(zip(COLUMNS, [words[0], " ".join(words[1:-7]), *words[-7:]], strict=True)))
    return rows


def test_cli_reproduces_the_notes_vgg16_table():
    proc = subprocess.run([sys.executable, "-m", "netspec.summary", "spec=vgg16"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    rows = parse_table(proc.stdout)
    # the notes have no adaptive pool, flatten or dropout rows (identities at 224x224)
    ours = [r for r in rows if r["type"].split()[0] in ("image", "conv", "linear")
            or r["type"].startswith("pool max")]
    notes = notes_rows()
    assert len(ours) == len(notes)
    for (kind, out, weights), row in zip(notes, ours, strict=True):
        assert row["type"].startswith(kind), (row, kind)
        assert row["output"] == out, (row, out)
        assert int(row["weights"].replace(",", "")) == weights, (row, weights)
    assert sum(w for _, _, w in notes) == 138_344_128
    assert re.search(r"^total params\s+138,357,544\b", proc.stdout, re.M)
    assert re.search(r"^weights\s+138,344,128\b", proc.stdout, re.M)
    assert re.search(r"^MACs\s+15,470,264,320\b", proc.stdout, re.M)
    assert max(len(line) for line in proc.stdout.splitlines()) <= 100


def _run(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as e:          # a user error: one line on stderr, exit status 2
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", netspec.zoo())
def test_every_zoo_spec_has_a_table(name):
    report = netspec.analyze(name)
    text = format_table(report)
    rows = parse_table(text)
    assert len(rows) == len(report.layers) + 1                     # + the input row
    assert max(len(line) for line in text.splitlines()) <= 100
    assert sum(int(r["params"].replace(",", "")) for r in rows) == report.params
    assert f"{report.params:,}" in text and f"{report.macs:,}" in text
    for depth in (1, 2, 3):
        cut = parse_table(format_table(report, depth))
        assert sum(int(r["params"].replace(",", "")) for r in cut) == report.params


def test_depth_cuts_the_tree(capsys):
    code, out, _ = _run(capsys, "spec=googlenet", "depth=2")
    assert code == 0
    rows = parse_table(out)
    inception = [r for r in rows if r["type"].startswith("inception")]
    assert len(inception) == 9 and not any(r["type"].startswith("branch") for r in rows)
    report = netspec.analyze("googlenet")
    first = next(lay for lay in report.tree if lay.kind == "inception")
    assert inception[0]["layer"] == first.name == "stages.0"
    assert int(inception[0]["params"].replace(",", "")) == first.params == 155_872   # 3a
    assert inception[0]["output"] == "28x28x256"
    full = parse_table(format_table(report))
    assert len(full) > len(rows)
    assert [r["layer"] for r in parse_table(format_table(report, 1))][1:] == ["stem", "stages",
                                                                              "head"]


def test_overrides_reach_the_spec(capsys):
    code, out, _ = _run(capsys, "spec=mobilenet_v2", "input.size=32", "num_classes=10",
                        "scale.width=0.5")
    assert code == 0
    rows = parse_table(out)
    assert rows[0]["output"] == "32x32x3" and rows[-1]["output"] == "10"
    report = netspec.analyze("mobilenet_v2", ["input.size=32", "num_classes=10", "scale.width=0.5"])
    assert f"{report.params:,}" in out


def test_help_lists_the_zoo(capsys):
    code, out, _ = _run(capsys, "--help")
    assert code == 0 and "spec=" in out and "vgg16" in out and "resnet50" in out


@pytest.mark.parametrize("argv, expect", [
    (["spec=resnt50"], "did you mean 'resnet50'"),
    (["spec=vgg16", "stages[0].conv.k=banana"], "banana"),
    (["spec=vgg16", "input.size=16"], "vgg16.yaml:"),
    (["spec=vgg16", "depth=x"], "depth"),
    (["spec=vgg16", "depth=0"], "depth"),
    (["vgg16"], "key=value"),
    ([], "spec="),
])
def test_bad_input_is_one_line_and_status_2(capsys, argv, expect):
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and expect in err


@pytest.mark.parametrize("body, line", [
    ("input: {channels: 3, size: 32}\nnum_classes: 10\n"
     "stages:\n  - conv: {c: 16, k: 3, s: 2}\n  - conv: {c: 16, k: 3, strid: 2}\n", 5),
    ("input: {channels: 3, size: 32\n  bad", 3),
])
def test_bad_spec_file_is_one_line_and_status_2(capsys, tmp_path, body, line):
    bad = tmp_path / "bad.yaml"
    bad.write_text(body)
    code, out, err = _run(capsys, f"spec={bad}")
    assert code == 2 and out == "" and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"bad.yaml:{line}:" in lines[0], err
