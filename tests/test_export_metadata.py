"""Export that stands alone: the checkpoint and the ONNX file carry the normalisation, the class
names and the input size; the dynamo exporter runs, quietly; onnxruntime gives PyTorch's logits."""
import json
import warnings

import numpy as np
import pytest
import torch
from tiny_training import cfg_of, run, write_tiny

from netspec.compile import build
from netspec.export import META_KEY, export
from netspec.train.data import make_datamodule
from netspec.train.ema import EMA_KEY
from netspec.train.transfer import load_checkpoint

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    r = run(tmp, write_tiny(tmp), "ema=0.5")
    return r, tmp


def _data(tmp):
    cfg = cfg_of(f"spec={write_tiny(tmp)}", "data=fake", "data.num_samples=96",
                 "data.image_size=16", "data.val_fraction=0.25", "aug=none")
    dm = make_datamodule(cfg.data, cfg.aug)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_the_checkpoint_carries_what_a_deployment_needs(trained):
    r, tmp = trained
    dm = _data(tmp)
    info = load_checkpoint(r.last_checkpoint)[META_KEY]
    assert info == {"mean": list(dm.mean), "std": list(dm.std), "classes": list(dm.classes),
                    "input_size": [3, 16, 16]}
    assert len(info["classes"]) == 10 and len(info["mean"]) == 3


@pytest.mark.parametrize("weights", ["raw", "ema"])
def test_onnx_metadata_and_onnxruntime(trained, weights):
    r, tmp = trained
    out = tmp / f"net-{weights}.onnx"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = export(r.last_checkpoint, "onnx", str(out), weights=weights)
    assert report["exporter"] == "dynamo"
    assert not [w for w in caught if issubclass(w.category, (DeprecationWarning, FutureWarning))]
    ckpt = load_checkpoint(r.last_checkpoint)
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    for key in ("mean", "std", "classes", "input_size"):
        assert json.loads(props[key]) == ckpt[META_KEY][key], key
    assert props["weights"] == weights and props["spec"] == "tiny"
    # the file alone: normalise with its metadata, a batch of 3 (the batch axis is dynamic)
    mean, std = (np.array(json.loads(props[k]), dtype=np.float32)[:, None, None]
                 for k in ("mean", "std"))
    c, h, w = json.loads(props["input_size"])
    pixels = np.random.default_rng(0).random((3, c, h, w), dtype=np.float32)
    x = (pixels - mean) / std
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(
        None, {"images": x})[0]
    model = build(ckpt["hyper_parameters"]["spec"]).eval()
    state = ckpt[EMA_KEY] if weights == "ema" else {
        k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()}
    model.load_state_dict(state)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    scale = np.abs(expected).max()
    assert np.abs(got - expected).max() <= 1e-4 * max(scale, 1.0)
    assert report["max_abs_diff"] <= 1e-4 * max(scale, 1.0)


def test_ema_and_raw_files_differ(trained):
    r, tmp = trained
    files = {w: export(r.last_checkpoint, "onnx", str(tmp / f"d-{w}.onnx"), weights=w)["file"]
             for w in ("raw", "ema")}
    x = np.random.default_rng(1).standard_normal((2, 3, 16, 16)).astype(np.float32)
    outs = [ort.InferenceSession(f, providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]
            for f in files.values()]
    assert np.abs(outs[0] - outs[1]).max() > 1e-4


@pytest.mark.parametrize("fmt", ["torchscript", "pt2"])
def test_other_formats_carry_it_as_an_extra_file(trained, fmt):
    r, tmp = trained
    report = export(r.last_checkpoint, fmt, str(tmp / f"net.{fmt}"))
    if fmt == "torchscript":
        extra = {"netspec.json": ""}
        torch.jit.load(report["file"], _extra_files=extra)
    else:
        extra = {"netspec.json": ""}
        torch.export.load(report["file"], extra_files=extra)
    meta = json.loads(extra["netspec.json"])
    assert meta["classes"] == load_checkpoint(r.last_checkpoint)[META_KEY]["classes"]
