"""`python -m netspec.eval ckpt_path=...`: test metrics and a confusion matrix of a checkpoint."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .cli import fail, parse_args, user_errors
from .plugins import load_plugins

USAGE = """usage: python -m netspec.eval ckpt_path=PATH [split=test|val] [out=DIR] [weights=raw|ema]
                           [data.KEY=VALUE ...]

Evaluates a checkpoint written by netspec.train on the data it was trained with (or with the
data.* keys changed), prints top-1/top-5 accuracy and loss on the split it names (test: the data
set's test split, else the one held out of its train split by data.test_fraction, else val), and
writes metrics.json and confusion.png to out (default: beside the checkpoint). weights=ema: the
moving average of the weights that a run with ema= kept beside the raw ones."""


def evaluate(ckpt_path: str, split: str = "test", out: str | None = None,
             data_overrides: list[str] = (), weights: str = "raw") -> dict:
    import pytorch_lightning as pl
    from omegaconf import OmegaConf

    from .train.data import make_datamodule
    from .train.ema import check_weights, ema_state
    from .train.module import SpecClassifier
    from .train.plots import plot_confusion
    from .train.transfer import checkpoint_spec, load_checkpoint

    ckpt = load_checkpoint(ckpt_path)
    checkpoint_spec(ckpt, ckpt_path)
    hp = ckpt["hyper_parameters"]
    module = SpecClassifier(**hp)
    module.load_state_dict(ckpt["state_dict"])
    if check_weights(weights) == "ema":
        module.model.load_state_dict(ema_state(ckpt, ckpt_path))
    trained_on = dict(hp.get("data") or {})
    # a checkpoint from before the held-out test split trained on it: test on val, and say so
    trained_on.setdefault("test_fraction", 0.0)
    data_cfg = OmegaConf.merge(OmegaConf.structured(_data_config()), trained_on,
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
    label = dm.test_label() if split == "test" else \
        f"val ({len(dm.val_dataset)} images; the split that picked the best checkpoint)"
    report = {"checkpoint": str(ckpt_path), "split": split, "split_label": label,
              "test_split": dm.test_split if split == "test" else "val",
              "weights": weights, **{k: float(v)
                                                             for k, v in results.items()},
              "confusion_matrix": matrix.tolist(), "classes": list(dm.classes)}
    (where / "metrics.json").write_text(json.dumps(report, indent=2))
    plot_confusion(matrix, list(dm.classes), where / "confusion.png",
                   title=f"{label}, {Path(ckpt_path).name} ({weights} weights)")
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
                            {"ckpt_path": None, "split": "test", "out": None, "weights": "raw"})
    if not opts["ckpt_path"]:
        fail(f"ckpt_path=... is required\n{USAGE}")
    bad = [r for r in rest if not r.startswith("data.")]
    if bad:
        fail(f"unknown argument '{bad[0]}'\n{USAGE}")
    if opts["split"] not in ("test", "val"):
        fail(f"split must be test or val, got '{opts['split']}'")
    with user_errors():
        load_plugins()
        r = evaluate(opts["ckpt_path"], opts["split"], opts["out"], rest, opts["weights"])
    from .train.report import evaluation_line
    print(evaluation_line(r["split_label"], r))
    print("wrote " + ", ".join(r["files"]))


if __name__ == "__main__":
    main()
