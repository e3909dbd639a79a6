"""Data modules and augmentations (netspec.train.data, netspec.train.augment).

Nothing is downloaded: every torchvision data set is written here, small, in its own on-disk format
(MNIST / Fashion-MNIST idx files, CIFAR-10/100 pickled batches, an ImageFolder tree of PNGs).
"""
from __future__ import annotations

import gzip
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from netspec.train.augment import AugConfig, BatchAugment, build_transforms
from netspec.train.data import (
    NAMES,
    SOURCES,
    Arrays,
    DataConfig,
    DataError,
    Raw,
    make_datamodule,
    source,
    stratified_split,
)

CONF = Path(__file__).resolve().parents[1] / "conf"


def setup_dm(data: dict, aug: dict | None = None, **kw):
    dm = make_datamodule(DataConfig(**data), AugConfig(**(aug or {})), **kw)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def first(loader):
    return next(iter(loader))


def all_x(loader) -> torch.Tensor:
    return torch.cat([x for x, _ in loader])


# -- writers of the real on-disk formats ----------------------------------------------------------
def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    """The idx format of LeCun's MNIST files: magic (0, 0, type 0x08 = ubyte, ndim), dims, data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    raw = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    raw += struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.open(f"{path}.gz", "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


def write_mnist(root: Path, folder: str = "MNIST", n_train=50, n_test=20, compress=False, seed=0):
    rng = np.random.default_rng(seed)
    data = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = np.arange(n, dtype=np.uint8) % 10
        write_idx(root / folder / "raw" / f"{split}-images-idx3-ubyte", x, compress)
        write_idx(root / folder / "raw" / f"{split}-labels-idx1-ubyte", y, compress)
        data[split] = (x, y)
    return data


def write_pickle(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar10(root: Path, per_batch=8, n_test=12, seed=0):
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    for i in range(1, 6):
        x = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        write_pickle(folder / f"data_batch_{i}", {
            "batch_label": f"training batch {i} of 5",
            "labels": [(i * per_batch + j) % 10 for j in range(per_batch)],
            "data": x, "filenames": [f"img_{i}_{j}.png" for j in range(per_batch)]})
    x_test = rng.integers(0, 256, size=(n_test, 3072), dtype=np.uint8)
    y_test = [(j * 3) % 10 for j in range(n_test)]
    write_pickle(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "labels": y_test,
                                         "data": x_test, "filenames": ["t.png"] * n_test})
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
             "truck"]
    write_pickle(folder / "batches.meta", {"num_cases_per_batch": per_batch, "label_names": names,
                                           "num_vis": 3072})
    return x_test, y_test, names


def write_cifar100(root: Path, n_train=200, n_test=30, seed=0):
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    for split, n in (("train", n_train), ("test", n_test)):
        write_pickle(folder / split, {
            "filenames": [f"{j}.png" for j in range(n)], "batch_label": split,
            "fine_labels": [j % 100 for j in range(n)], "coarse_labels": [j % 20 for j in range(n)],
            "data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)})
    fine = [f"fine{i}" for i in range(100)]
    write_pickle(folder / "meta", {"fine_label_names": fine,
                                   "coarse_label_names": [f"coarse{i}" for i in range(20)]})
    return fine


def write_png(path: Path, h: int, w: int, mode: str = "RGB", seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    shape = (h, w, 3) if mode == "RGB" else (h, w)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode).save(path)


def write_folder(root: Path, classes=("cat", "dog", "fox"), n=6, h=10, w=12, mode="RGB"):
    for c, cls in enumerate(classes):
        for i in range(n):
            write_png(root / cls / f"{i}.png", h, w, mode, seed=100 * c + i)


# -- digits: the embedded default -----------------------------------------------------------------
def test_digits_default_batches_are_normalized():
    dm = setup_dm(dict(name="digits", size=32, channels=1))
    assert (dm.num_classes, dm.channels, dm.size) == (10, 1, (32, 32))
    assert dm.classes == [str(i) for i in range(10)]
    assert sum(dm.class_counts) == len(dm.train_dataset)
    assert len(dm.train_dataset) + len(dm.val_dataset) == 1797
    x, y = first(dm.train_dataloader())
    assert x.shape == (64, 1, 32, 32) and x.dtype == torch.float32 and type(x) is torch.Tensor
    assert y.shape == (64,) and y.dtype == torch.int64 and 0 <= int(y.min()) <= int(y.max()) <= 9
    train = torch.cat([x for x, _ in dm.train_dataset])            # every train image, no drop_last
    assert abs(train.mean().item()) < 1e-3 and abs(train.std().item() - 1) < 1e-2
    assert len(dm.mean) == len(dm.std) == 1 and 0 < dm.mean[0] < 1
    # test = val for digits (unless data.test_fraction holds one out, as conf/data/digits.yaml does)
    assert torch.equal(all_x(dm.test_dataloader()), all_x(dm.val_dataloader()))


def test_digits_split_is_stratified_and_seeded():
    from sklearn.datasets import load_digits

    y = torch.from_numpy(load_digits().target)
    tr, va = stratified_split(y, 0.2, seed=0)
    assert len(set(tr.tolist()) & set(va.tolist())) == 0 and len(tr) + len(va) == len(y)
    for c in range(10):
        n_c = int((y == c).sum())
        assert abs(int((y[va] == c).sum()) - 0.2 * n_c) <= 1       # every class ~20% in val
    tr2, va2 = stratified_split(y, 0.2, seed=0)
    assert torch.equal(va, va2) and torch.equal(tr, tr2)
    assert not torch.equal(va, stratified_split(y, 0.2, seed=1)[1])

    a = setup_dm(dict(name="digits", size=8, seed=3))
    b = setup_dm(dict(name="digits", size=8, seed=3))
    c = setup_dm(dict(name="digits", size=8, seed=4))
    assert torch.equal(all_x(a.val_dataloader()), all_x(b.val_dataloader()))
    assert a.class_counts == b.class_counts
    assert not torch.equal(all_x(a.val_dataloader()), all_x(c.val_dataloader()))
    # the train loader's shuffling is seeded too
    assert torch.equal(first(a.train_dataloader())[1], first(b.train_dataloader())[1])
    va_y = torch.cat([y for _, y in a.val_dataloader()])
    assert torch.bincount(va_y, minlength=10).min() >= 30             # stratified: ~36 per class


def split_of(counts: list[int], fraction: float, seed: int):
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    tr, va = stratified_split(y, fraction, seed)
    assert sorted(tr.tolist() + va.tolist()) == list(range(len(y)))     # a partition
    return y, tr, va


@pytest.mark.parametrize("counts,fraction", [([500, 500, 2], 0.2),       # a small class among big
                                             ([500, 500, 2], 0.8),
                                             ([3] * 10, 0.1),            # fewer val than classes
                                             ([40, 1, 40, 2], 0.5)])     # a class of one sample
def test_split_keeps_every_class_on_both_sides(counts, fraction):
    for seed in range(20):
        y, tr, va = split_of(counts, fraction, seed)
        for c, n in enumerate(counts):
            on_val = int((y[va] == c).sum())
            if n >= 2:
                assert on_val >= 1 and n - on_val >= 1, (seed, c, on_val)
            else:
                assert on_val == 0                      # a lone sample can only be trained on
        big = [c for c, n in enumerate(counts) if n >= 20]
        for c in big:
            assert abs(int((y[va] == c).sum()) - fraction * counts[c]) <= 1


def test_split_is_seeded_and_fraction_zero_holds_nothing_out():
    y, tr, va = split_of([30, 20, 5], 0.3, seed=7)
    assert all(torch.equal(a, b) for a, b in zip((tr, va), split_of([30, 20, 5], 0.3, seed=7)[1:]))
    assert not torch.equal(va, split_of([30, 20, 5], 0.3, seed=8)[2])
    y, tr, va = split_of([30, 20, 5], 0.0, seed=0)
    assert len(va) == 0 and len(tr) == 55


def test_fake_is_deterministic_by_seed():
    cfg = dict(name="fake", num_samples=40, num_classes=4, image_size=12, image_channels=3,
               batch_size=8)
    a, b = setup_dm(cfg), setup_dm(cfg)
    c = setup_dm({**cfg, "seed": 1})
    assert (a.num_classes, a.channels, a.size) == (4, 3, (12, 12))
    assert len(a.train_dataset) + len(a.val_dataset) == 40
    xa, ya = first(a.train_dataloader())
    assert xa.shape == (8, 3, 12, 12) and xa.dtype == torch.float32
    assert torch.equal(xa, first(b.train_dataloader())[0])
    assert not torch.equal(all_x(a.val_dataloader()), all_x(c.val_dataloader()))
    gray = setup_dm({**cfg, "image_channels": 1})
    assert first(gray.val_dataloader())[0].shape[1] == 1


# -- torchvision data sets from files in their own formats ----------------------------------------
@pytest.mark.parametrize("name,folder,compress", [("mnist", "MNIST", False),
                                                  ("mnist", "MNIST", True),
                                                  ("fashion_mnist", "FashionMNIST", True),
                                                  ("fashion_mnist", "FashionMNIST", False)])
def test_mnist_formats(tmp_path, name, folder, compress):
    data = write_mnist(tmp_path, folder, compress=compress)
    dm = setup_dm(dict(name=name, root=str(tmp_path), batch_size=16, normalize=False))
    assert (dm.num_classes, dm.channels, dm.size) == (10, 1, (28, 28))
    assert len(dm.train_dataset) == 40 and len(dm.val_dataset) == 10 and len(dm.test_dataset) == 20
    assert dm.class_counts == [4] * 10
    x, y = first(dm.test_dataloader())                   # not shuffled: the file's order
    assert x.shape == (16, 1, 28, 28) and x.dtype == torch.float32
    x_test, y_test = data["t10k"]
    assert torch.allclose(x[:, 0], torch.from_numpy(x_test[:16]).float() / 255)
    assert y.tolist() == y_test[:16].tolist()
    assert (dm.mean, dm.std) == ((0.0,), (1.0,))

    normed = setup_dm(dict(name=name, root=str(tmp_path), batch_size=16))
    mean, std = {"mnist": (0.1307, 0.3081), "fashion_mnist": (0.2860, 0.3530)}[name]
    assert normed.mean == (mean,) and normed.std == (std,)
    xn = first(normed.test_dataloader())[0]
    assert torch.allclose(xn, (x - mean) / std, atol=1e-5)
    if name == "fashion_mnist":
        assert normed.classes[0] == "T-shirt/top"


def test_cifar10_format(tmp_path):
    x_test, y_test, names = write_cifar10(tmp_path)
    dm = setup_dm(dict(name="cifar10", root=str(tmp_path), batch_size=4, normalize=False,
                       val_fraction=0.25))
    assert (dm.num_classes, dm.channels, dm.size, dm.classes) == (10, 3, (32, 32), names)
    assert len(dm.train_dataset) == 30 and len(dm.val_dataset) == 10 and len(dm.test_dataset) == 12
    x, y = first(dm.test_dataloader())
    assert x.shape == (4, 3, 32, 32)
    expect = torch.from_numpy(x_test[:4].reshape(4, 3, 32, 32)).float() / 255
    assert torch.allclose(x, expect) and y.tolist() == y_test[:4]
    normed = setup_dm(dict(name="cifar10", root=str(tmp_path), batch_size=4))
    assert normed.mean == (0.4914, 0.4822, 0.4465)
    m, s = torch.tensor(normed.mean).view(3, 1, 1), torch.tensor(normed.std).view(3, 1, 1)
    assert torch.allclose(first(normed.test_dataloader())[0], (expect - m) / s, atol=1e-5)


def test_cifar100_format(tmp_path):
    fine = write_cifar100(tmp_path)
    dm = setup_dm(dict(name="cifar100", root=str(tmp_path), batch_size=10))
    assert (dm.num_classes, dm.channels, dm.size) == (100, 3, (32, 32))
    assert dm.classes == fine and len(dm.class_counts) == 100
    assert len(dm.test_dataset) == 30 and len(dm.train_dataset) + len(dm.val_dataset) == 200
    x, y = first(dm.train_dataloader())
    assert x.shape == (10, 3, 32, 32) and int(y.max()) < 100


def test_cifar_archive_is_unpacked(tmp_path):
    src = tmp_path / "src"
    write_cifar10(src)
    root = tmp_path / "root"
    root.mkdir()
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    dm = setup_dm(dict(name="cifar10", root=str(root)))
    assert len(dm.test_dataset) == 12


def test_splits_too_big_to_keep_are_transformed_per_batch(tmp_path, monkeypatch):
    import netspec.train.data.datasets as datasets

    write_cifar10(tmp_path)
    cfg = dict(name="cifar10", root=str(tmp_path), batch_size=5, size=20, channels=1)
    kept = setup_dm(cfg)
    monkeypatch.setattr(datasets, "MATERIALIZE_BYTES", 0)
    batched = setup_dm(cfg)
    assert type(batched.val_dataset) is not type(kept.val_dataset)
    assert torch.allclose(all_x(batched.val_dataloader()), all_x(kept.val_dataloader()), atol=1e-5)
    assert torch.allclose(all_x(batched.test_dataloader()), all_x(kept.test_dataloader()),
                          atol=1e-5)
    x, y = batched.train_dataset[3]
    assert x.shape == (1, 20, 20) and isinstance(y, int)


def test_val_fraction_zero_validates_on_test(tmp_path):
    write_mnist(tmp_path)
    dm = setup_dm(dict(name="mnist", root=str(tmp_path), val_fraction=0.0))
    assert len(dm.train_dataset) == 50 and len(dm.val_dataset) == 20


# -- imagefolder ----------------------------------------------------------------------------------
def test_imagefolder(tmp_path):
    write_folder(tmp_path / "pets", h=10, w=12)
    (tmp_path / "pets" / "cat" / "notes.txt").write_text("not an image")
    dm = setup_dm(dict(name="imagefolder", root=str(tmp_path / "pets"), batch_size=4,
                       val_fraction=1 / 3))
    assert dm.classes == ["cat", "dog", "fox"] and dm.num_classes == 3
    assert (dm.channels, dm.size) == (3, (10, 12))                  # (h, w) of the PNGs
    assert dm.class_counts == [4, 4, 4] and len(dm.val_dataset) == 6
    x, y = first(dm.train_dataloader())
    assert x.shape == (4, 3, 10, 12) and x.dtype == torch.float32 and y.dtype == torch.int64
    train = torch.stack([x for x, _ in dm.train_dataset])           # normalized on the train split
    assert torch.allclose(train.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(train.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-2)


def test_imagefolder_finds_images_below_classes_and_skips_hidden_ones(tmp_path):
    write_folder(tmp_path, classes=("a", "b"), n=3, h=6, w=6)
    write_png(tmp_path / "a" / "deeper" / "x.png", 6, 6)          # images are found recursively
    write_png(tmp_path / "a" / ".hidden.png", 6, 6)
    write_png(tmp_path / "b" / ".cache" / "y.png", 6, 6)
    write_png(tmp_path / ".ipynb_checkpoints" / "z.png", 6, 6)     # not a class
    (tmp_path / "b" / "c.PNG").write_bytes((tmp_path / "b" / "0.png").read_bytes())   # any case
    dm = setup_dm(dict(name="imagefolder", root=str(tmp_path), val_fraction=0.5, batch_size=2))
    assert dm.classes == ["a", "b"]
    val_y = torch.cat([y for _, y in dm.val_dataloader()])
    assert (torch.tensor(dm.class_counts) + torch.bincount(val_y, minlength=2)).tolist() == [4, 4]


def test_imagefolder_splits_gray_and_workers(tmp_path):
    for split, n in (("train", 5), ("val", 2), ("test", 3)):
        write_folder(tmp_path / split, classes=("a", "b"), n=n, h=9, w=9, mode="L")
    dm = setup_dm(dict(name="imagefolder", root=str(tmp_path), batch_size=4, num_workers=1,
                       size=16))
    assert (dm.channels, dm.size, dm.classes) == (1, (16, 16), ["a", "b"])
    assert (len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)) == (10, 4, 6)
    x, _ = first(dm.val_dataloader())                               # through a worker process
    assert x.shape == (4, 1, 16, 16)
    rgb = setup_dm(dict(name="imagefolder", root=str(tmp_path), channels=3))
    assert first(rgb.test_dataloader())[0].shape == (6, 3, 9, 9)


# -- size and channels ----------------------------------------------------------------------------
def test_size_and_channels_conversion(tmp_path):
    dm = setup_dm(dict(name="digits", size=16, channels=3, batch_size=8))
    x = first(dm.val_dataloader())[0]
    assert x.shape == (8, 3, 16, 16) and dm.channels == 3 and len(dm.mean) == 3
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
    write_cifar10(tmp_path)
    gray = setup_dm(dict(name="cifar10", root=str(tmp_path), channels=1, size=20, batch_size=4))
    assert first(gray.train_dataloader())[0].shape == (4, 1, 20, 20) and len(gray.mean) == 1
    # the trainer's size/channels (fixed by the spec) win over the config's
    fixed = setup_dm(dict(name="digits", size=32, channels=1, batch_size=4), size=(12, 10),
                     channels=3)
    assert (fixed.size, fixed.channels) == ((12, 10), 3)
    assert first(fixed.train_dataloader())[0].shape == (4, 3, 12, 10)
    natural = setup_dm(dict(name="digits", batch_size=4))
    assert natural.size == (8, 8) and natural.channels == 1


def test_build_transforms_on_pil_and_tensors():
    aug = AugConfig(hflip=0.5, crop_padding=2, rotation=5, color_jitter=0.2, noise=0.1,
                    erasing=0.5)
    pil = Image.fromarray(np.zeros((20, 30, 3), dtype=np.uint8))
    for train in (True, False):
        tf = build_transforms(aug, 16, 1, [0.5], [0.25], train=train)
        out = tf(pil)
        assert out.shape == (1, 16, 16) and out.dtype == torch.float32 and type(out) is torch.Tensor
        out = tf(torch.zeros(3, 20, 30, dtype=torch.uint8))
        assert out.shape == (1, 16, 16)
    out = build_transforms(AugConfig(), None, None, None, None, train=False)(pil)
    assert out.shape == (3, 20, 30) and float(out.max()) == 0.0
    with pytest.raises(ValueError, match="probability"):
        build_transforms(AugConfig(hflip=2.0), 8, None, None, None, train=True)


# -- augmentations: change train batches, never val batches ---------------------------------------
AUGS = {"hflip": 1.0, "crop_padding": 3, "rotation": 20.0, "color_jitter": 0.5, "noise": 0.2,
        "erasing": 1.0, "resized_crop": True}


@pytest.fixture(scope="module")
def plain_batches():
    dm = setup_dm(dict(name="digits", size=16, channels=3, batch_size=32))
    torch.manual_seed(0)
    return first(dm.train_dataloader()), all_x(dm.val_dataloader())


@pytest.mark.parametrize("option", sorted(AUGS))
def test_each_aug_changes_train_but_not_val(option, plain_batches):
    (x0, y0), val0 = plain_batches
    dm = setup_dm(dict(name="digits", size=16, channels=3, batch_size=32), {option: AUGS[option]})
    torch.manual_seed(0)
    x, y = first(dm.train_dataloader())
    assert torch.equal(y, y0)                         # same seeded order: only the images differ
    assert x.shape == x0.shape and x.dtype == x0.dtype
    assert not torch.allclose(x, x0)
    assert torch.equal(all_x(dm.val_dataloader()), val0)
    assert torch.equal(all_x(dm.test_dataloader()), val0)


@pytest.fixture(scope="module")
def pets(tmp_path_factory):
    root = tmp_path_factory.mktemp("pets")
    write_folder(root, n=8, h=12, w=12)
    dm = setup_dm(dict(name="imagefolder", root=str(root), batch_size=8, size=16))
    torch.manual_seed(0)
    return root, first(dm.train_dataloader()), all_x(dm.val_dataloader())


@pytest.mark.parametrize("option", sorted(AUGS))
def test_each_aug_changes_train_but_not_val_v2(option, pets):
    """The per-sample v2 pipeline of build_transforms (image folders)."""
    root, (x0, y0), val0 = pets
    dm = setup_dm(dict(name="imagefolder", root=str(root), batch_size=8, size=16),
                  {option: AUGS[option]})
    torch.manual_seed(0)
    x, y = first(dm.train_dataloader())
    assert torch.equal(y, y0) and x.shape == x0.shape and not torch.allclose(x, x0)
    assert torch.equal(all_x(dm.val_dataloader()), val0)


def test_batch_augment_semantics():
    torch.manual_seed(0)
    x = torch.rand(16, 3, 12, 10)
    flip = BatchAugment(AugConfig(hflip=1.0), None, None)(x)
    assert torch.allclose(flip, x.flip(-1), atol=1e-5)
    shifted = BatchAugment(AugConfig(crop_padding=2), None, None)(x)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(16):                         # each image is one integer shift, zero filled
        assert any(torch.allclose(shifted[i], padded[i, :, dy:dy + 12, dx:dx + 10], atol=1e-5)
                   for dy in range(5) for dx in range(5))
    rot = BatchAugment(AugConfig(rotation=30.0), None, None)(x)
    assert rot.shape == x.shape and not torch.allclose(rot, x)
    rrc = BatchAugment(AugConfig(resized_crop=True), None, None)(x)
    assert rrc.shape == x.shape and not torch.allclose(rrc, x)
    jit = BatchAugment(AugConfig(color_jitter=0.5), None, None)(x)
    assert float(jit.min()) >= 0 and float(jit.max()) <= 1 and not torch.allclose(jit, x)
    norm = BatchAugment(AugConfig(erasing=1.0), [0.5] * 3, [0.25] * 3)(x)
    zeros = (norm == 0).all(dim=1).flatten(1).sum(1)
    assert bool((zeros > 0).all())                  # every image has an erased box
    kept = norm != 0
    assert torch.allclose(norm[kept], ((x - 0.5) / 0.25)[kept], atol=1e-5)
    noisy = BatchAugment(AugConfig(noise=0.5), None, None)(torch.zeros(64, 1, 16, 16))
    assert abs(noisy.std().item() - 0.5) < 0.03
    u8 = BatchAugment(AugConfig(), None, None)((x * 255).round().to(torch.uint8))
    assert u8.dtype == torch.float32 and torch.allclose(u8, x, atol=1 / 255)


def test_augmented_batches_through_workers():
    dm = setup_dm(dict(name="digits", size=16, batch_size=16, num_workers=1),
                  dict(rotation=10.0, crop_padding=2))
    x, y = first(dm.train_dataloader())
    assert x.shape == (16, 1, 16, 16) and y.shape == (16,)


def test_aug_config_files():
    for path in sorted((CONF / "aug").glob("*.yaml")):
        cfg = OmegaConf.merge(OmegaConf.structured(AugConfig), OmegaConf.load(path))
        build_transforms(OmegaConf.to_object(cfg), 32, None, [0.5], [0.5], train=True)
    digits = OmegaConf.load(CONF / "aug" / "digits.yaml")
    assert digits.get("hflip", 0) == 0 and digits.rotation > 0
    assert {p.stem for p in (CONF / "aug").glob("*.yaml")} >= {"none", "basic", "digits", "strong"}


def test_data_config_files():
    names = {p.stem for p in (CONF / "data").glob("*.yaml")}
    assert names == {"digits", "fake", "mnist", "fashion_mnist", "cifar10", "cifar100",
                     "imagefolder", "shapes"}
    for name in names:
        cfg = OmegaConf.merge(OmegaConf.structured(DataConfig),
                              OmegaConf.load(CONF / "data" / f"{name}.yaml"))
        assert cfg.name == name
    digits = OmegaConf.merge(OmegaConf.structured(DataConfig),
                             OmegaConf.load(CONF / "data" / "digits.yaml"))
    assert (digits.size, digits.channels, digits.batch_size) == (32, 1, 64)
    dm = make_datamodule(digits, OmegaConf.structured(AugConfig))   # DictConfigs are accepted
    dm.setup()
    assert dm.size == (32, 32)


# -- bad input: one DataError with what, where and how to fix it ----------------------------------
def raises(data: dict, *match: str, aug: dict | None = None) -> str:
    with pytest.raises(DataError) as info:
        setup_dm(data, aug)
    msg = str(info.value)
    for m in match:
        assert m in msg, msg
    return msg


def test_root_does_not_exist(tmp_path):
    missing = tmp_path / "nowhere"
    msg = raises(dict(name="mnist", root=str(missing)), str(missing), "does not exist",
                 "data.root=", "data.download=true")
    assert "\n" not in msg
    msg = raises(dict(name="imagefolder", root=str(missing)), "does not exist", "data.root=")
    assert "download" not in msg                          # nothing to download for a folder
    raises(dict(name="cifar10", root=""), "data.root is not set")
    raises(dict(name="imagefolder", root="???"), "data.root is not set")


def test_dataset_missing_from_root(tmp_path):
    raises(dict(name="mnist", root=str(tmp_path)), "mnist is not in data.root",
           str(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"), "t10k-labels-idx1-ubyte",
           "data.download=true")
    raises(dict(name="fashion_mnist", root=str(tmp_path)), "FashionMNIST")
    raises(dict(name="cifar10", root=str(tmp_path)), "cifar-10-batches-py", "data_batch_1",
           "batches.meta", "cifar-10-python.tar.gz")
    raises(dict(name="cifar100", root=str(tmp_path)), "cifar-100-python", "meta")


def test_misplaced_files_get_a_hint(tmp_path):
    write_mnist(tmp_path / "x")
    flat = tmp_path / "flat"
    flat.mkdir()
    for f in (tmp_path / "x" / "MNIST" / "raw").iterdir():
        os.replace(f, flat / f.name)
    raises(dict(name="mnist", root=str(flat)), "move them there", str(flat / "MNIST" / "raw"))
    write_cifar10(tmp_path / "c")
    raises(dict(name="cifar10", root=str(tmp_path / "c" / "cifar-10-batches-py")),
           "set data.root to its parent folder")


def test_download_failure_is_a_data_error(tmp_path, monkeypatch):
    from urllib.error import URLError

    import torchvision.datasets.cifar as cifar
    import torchvision.datasets.mnist as mnist

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(mnist, "download_and_extract_archive", offline)
    monkeypatch.setattr(cifar, "download_and_extract_archive", offline)
    raises(dict(name="mnist", root=str(tmp_path / "m"), download=True), "downloading mnist",
           "failed", "data.download=false")
    raises(dict(name="cifar10", root=str(tmp_path / "c"), download=True), "downloading cifar10")


def test_corrupt_files(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x07junk")
    raises(dict(name="mnist", root=str(tmp_path)), "cannot read", "MNIST")
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    raises(dict(name="cifar10", root=str(tmp_path)), "cannot read", "data_batch_3")
    write_cifar100(tmp_path)
    write_pickle(tmp_path / "cifar-100-python" / "train", {"data": np.zeros((2, 5), np.uint8)})
    raises(dict(name="cifar100", root=str(tmp_path)), "not a cifar100 batch")


def test_corrupt_gzip_is_a_data_error_and_leaves_nothing_behind(tmp_path):
    write_mnist(tmp_path, compress=True)
    raw = tmp_path / "MNIST" / "raw"
    good = (raw / "t10k-images-idx3-ubyte.gz").read_bytes()
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(good[:len(good) // 2])       # truncated
    raises(dict(name="mnist", root=str(tmp_path)), "cannot decompress",
           str(raw / "t10k-images-idx3-ubyte.gz"))
    assert not (raw / "t10k-images-idx3-ubyte").exists()
    assert sorted(p.name for p in raw.iterdir() if not p.name.endswith(".gz")) == [
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte"]        # decompressed before it
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not gzip at all")
    raises(dict(name="mnist", root=str(tmp_path)), "cannot decompress")
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(good)                       # repaired
    assert len(setup_dm(dict(name="mnist", root=str(tmp_path))).test_dataset) == 20


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_cifar_pickles_cannot_run_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_cifar10(tmp_path)
    write_pickle(tmp_path / "cifar-10-batches-py" / "batches.meta", {"label_names": _Evil()})
    raises(dict(name="cifar10", root=str(tmp_path)), "batches.meta", "unexpected object")
    assert not (tmp_path / "pwned").exists()


def test_imagefolder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("hi")
    raises(dict(name="imagefolder", root=str(empty)), "no class sub-folders", "<class>")
    no_images = tmp_path / "no_images"
    (no_images / "cat").mkdir(parents=True)
    (no_images / "dog").mkdir()
    (no_images / "cat" / "a.txt").write_text("hi")
    raises(dict(name="imagefolder", root=str(no_images)), "no images", ".png")
    one_empty = tmp_path / "one_empty"
    write_folder(one_empty, classes=("cat",))
    (one_empty / "dog").mkdir()
    raises(dict(name="imagefolder", root=str(one_empty)), "dog", "no images")
    bad = tmp_path / "bad"
    write_folder(bad)
    (bad / "dog" / "broken.png").write_bytes(b"\x89PNG but not really")
    raises(dict(name="imagefolder", root=str(bad)), "cannot read image",
           str(bad / "dog" / "broken.png"))
    mixed = tmp_path / "mixed"
    write_folder(mixed, h=8, w=8)
    write_png(mixed / "cat" / "big.png", 16, 16)
    raises(dict(name="imagefolder", root=str(mixed)), "differ in size", "data.size=")
    assert setup_dm(dict(name="imagefolder", root=str(mixed), size=8)).size == (8, 8)
    split = tmp_path / "split"
    write_folder(split / "train", classes=("a", "b"))
    write_folder(split / "val", classes=("a", "c"))
    raises(dict(name="imagefolder", root=str(split)), str(split / "val" / "c"),
           "the train split doesn't have", "the train classes are: a, b")
    a_file = tmp_path / "file.png"
    write_png(a_file, 4, 4)
    raises(dict(name="imagefolder", root=str(a_file)), "is a file")


def test_bad_config():
    raises(dict(name="cifar"), "data.name 'cifar'", "did you mean 'cifar10'", "digits")
    raises(dict(name="imagefolders"), "did you mean 'imagefolder'")
    raises(dict(name="digits", val_fraction=1.5), "data.val_fraction=1.5")
    raises(dict(name="digits", val_fraction=0.0), "no validation or test split",
           "data.val_fraction=0.2")
    raises(dict(name="digits", batch_size=0), "data.batch_size=0")
    raises(dict(name="digits", channels=2), "data.channels=2")
    raises(dict(name="fake", num_samples=1), "data.num_samples=1", "at least 2")   # the source's
    raises(dict(name="fake", image_channels=2), "data.image_channels=2")
    raises(dict(name="digits"), "aug.hflip=1.5", "probability", aug=dict(hflip=1.5))
    raises(dict(name="digits"), "aug.rotation=-1", aug=dict(rotation=-1))
    with pytest.raises(DataError, match="did you mean 'batch_size'"):
        dm = make_datamodule({"name": "digits", "batchsize": 8}, None)
        dm.setup()
    with pytest.raises(DataError, match="1 or 3 channels"):
        make_datamodule(DataConfig(), AugConfig(), channels=4).setup()



# -- a data source of one's own: one decorated loader -----------------------------------------
@pytest.fixture
def stripes():
    """``stripes``: 8x8 images of horizontal (class 0) or vertical (class 1) stripes."""
    @source("stripes")
    def load_stripes(cfg, root):
        g = torch.Generator().manual_seed(cfg.seed)
        n = 96
        targets = torch.arange(n) % 2
        phase = torch.randint(0, 2, (n, 1, 1), generator=g)
        rows = ((torch.arange(8).view(1, 8, 1) + phase) % 2).expand(n, 8, 8)
        images = torch.where(targets.view(n, 1, 1) == 0, rows, rows.transpose(1, 2))
        images = (images * 200 + torch.randint(0, 56, (n, 8, 8), generator=g)).to(torch.uint8)
        return Raw(Arrays(images.unsqueeze(1).contiguous(), targets), None, None,
                   ["horizontal", "vertical"], 1, (8, 8))

    yield load_stripes
    SOURCES.pop("stripes", None)


def test_a_registered_source_is_a_data_set(stripes):
    assert "stripes" in NAMES and NAMES[-1] == "stripes"
    dm = setup_dm(dict(name="stripes", batch_size=8, val_fraction=0.25))
    assert (dm.classes, dm.channels, dm.size) == (["horizontal", "vertical"], 1, (8, 8))
    assert (len(dm.train_dataset), len(dm.val_dataset), dm.class_counts) == (72, 24, [36, 36])
    assert first(dm.train_dataloader())[0].shape == (8, 1, 8, 8)
    train = torch.cat([x for x, _ in dm.train_dataset])              # normalized on its own stats
    assert abs(train.mean().item()) < 1e-3 and abs(train.std().item() - 1) < 1e-2
    raises(dict(name="stripe"), "data.name 'stripe'", "did you mean 'stripes'", "stripes")
    with pytest.raises(ValueError, match="'stripes' is registered twice"):
        source("stripes")(stripes)
    del SOURCES["stripes"]                                 # the names are the registry's, live
    assert "stripes" not in NAMES
    raises(dict(name="stripes"), "data.name 'stripes' is not a data set")


def test_a_registered_source_trains(stripes, tmp_path):
    from hydra import compose, initialize_config_dir

    from netspec.train.app import train
    from netspec.train.config import config_dir, register_configs, register_spec_paths

    register_configs()
    spec = tmp_path / "tiny.yaml"                      # input and classes follow the data
    spec.write_text("input: {channels: 3, size: 5}\nnum_classes: 10\ndefaults: {norm: bn, act: relu}\n"
                    "stem: [conv: {c: 8, k: 3}]\nstages: [conv: {c: 8, s: 2}]\n"
                    "head: [pool: global_avg, linear: {c: num_classes}]\n")
    overrides = [f"spec={spec}", "data.name=stripes", "data.size=null", "data.batch_size=16",
                 "aug=none", "callbacks=minimal", "logger=csv", "trainer.max_epochs=4",
                 "trainer.enable_model_summary=false", "optim.lr=0.01", "sched=cosine",
                 "sched.warmup_epochs=0", f"run_dir={tmp_path / 'run'}"]
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        result = train(compose("train", overrides=register_spec_paths(overrides)))
    assert result.spec["num_classes"] == 2 and result.spec["input"]["size"] == [8, 8]
    assert result.spec["input"]["channels"] == 1
    assert result.best_val_acc > 0.9, result.best_val_acc    # the stripes are learnt: chance is 0.5
