"""The published CIFAR-10 ResNets of akamaster/pytorch_resnet_cifar10, found on disk or fetched, always hash-checked.

    python -m models.pretrained resnet56          # prints the path of the verified .th file (fetching it if needed)

Those weights are BSD-2-Clause, Copyright (c) 2018 Yerlan Idelbayev; they are not part of this repository, and a
fetched copy is stored with that notice beside it. Where to look, in order: the folder $PRETRAINED (when set,
instead of ../shared/pretrained/akamaster beside the repository), then the cache
($XDG_CACHE_HOME or ~/.cache)/cifar-compress/pretrained; otherwise the file is downloaded from the project's
release folder ($PRETRAINED_URL overrides it, e.g. a local mirror: file:///path/ or http://127.0.0.1:8000/) into the
cache. Every file must match its SHA-256 (its
name carries the first 8 hex digits), so a truncated download or a tampered mirror is refused with one line.
"""

import hashlib
import os
import stat
import sys
import urllib.error
import urllib.parse
import urllib.request

from common.checkpoint import file_sha256
from common.outputs import atomic_write, atomic_write_text
from common.errors import UserError, parser, run_cli

RELEASE_URL = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/"
PUBLISHED = {  # name -> (file name, SHA-256)
    "resnet20": ("resnet20-12fca82f.th", "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8"),
    "resnet32": ("resnet32-d509ac18.th", "d509ac1820d7f25398913559d7e81a13229b1e7adc5648e3bfa5e22dc137f850"),
    "resnet44": ("resnet44-014dd654.th", "014dd6541728a1c700b1642ab640e211dc6eb8ed507d70697458dc8f8a0ae2e4"),
    "resnet56": ("resnet56-4bfd9763.th", "4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367"),
}
NOTICE = (
    "Published CIFAR-10 ResNet weights from akamaster/pytorch_resnet_cifar10.\n"
    "BSD 2-Clause License, Copyright (c) 2018, Yerlan Idelbayev. All rights reserved.\n"
)
MAX_BYTES = 64 << 20  # the largest published file is 3.5 MB; a mirror that sends more is not sending weights


def cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "cifar-compress", "pretrained")


def search_dirs():
    """$PRETRAINED when set (then only it and the cache), else ../shared/pretrained/akamaster and the cache."""
    shared = os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        "shared",
        "pretrained",
        "akamaster",
    )
    return [os.environ.get("PRETRAINED") or shared, cache_dir()]


def open_source(url):
    """A readable stream of `url`. urllib's timeout does not cover file:// (a FIFO or a device would block forever),
    so a local mirror must name a regular file."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        path = urllib.request.url2pathname(parsed.path)
        if not stat.S_ISREG(os.stat(path).st_mode):  # OSError (missing) is reported by the caller
            raise ValueError(f"{path} is not a regular file")
        return open(path, "rb")
    if parsed.scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL scheme {parsed.scheme!r} (file, http, https)")
    return urllib.request.urlopen(url, timeout=30)


def download(url, dest, sha256):
    """Fetch `url` into `dest` atomically, refusing anything whose SHA-256 is not `sha256`."""

    def write(tmp):
        h, size = hashlib.sha256(), 0
        try:
            with open_source(url) as response, open(tmp, "wb") as f:
                for block in iter(lambda: response.read(1 << 16), b""):
                    size += len(block)
                    if size > MAX_BYTES:
                        raise UserError(f"{url}: more than {MAX_BYTES >> 20} MB, not a published checkpoint")
                    h.update(block)
                    f.write(block)
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            raise UserError(
                f"cannot fetch {url} ({str(reason)[:160]}): offline? Put the file in $PRETRAINED or {cache_dir()}"
            ) from None
        if h.hexdigest() != sha256:
            raise UserError(
                f"{url}: SHA-256 {h.hexdigest()[:16]}... is not the published {sha256[:16]}...; refusing the file"
            )

    atomic_write(dest, write)


def published(name):
    """Path of the verified published checkpoint `name` (e.g. 'resnet56'), fetched into the cache if absent."""
    if name not in PUBLISHED:
        raise UserError(f"no published weights for {name!r} (published: {', '.join(PUBLISHED)})")
    filename, sha256 = PUBLISHED[name]
    for folder in search_dirs():
        path = os.path.join(folder, filename)
        if os.path.isfile(path):
            if file_sha256(path) != sha256:
                raise UserError(f"{path}: SHA-256 does not match the published {filename}; delete it to fetch again")
            return path
    dest = os.path.join(cache_dir(), filename)
    base = os.environ.get("PRETRAINED_URL") or RELEASE_URL
    atomic_write_text(os.path.join(cache_dir(), "NOTICE"), NOTICE)  # the BSD-2 notice travels with the weights
    download(base.rstrip("/") + "/" + filename, dest, sha256)
    if sys.stderr.isatty():  # progress on a terminal only, and after the fact: an error stays one line
        print(f"fetched {filename} from {base}", file=sys.stderr)
    return dest


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("name", choices=sorted(PUBLISHED))
    args = p.parse_args(argv)
    print(published(args.name))


if __name__ == "__main__":
    run_cli(main)
