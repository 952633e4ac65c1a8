"""CIFAR-10 as uint8 tensors in memory, batched augmentation, normalisation.

The loader reads the standard `cifar-10-batches-py` pickle layout (the original archive, or the copy
that ../shared/cifar10/build.py writes) with a restricted unpickler that only admits plain containers
and numpy arrays, and checks shapes, label range and counts. Augmentation (4-pixel zero pad + random
32x32 crop, horizontal flip) runs on whole uint8 batches with tensor indexing, as in airbench: no
per-image Python in the training loop.
"""
import io
import os
import pickle

import numpy as np
import torch

from common.errors import UserError

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILES = ["test_batch"]
SYNTHETIC_MARK = "SYNTHETIC"  # a folder written by write_synthetic_layout: any image count is fine


class DataError(UserError):
    pass


class _PlainUnpickler(pickle.Unpickler):
    """Admits dicts, lists, bytes and numpy arrays only: a data batch can never run code."""
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name}")


def find_batches_dir(data_dir):
    """The folder holding the batch files: DATA_DIR/cifar-10-batches-py, or DATA_DIR itself."""
    data_dir = os.fspath(data_dir)
    if not os.path.isdir(data_dir):
        raise DataError(f"{data_dir}: data directory not found (build it with "
                        f"'python ../shared/cifar10/build.py {data_dir}' or pass --download)")
    nested = os.path.join(data_dir, "cifar-10-batches-py")
    return nested if os.path.isdir(nested) else data_dir


def read_batch(path):
    """(images uint8 N x 3 x 32 x 32, labels int64 N) from one pickle batch, validated."""
    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: missing CIFAR-10 batch file")
    try:
        with open(path, "rb") as f:
            raw = _PlainUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    except Exception as e:  # corrupt, truncated or hostile pickles all end here
        raise DataError(f"{path}: corrupt or truncated CIFAR-10 batch ({type(e).__name__})") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: not a CIFAR-10 batch (expected a dict)")
    data = raw.get(b"data", raw.get("data"))
    labels = raw.get(b"labels", raw.get("labels"))
    if labels is None:
        raise DataError(f"{path}: no 'labels' in the batch")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: 'data' must be a uint8 array of shape N x 3072")
    if len(data) == 0:
        raise DataError(f"{path}: holds no images")
    try:
        n_labels = len(labels)
    except TypeError:
        raise DataError(f"{path}: 'labels' must be a list of integers, got {type(labels).__name__}") from None
    if n_labels != len(data):
        raise DataError(f"{path}: {n_labels} labels for {len(data)} images")
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu" or labels.ndim != 1:  # float labels would be truncated silently
        raise DataError(f"{path}: labels must be integers 0..9, found {labels.dtype} values")
    if labels.min() < 0 or labels.max() > 9:
        raise DataError(f"{path}: labels outside 0..9 in {name}")
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return images, torch.from_numpy(labels.astype(np.int64))


def describe(data_dir, train, subset=None):
    """A label for reported numbers: which copy of CIFAR-10 and which part of it."""
    root = os.path.abspath(find_batches_dir(data_dir))
    parent = os.path.dirname(root)
    if "lossless-test1000" in root:
        name = "CIFAR-10 test[:1000] (lossless)"
    elif os.path.exists(os.path.join(parent, "BUILT")):
        name = "CIFAR-10 (JPEG-q75 copy) " + ("train" if train else "test")
    elif os.path.exists(os.path.join(root, SYNTHETIC_MARK)):
        name = "synthetic " + ("train" if train else "test")
    else:
        name = "CIFAR-10 " + ("train" if train else "test")
    return name + (f" subset {subset}" if subset else "")


def load_cifar10(data_dir, train, download=False, subset=None, seed=0):
    """(images uint8 N x 3 x 32 x 32, labels int64 N, description). `subset` keeps a fixed random N."""
    if download:
        try:
            import torchvision
            torchvision.datasets.CIFAR10(root=data_dir, train=train, download=True)
        except Exception as e:
            raise DataError(f"download of CIFAR-10 into {data_dir} failed: {str(e).splitlines()[0][:160]}") from None
    folder = find_batches_dir(data_dir)
    files = TRAIN_FILES if train else TEST_FILES
    missing = [f for f in files if not os.path.isfile(os.path.join(folder, f))]
    if missing:
        what = "training" if train else "test"
        raise DataError(f"{folder}: no CIFAR-10 {what} data ({', '.join(missing)} missing); "
                        f"build it with 'python ../shared/cifar10/build.py DIR' or pass --download")
    parts = [read_batch(os.path.join(folder, f)) for f in files]
    images = torch.cat([p[0] for p in parts])
    labels = torch.cat([p[1] for p in parts])
    synthetic = os.path.exists(os.path.join(folder, SYNTHETIC_MARK))
    if train and len(images) != 50000 and not synthetic:
        raise DataError(f"{folder}: expected 50000 training images, found {len(images)}")
    if subset is not None:
        if subset < 1:
            raise DataError(f"--subset must be positive, got {subset}")
        # The built test set is class-sorted, so a subset is a fixed random sample, never the first N.
        keep = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:subset]
        subset = subset if subset < len(images) else None  # asking for more than there are is all of them
        images, labels = images[keep], labels[keep]
    return images, labels, describe(data_dir, train, subset)


def synthetic_cifar(n=512, seed=0, num_classes=10):
    """Learnable stand-in data for unit tests: each class is a colour and stripe pattern plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_classes, (n,), generator=g)
    colours = torch.rand(num_classes, 3, 1, 1, generator=torch.Generator().manual_seed(1234)) * 160 + 40
    stripes = (torch.arange(32).view(1, 1, 32) % (labels.view(-1, 1, 1) % 4 + 2) == 0).float()
    images = colours[labels] + 60 * stripes.unsqueeze(1) + torch.randn(n, 3, 32, 32, generator=g) * 20
    return images.clamp(0, 255).to(torch.uint8), labels, "synthetic"


def normalizer(mean, std, device="cpu"):
    mean = torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(std, device=device).view(1, 3, 1, 1) * 255

    def normalize(x_uint8):
        return ((x_uint8.float() - mean) / std).contiguous(memory_format=torch.channels_last)
    return normalize


def augment(images, generator, pad=4):
    """Random crop after zero padding and random horizontal flip, for a whole uint8 batch at once."""
    n, c, h, w = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(images.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(images.device)
    flip = (torch.rand(n, generator=generator) < 0.5).to(images.device)
    rows = (torch.arange(h, device=images.device).view(1, h) + dy.view(n, 1))  # n x h
    cols = torch.arange(w, device=images.device).view(1, w)
    cols = torch.where(flip.view(n, 1), w - 1 - cols, cols) + dx.view(n, 1)  # flip = read columns backwards
    idx_n = torch.arange(n, device=images.device).view(n, 1, 1, 1)
    idx_c = torch.arange(c, device=images.device).view(1, c, 1, 1)
    return padded[idx_n, idx_c, rows.view(n, 1, h, 1), cols.view(n, 1, 1, w)]


class Batches:
    """Iterates (normalised float images, labels) over in-memory uint8 data.

    Training order and augmentation depend only on (seed, epoch), so a resumed run sees exactly the
    batches an uninterrupted one would. Under DDP each rank takes its own equal share of every epoch."""

    def __init__(self, images, labels, batch_size, normalization, train, device="cpu", seed=0, rank=0, world=1):
        self.images, self.labels = images.to(device), labels.to(device)
        self.batch_size, self.train, self.seed, self.rank, self.world = batch_size, train, seed, rank, world
        self.normalize = normalizer(normalization["mean"], normalization["std"], device)
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        if self.train:
            return max(1, len(self.images) // self.world // self.batch_size)
        return -(-len(self.images) // self.batch_size)

    def __iter__(self):
        n = len(self.images)
        if not self.train:
            for i in range(0, n, self.batch_size):
                yield self.normalize(self.images[i:i + self.batch_size]), self.labels[i:i + self.batch_size]
            return
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        order = torch.randperm(n, generator=g)
        per_rank = n // self.world
        order = order[self.rank * per_rank:(self.rank + 1) * per_rank].to(self.images.device)
        bs = min(self.batch_size, per_rank)
        for i in range(len(self)):
            idx = order[i * bs:(i + 1) * bs]
            yield self.normalize(augment(self.images[idx], g)), self.labels[idx]


def write_synthetic_layout(out, n_train=1000, n_test=250):
    """A small synthetic dataset in the cifar-10-batches-py layout, so every CLI runs on it unchanged
    (the smoke preset of the study and tests; never a stand-in for real numbers)."""
    folder = os.path.join(out, "cifar-10-batches-py")
    os.makedirs(folder, exist_ok=True)
    per = -(-n_train // len(TRAIN_FILES))
    train_x, train_y, _ = synthetic_cifar(per * len(TRAIN_FILES), seed=0)
    test_x, test_y, _ = synthetic_cifar(n_test, seed=1)
    batches = [(f, train_x[i * per:(i + 1) * per], train_y[i * per:(i + 1) * per]) for i, f in enumerate(TRAIN_FILES)]
    for name, x, y in batches + [("test_batch", test_x, test_y)]:
        with open(os.path.join(folder, name), "wb") as f:
            batch = {b"data": x.reshape(len(x), 3072).numpy(), b"labels": y.tolist(), b"batch_label": b"synthetic"}
            pickle.dump(batch, f)
    with open(os.path.join(folder, "batches.meta"), "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in CLASSES]}, f)
    open(os.path.join(folder, SYNTHETIC_MARK), "w").close()
    return out


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(
        description="Write a small synthetic dataset in the CIFAR-10 layout (smoke runs, tests)."
    )
    parser.add_argument("out")
    parser.add_argument("--train", type=int, default=1000)
    parser.add_argument("--test", type=int, default=250)
    a = parser.parse_args()
    print(f"wrote synthetic CIFAR-10 layout to {write_synthetic_layout(a.out, a.train, a.test)}")
