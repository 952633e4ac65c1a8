"""Shared fixtures. Real-data tests use the CIFAR-10 copy built from ../shared (found through
$CIFAR10_DIR or ~/.cache/cifar-compress/cifar10) and skip cleanly where it does not exist."""
import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
AKAMASTER = SHARED / "pretrained" / "akamaster"
sys.path.insert(0, str(ROOT))


def _cifar_dir():
    for candidate in (os.environ.get("CIFAR10_DIR"), os.path.expanduser("~/.cache/cifar-compress/cifar10")):
        if candidate and (pathlib.Path(candidate) / "cifar-10-batches-py" / "test_batch").exists():
            return pathlib.Path(candidate)
    return None


@pytest.fixture(scope="session")
def cifar_dir():
    """Built CIFAR-10 (JPEG-q75 copy) root: holds cifar-10-batches-py/ and lossless-test1000/."""
    path = _cifar_dir()
    if path is None:
        pytest.skip("CIFAR-10 copy not built (python ../shared/cifar10/build.py ~/.cache/cifar-compress/cifar10)")
    return path


def _converted(tmp_path_factory, name):
    src = next(AKAMASTER.glob(f"{name}-*.th"), None) if AKAMASTER.exists() else None
    if src is None:
        pytest.skip(f"published {name} weights not available under {AKAMASTER}")
    from models.convert import convert
    dst = tmp_path_factory.mktemp("converted") / f"{name}.pt"
    convert(str(src), str(dst))
    return dst


@pytest.fixture(scope="session")
def r56_converted(tmp_path_factory):
    """The published akamaster ResNet-56 in the project's checkpoint format."""
    return _converted(tmp_path_factory, "resnet56")


@pytest.fixture(scope="session")
def r20_converted(tmp_path_factory):
    return _converted(tmp_path_factory, "resnet20")


def pytest_collection_modifyitems(config, items):
    """Slow real-data checks run only with RUN_SLOW=1 or when asked for with -m slow."""
    if os.environ.get("RUN_SLOW") == "1" or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: set RUN_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
