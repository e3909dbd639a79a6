"""`python -m netspec.export ckpt_path=... format=onnx`: the trained network for deployment."""
from __future__ import annotations

import sys
from pathlib import Path

from .cli import fail, parse_args, user_errors
from .plugins import load_plugins

FORMATS = ("onnx", "torchscript", "pt2")
USAGE = f"""usage: python -m netspec.export ckpt_path=PATH [format={'|'.join(FORMATS)}] [out=FILE] [batch=1]

Writes the network of a netspec.train checkpoint (eval mode) as ONNX (opset from torch's
exporter, dynamic batch), TorchScript or a torch.export program, and checks the file against the
PyTorch model on a random batch (ONNX: with onnxruntime when it is installed)."""


def export(ckpt_path: str, fmt: str = "onnx", out: str | None = None, batch: int = 1) -> dict:
    import torch

    from .compile import build
    from .train.transfer import checkpoint_spec, load_checkpoint, model_state

    ckpt = load_checkpoint(ckpt_path)
    spec = checkpoint_spec(ckpt, ckpt_path)
    model = build(spec).eval()
    model.load_state_dict(model_state(ckpt))
    c = spec["input"]["channels"]
    size = spec["input"]["size"]
    h, w = (size, size) if isinstance(size, int) else size
    x = torch.randn(batch, c, h, w)
    suffix = {"onnx": ".onnx", "torchscript": ".ts.pt", "pt2": ".pt2"}[fmt]
    path = Path(out) if out else Path(ckpt_path).with_suffix(suffix)
    with torch.no_grad():
        expected = model(x)
        if fmt == "onnx":
            torch.onnx.export(model, (x,), str(path), input_names=["images"],
                              output_names=["logits"], dynamo=False,
                              dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
            got = _run_onnx(path, x)
        elif fmt == "torchscript":
            scripted = torch.jit.trace(model, x)
            scripted.save(str(path))
            got = torch.jit.load(str(path))(x)
        else:
            program = torch.export.export(model, (x,))
            torch.export.save(program, str(path))
            got = torch.export.load(str(path)).module()(x)
    diff = None if got is None else float((torch.as_tensor(got) - expected).abs().max())
    return {"file": str(path), "format": fmt, "max_abs_diff": diff}


def _run_onnx(path: Path, x):
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": x.numpy()})[0]


def main(argv: list[str] | None = None) -> None:
    opts, rest = parse_args(sys.argv[1:] if argv is None else argv, USAGE,
                            {"ckpt_path": None, "format": "onnx", "out": None, "batch": "1"})
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
        r = export(opts["ckpt_path"], opts["format"], opts["out"], int(opts["batch"]))
    check = ("not checked (install onnxruntime to check it)" if r["max_abs_diff"] is None
             else f"max |diff| against PyTorch {r['max_abs_diff']:.2e}")
    print(f"wrote {r['file']} ({r['format']}); {check}")


if __name__ == "__main__":
    main()
