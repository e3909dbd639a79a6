"""``data.root``: where it is, what is missing under it, downloading and decompressing into it."""
from __future__ import annotations

import os
import shutil
import tempfile
import zlib
from pathlib import Path

from ...errors import DataError
from .registry import SOURCES


def resolve_root(root: str) -> Path:
    """``data.root`` as a path; a relative one is relative to where the user started the run, not
    to Hydra's run folder."""
    path = Path(os.path.expanduser(str(root)))
    if not path.is_absolute():
        try:
            from hydra.core.hydra_config import HydraConfig
            from hydra.utils import to_absolute_path

            if HydraConfig.initialized():
                path = Path(to_absolute_path(str(path)))
        except Exception:  # pragma: no cover - hydra absent or not running
            pass
    return path


def missing_root(cfg, root: Path, what: str) -> DataError:
    """The error for a ``data.root`` that does not exist; ``what`` is what belongs in it."""
    src = SOURCES.get(cfg.name)
    hint = " (and data.download=true to fetch it)" if src is not None and src.torchvision else ""
    return DataError(
        f"data.root '{root}' does not exist (data.name={cfg.name}, working directory "
        f"{os.getcwd()}); set data.root=<the folder that holds {what}>{hint}")


def download(cfg, root: Path, fetch) -> None:
    """Run ``fetch()`` (a torchvision download into ``root``); a failure is one DataError."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        fetch()
    except DataError:
        raise
    except Exception as e:
        raise DataError(
            f"downloading {cfg.name} into data.root '{root}' failed ({type(e).__name__}: "
            f"{str(e).strip().splitlines()[0] if str(e).strip() else e!r}); without internet, "
            f"copy the data set's files there yourself and set data.download=false") from None


def decompress(src: Path, dst: Path) -> None:
    """``src`` (e.g. ``.gz``) decompressed into ``dst`` by torchvision."""
    from torchvision.datasets.utils import extract_archive

    # through a private folder: torchvision writes in place, and a half-written dst would pass for
    # the file itself on the next run (or on another rank reading it meanwhile)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        os.replace(extract_archive(str(src), str(tmp)), dst)
    except (OSError, EOFError, zlib.error, RuntimeError) as e:
        raise DataError(f"cannot decompress '{src}' into '{dst}': {e}; decompress it yourself, or "
                        f"replace it with a good copy") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
