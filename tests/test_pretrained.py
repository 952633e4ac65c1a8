"""Published weights: found on disk, else fetched from a mirror into the cache, always hash-checked; offline is one
line and exit 2. The mirror is a local HTTP server (or a file:// folder): no test reaches the internet."""
import functools
import hashlib
import http.server
import os
import subprocess
import sys
import threading

import pytest

from common.errors import UserError
from models import pretrained
from tests.conftest import AKAMASTER, ROOT


@pytest.fixture
def mirror(tmp_path):
    """(folder served at http://127.0.0.1:PORT/, base URL); the server stops after the test."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake_published(monkeypatch, tmp_path):
    """A made-up published file, so the fetch path is tested without the real weights."""
    data = b"not really weights " * 1000
    monkeypatch.setitem(pretrained.PUBLISHED, "resnet8", ("resnet8-abcd.th", hashlib.sha256(data).hexdigest()))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PRETRAINED", str(tmp_path / "nowhere"))
    return data


def test_fetch_from_a_mirror_into_the_cache_then_reuse(mirror, fake_published, monkeypatch):
    folder, url = mirror
    (folder / "resnet8-abcd.th").write_bytes(fake_published)
    monkeypatch.setenv("PRETRAINED_URL", url)
    path = pretrained.published("resnet8")
    assert path.startswith(pretrained.cache_dir()) and open(path, "rb").read() == fake_published
    assert "Yerlan Idelbayev" in open(os.path.join(pretrained.cache_dir(), "NOTICE")).read()
    (folder / "resnet8-abcd.th").unlink()  # the cached copy is used, no second fetch
    assert pretrained.published("resnet8") == path


def test_a_tampered_or_truncated_mirror_file_is_refused(mirror, fake_published, monkeypatch):
    folder, url = mirror
    (folder / "resnet8-abcd.th").write_bytes(fake_published[:-10])
    monkeypatch.setenv("PRETRAINED_URL", url)
    with pytest.raises(UserError, match="SHA-256"):
        pretrained.published("resnet8")
    assert not os.path.exists(os.path.join(pretrained.cache_dir(), "resnet8-abcd.th"))
    assert not [f for f in os.listdir(pretrained.cache_dir()) if f.startswith(".tmp")]


def test_offline_is_one_line_and_exit_2(tmp_path):
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), PRETRAINED=str(tmp_path / "none"),
               PRETRAINED_URL="http://127.0.0.1:9/")  # the discard port: nothing listens
    r = subprocess.run([sys.executable, "-m", "models.pretrained", "resnet20"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=60)
    lines = [line for line in r.stderr.strip().splitlines() if not line.startswith("fetching")]
    assert r.returncode == 2 and len(lines) == 1 and "offline?" in lines[0], r.stderr
    assert r.stdout == ""


@pytest.mark.skipif(not AKAMASTER.exists(), reason="needs ../shared/pretrained/akamaster as the mirror")
def test_real_weights_from_a_file_mirror_match_their_published_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PRETRAINED", str(tmp_path / "none"))
    monkeypatch.setenv("PRETRAINED_URL", AKAMASTER.as_uri() + "/")
    path = pretrained.published("resnet20")
    assert path.startswith(str(tmp_path)) and path.endswith("resnet20-12fca82f.th")
    monkeypatch.delenv("PRETRAINED")
    monkeypatch.delenv("PRETRAINED_URL")
    assert pretrained.published("resnet56") == str(AKAMASTER / "resnet56-4bfd9763.th")  # found, not fetched
