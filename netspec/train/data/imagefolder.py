"""``imagefolder``: ``data.root/<class>/<image>``, or ``data.root/train/<class>/<image>`` with
``val/`` and ``test/`` beside it; images are found recursively under each class folder."""
from __future__ import annotations

import os
from pathlib import Path

from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, has_file_allowed_extension, make_dataset

from ...errors import DataError, did_you_mean
from .raw import Files, Raw
from .registry import source
from .roots import missing_root

SPLIT_DIRS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
LAYOUT = ("imagefolder expects data.root/<class>/<image>.png (or data.root/train/<class>/..., "
          "with val/ and test/ beside it)")


def subdirs(path: Path) -> list[str]:
    """The sub-folders of ``path``, sorted, as torchvision finds them; hidden ones (``.git``,
    ``.ipynb_checkpoints``) are left out, which torchvision's find_classes doesn't do."""
    try:
        names = find_classes(path)[0]
    except FileNotFoundError:          # no sub-folder at all: the caller says what to do
        return []
    return [n for n in names if not n.startswith(".")]


def is_image(folder: Path):
    """Whether a path under ``folder`` is an image: by its extension, and neither hidden nor in a
    hidden folder (like the class folders)."""
    start = len(str(folder))

    def check(path: str) -> bool:
        return has_file_allowed_extension(path, IMG_EXTENSIONS) and os.sep + "." not in path[start:]
    return check


def scan_classes(folder: Path, classes: list[str] | None = None):
    """``(classes, samples)`` of one class tree; with ``classes`` (the train split's), a class
    folder that is not one of them is an error, and one without images is allowed."""
    names = subdirs(folder)
    if not names:
        raise DataError(f"'{folder}' has no class sub-folders; {LAYOUT}")
    train = classes is None
    if train:
        classes = names
    for n in names:
        if n not in classes:
            raise DataError(f"'{folder / n}' is a class the train split doesn't have"
                            f"{did_you_mean(n, classes)}; the train classes are: "
                            f"{', '.join(classes)}")
    index = {c: i for i, c in enumerate(classes)}
    # allow_empty: the empty class folders are reported below, by path
    samples = make_dataset(str(folder), {n: index[n] for n in names},
                           is_valid_file=is_image(folder), allow_empty=True)
    if not samples:
        raise DataError(f"no images under the class folders of '{folder}' (looked for "
                        f"{' '.join(IMG_EXTENSIONS)}); {LAYOUT}")
    found = {t for _, t in samples}
    empty = [n for n in names if index[n] not in found]
    if empty and train:
        raise DataError(f"class folder(s) {', '.join(repr(str(folder / e)) for e in empty)} hold "
                        f"no images ({' '.join(IMG_EXTENSIONS)}); add images or remove them")
    return classes, samples


def scan_splits(root: Path):
    """``(classes, train, val, test)`` samples; val and test are None without their folders."""
    top = subdirs(root)
    if not (top and "train" in top and all(d in SPLIT_DIRS for d in top)):
        return (*scan_classes(root), None, None)
    split_dirs = {SPLIT_DIRS[d]: root / d for d in top}
    classes, train = scan_classes(split_dirs["train"])
    val, test = (scan_classes(split_dirs[s], classes)[1] if s in split_dirs else None
                 for s in ("val", "test"))
    return classes, train, val, test


def probe(samples) -> tuple[set[tuple[int, int]], bool]:
    """The ``(h, w)`` sizes of the images and whether all are gray, from their headers only
    (torchvision has no reader of image headers)."""
    from PIL import Image

    sizes, gray = set(), True
    for path, _ in samples:
        try:
            with Image.open(path) as im:
                sizes.add((im.size[1], im.size[0]))
                gray = gray and im.mode in GRAY_MODES
        except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, ...
            raise DataError(f"cannot read image '{path}': {e}; remove or replace the file"
                            ) from None
    return sizes, gray


@source("imagefolder", root=True)
def load_imagefolder(cfg, root: Path) -> Raw:
    if not root.is_dir():
        if root.exists():
            raise DataError(f"data.root '{root}' is a file, not a folder; {LAYOUT}")
        raise missing_root(cfg, root, "the class sub-folders")
    classes, train, val, test = scan_splits(root)
    sizes, gray = probe(train + (val or []) + (test or []))
    mode = "L" if gray else "RGB"
    files = lambda s: Files(s, mode) if s is not None else None
    size = next(iter(sizes)) if len(sizes) == 1 else None
    return Raw(files(train), files(val), files(test), classes, 1 if gray else 3, size)

