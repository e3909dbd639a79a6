"""`python -m netspec.eval ckpt_path=...`: test metrics and a confusion matrix of a checkpoint."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .cli import fail, parse_args, user_errors
from .plugins import load_plugins

USAGE = """usage: python -m netspec.eval ckpt_path=PATH [split=test|val] [out=DIR] [data.KEY=VALUE ...]

Evaluates a checkpoint written by netspec.train on the data it was trained with (or with the
data.* keys changed), prints top-1/top-5 accuracy and loss, and writes metrics.json and
confusion.png to out (default: beside the checkpoint)."""


def evaluate(ckpt_path: str, split: str = "test", out: str | None = None,
             data_overrides: list[str] = ()) -> dict:
    import pytorch_lightning as pl
    from omegaconf import OmegaConf

    from .train.data import make_datamodule
    from .train.module import SpecClassifier
    from .train.plots import plot_confusion
    from .train.transfer import checkpoint_spec, load_checkpoint

    ckpt = load_checkpoint(ckpt_path)
    checkpoint_spec(ckpt, ckpt_path)
    hp = ckpt["hyper_parameters"]
    module = SpecClassifier(**hp)
    module.load_state_dict(ckpt["state_dict"])
    data_cfg = OmegaConf.merge(OmegaConf.structured(_data_config()), hp.get("data") or {},
                               OmegaConf.from_dotlist([o.removeprefix("data.")
                                                       for o in data_overrides]))
    aug_cfg = OmegaConf.merge(OmegaConf.structured(_aug_config()), hp.get("aug") or {})
    spec = hp["spec"]
    size = spec["input"]["size"]
    dm = make_datamodule(data_cfg, aug_cfg, size=size, channels=spec["input"]["channels"])
    dm.prepare_data()
    dm.setup("test" if split == "test" else "validate")
    trainer = pl.Trainer(accelerator="auto", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False)
    loader = dm.test_dataloader() if split == "test" else dm.val_dataloader()
    results = trainer.test(module, dataloaders=loader, verbose=False)[0]
    matrix = module.test_confusion.compute().cpu().numpy()
    where = Path(out) if out else Path(ckpt_path).resolve().parent
    where.mkdir(parents=True, exist_ok=True)
    report = {"checkpoint": str(ckpt_path), "split": split, **{k: float(v)
                                                             for k, v in results.items()},
              "confusion_matrix": matrix.tolist(), "classes": list(dm.classes)}
    (where / "metrics.json").write_text(json.dumps(report, indent=2))
    plot_confusion(matrix, list(dm.classes), where / "confusion.png")
    report["files"] = [str(where / "metrics.json"), str(where / "confusion.png")]
    return report


def _data_config():
    from .train.data import DataConfig
    return DataConfig


def _aug_config():
    from .train.augment import AugConfig
    return AugConfig


def main(argv: list[str] | None = None) -> None:
    opts, rest = parse_args(sys.argv[1:] if argv is None else argv, USAGE,
                            {"ckpt_path": None, "split": "test", "out": None})
    if not opts["ckpt_path"]:
        fail(f"ckpt_path=... is required\n{USAGE}")
    bad = [r for r in rest if not r.startswith("data.")]
    if bad:
        fail(f"unknown argument '{bad[0]}'\n{USAGE}")
    if opts["split"] not in ("test", "val"):
        fail(f"split must be test or val, got '{opts['split']}'")
    with user_errors():
        load_plugins()
        r = evaluate(opts["ckpt_path"], opts["split"], opts["out"], rest)
    acc5 = r.get("test/acc_top5")
    print(f"{r['split']}: acc {r['test/acc']:.4f}" + (f"  top-5 {acc5:.4f}" if acc5 else "")
          + f"  loss {r['test/loss']:.4f}")
    print("wrote " + ", ".join(r["files"]))


if __name__ == "__main__":
    main()
