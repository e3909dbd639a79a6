"""`python -m netspec.export ckpt_path=... format=onnx`: the trained network for deployment."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytorch_lightning as pl

from .cli import fail, parse_args, user_errors
from .plugins import load_plugins

FORMATS = ("onnx", "torchscript", "pt2")
USAGE = f"""usage: python -m netspec.export ckpt_path=PATH [format={'|'.join(FORMATS)}] [out=FILE] [batch=1]
                             [weights=raw|ema]

Writes the network of a netspec.train checkpoint (eval mode) as ONNX (torch's dynamo exporter,
the TorchScript one where it fails; dynamic batch), TorchScript or a torch.export program, and
checks the file against the PyTorch model on a random batch (ONNX: with onnxruntime when it is
installed). weights=ema: the moving average of a run with ema=. The ONNX file's metadata_props
carry what a deployment needs beside it: the normalisation mean/std, the class names and the
input size (JSON values), as the checkpoint's `netspec` entry does (TorchScript and pt2: the
extra file netspec.json)."""
META_KEY = "netspec"                 # the checkpoint's entry of what a deployment needs


def deployment_info(dm, spec: dict) -> dict:
    """What a deployed network needs beside its weights: the input it expects, its outputs' names."""
    size = spec["input"]["size"]
    h, w = (size, size) if isinstance(size, int) else size
    return {"mean": list(dm.mean), "std": list(dm.std), "classes": [str(c) for c in dm.classes],
            "input_size": [int(spec["input"]["channels"]), int(h), int(w)]}


class DeploymentInfo(pl.Callback):
    """Writes :func:`deployment_info` into every checkpoint of a run (a module-level class:
    ddp_spawn pickles the callbacks)."""

    def __init__(self, info: dict):
        self.info = info

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        checkpoint[META_KEY] = self.info


def deployment_callback(dm, spec: dict) -> DeploymentInfo:
    return DeploymentInfo(deployment_info(dm, spec))


def export(ckpt_path: str, fmt: str = "onnx", out: str | None = None, batch: int = 1,
           weights: str = "raw") -> dict:
    import torch

    from .compile import build
    from .train.ema import check_weights, ema_state
    from .train.transfer import checkpoint_spec, load_checkpoint, model_state

    ckpt = load_checkpoint(ckpt_path)
    spec = checkpoint_spec(ckpt, ckpt_path)
    model = build(spec).eval()
    state = ema_state(ckpt, ckpt_path) if check_weights(weights) == "ema" else model_state(ckpt)
    model.load_state_dict(state)
    meta = _metadata(ckpt, spec, weights)
    c = spec["input"]["channels"]
    size = spec["input"]["size"]
    h, w = (size, size) if isinstance(size, int) else size
    x = torch.randn(batch, c, h, w)
    suffix = {"onnx": ".onnx", "torchscript": ".ts.pt", "pt2": ".pt2"}[fmt]
    path = Path(out) if out else Path(ckpt_path).with_suffix(suffix)
    exporter = None
    with torch.no_grad():
        expected = model(x)
        if fmt == "onnx":
            exporter = _export_onnx(model, x, path, meta)
            got = _run_onnx(path, x)
        elif fmt == "torchscript":
            scripted = torch.jit.trace(model, x)
            scripted.save(str(path), _extra_files={"netspec.json": json.dumps(meta)})
            got = torch.jit.load(str(path))(x)
        else:
            program = torch.export.export(model, (x,))
            torch.export.save(program, str(path), extra_files={"netspec.json": json.dumps(meta)})
            got = torch.export.load(str(path)).module()(x)
    diff = None if got is None else float((torch.as_tensor(got) - expected).abs().max())
    return {"file": str(path), "format": fmt, "max_abs_diff": diff, "exporter": exporter,
            "metadata": meta}


def _metadata(ckpt: dict, spec: dict, weights: str) -> dict:
    """The ONNX metadata of a checkpoint: its deployment info (older checkpoints: the input size
    from the spec; mean, std and classes are then unknown) and the network's name."""
    info = dict(ckpt.get(META_KEY) or {})
    if "input_size" not in info:
        size = spec["input"]["size"]
        h, w = (size, size) if isinstance(size, int) else size
        info["input_size"] = [int(spec["input"]["channels"]), int(h), int(w)]
    return {**info, "spec": spec.get("name", "?"), "weights": weights}


def _export_onnx(model, x, path: Path, meta: dict) -> str:
    """Export with torch's recommended (dynamo) exporter, else the TorchScript one; returns which."""
    import torch
    props = {k: json.dumps(v) if not isinstance(v, str) else v for k, v in meta.items()}
    names = {"input_names": ["images"], "output_names": ["logits"]}
    try:
        program = torch.onnx.export(model, (x,), **names, dynamo=True, verbose=False,
                                    dynamic_shapes=({0: torch.export.Dim("batch")},))
    except (torch.onnx.OnnxExporterError, ImportError):   # an op it can't convert, no onnxscript
        program = None
    if program is not None:
        program.model.metadata_props.update(props)
        program.save(str(path))
        return "dynamo"
    import warnings

    import onnx
    with warnings.catch_warnings():   # the legacy exporter's deprecation notice: we know
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (x,), str(path), **names, dynamo=False,
                          dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, props)
    onnx.save(proto, str(path))
    return "torchscript"


def _run_onnx(path: Path, x):
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": x.numpy()})[0]


def main(argv: list[str] | None = None) -> None:
    opts, rest = parse_args(sys.argv[1:] if argv is None else argv, USAGE,
                            {"ckpt_path": None, "format": "onnx", "out": None, "batch": "1",
                             "weights": "raw"})
    if rest:
        fail(f"unknown argument '{rest[0]}'\n{USAGE}")
    if not opts["ckpt_path"]:
        fail(f"ckpt_path=... is required\n{USAGE}")
    if not opts["batch"].isdigit() or int(opts["batch"]) < 1:
        fail(f"batch must be a whole number of at least 1, got '{opts['batch']}'")
    if opts["format"] not in FORMATS:
        fail(f"format must be one of {', '.join(FORMATS)}, got '{opts['format']}'")
    with user_errors():
        load_plugins()
        r = export(opts["ckpt_path"], opts["format"], opts["out"], int(opts["batch"]),
                   opts["weights"])
    check = ("not checked (install onnxruntime to check it)" if r["max_abs_diff"] is None
             else f"max |diff| against PyTorch {r['max_abs_diff']:.2e}")
    how = f", {r['exporter']} exporter" if r["exporter"] else ""
    print(f"wrote {r['file']} ({r['format']}{how}, {opts['weights']} weights); {check}")
    missing = [k for k in ("mean", "std", "classes") if k not in r["metadata"]]
    if r["format"] == "onnx" and missing:
        print(f"note: the checkpoint predates netspec's deployment info: no "
              f"{', '.join(missing)} in the file's metadata")


if __name__ == "__main__":
    main()
