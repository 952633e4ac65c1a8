"""Writing outputs without ever destroying an input or a user's file, and without leaving half a file.

    check_output(out, inputs, kind)   before any work: --out is writable, is not one of the command's inputs (same
                                      file after following links), and an existing --out is a file of the kind the
                                      command writes (a checkpoint for a checkpoint, ...), never a user's other file
    atomic_write(path, write)         write(tmp) then rename over `path`: readers see the old or the new file; a
                                      symlink is written through to its target, an existing file keeps its mode;
                                      an OS error (disk full, read-only filesystem) is one line naming the path
"""
import csv
import errno
import json
import math
import os
import shutil
import stat
import tempfile
import zipfile

from common.errors import UserError


def same_file(a, b):
    """True when paths a and b name one file (symlinks followed, hard links included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def is_torch_archive(path):
    """A torch.save zip archive (what every checkpoint of this project is)."""
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("/data.pkl") or n == "data.pkl" for n in z.namelist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


def _nearest_existing_folder(path):
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    return folder


def check_writable(path):
    """One line now, before minutes of work, if `path` cannot be written: a file where a folder must be, a
    read-only or full filesystem, no permission. A test file is created and removed (os.access misleads root)."""
    if os.path.isdir(path):
        raise UserError(f"{path}: is a directory, expected an output file name")
    folder = _nearest_existing_folder(path)
    if not os.path.isdir(folder):
        raise UserError(f"{path}: cannot write: {folder} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(f"{path}: cannot write there ({describe_os_error(e)})") from None


def check_output(out, inputs=(), kind=None, columns=()):
    """Refuse, with one line, an --out that would destroy an input or a file of another kind.

    `inputs`: every file the command reads (checkpoints, teacher, baseline, CSVs). `kind`: "checkpoint" (an existing
    --out must be a torch archive), "csv" (an existing --out must be a CSV whose header holds `columns`: this
    command's own earlier output) or None (the caller checks the kind, e.g. a results CSV)."""
    for source in inputs:
        if source and (os.path.abspath(out) == os.path.abspath(source) or
                       os.path.exists(source) and os.path.exists(out) and same_file(out, source)):
            raise UserError(f"--out {out} is an input of this command ({source}); write the result to a new file")
    if os.path.isfile(out) and os.path.getsize(out) and kind == "checkpoint" and not is_torch_archive(out):
        raise UserError(f"--out {out}: exists and is not a checkpoint; refusing to overwrite it")
    if os.path.isfile(out) and os.path.getsize(out) and kind == "csv" and not _csv_with(out, columns):
        raise UserError(f"--out {out}: exists and is not this command's CSV (its header lacks "
                        f"{', '.join(columns)}); refusing to overwrite it")
    check_writable(out)


def _csv_with(path, columns):
    """Whether the file at `path` starts with a CSV header line that holds every name in `columns`."""
    try:
        with open(path, newline="") as f:
            header = next(csv.reader([f.readline(4096)]), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return set(columns) <= set(header)


def describe_os_error(e):
    """The cause of an OS error in words a user acts on."""
    if getattr(e, "errno", None) == errno.ENOSPC:
        return "no space left on device: the disk is full"
    if getattr(e, "errno", None) == errno.EROFS:
        return "read-only filesystem"
    return e.strerror or type(e).__name__


def _target(path):
    """Where a write to `path` lands: the final target of a symlink (so the link keeps pointing at the data)."""
    return os.path.realpath(path) if os.path.islink(path) else path


def _new_file_mode():
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path, write):
    """Call write(tmp_path) and rename the result over `path` (module docstring). Errors while writing: OSError
    and torch's zip writer's RuntimeError become one UserError; nothing is left behind."""
    path = _target(os.fspath(path))
    folder = os.path.dirname(os.path.abspath(path))
    mode = stat.S_IMODE(os.stat(path).st_mode) if os.path.exists(path) else _new_file_mode()
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=folder)
        os.close(fd)
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # mkstemp makes 0600; the file keeps the mode it had, or gets the umask's
        os.replace(tmp, path)
    except OSError as e:
        _remove(tmp)
        raise UserError(f"{path}: cannot write ({describe_os_error(e)})") from None
    except RuntimeError as e:  # torch.save reports a short write as "unexpected pos N vs M"
        full = shutil.disk_usage(folder).free < (1 << 20)  # before the partial file is removed
        _remove(tmp)
        cause = "no space left on device: the disk is full" if full else str(e).strip().splitlines()[0][:160]
        raise UserError(f"{path}: cannot write ({cause})") from None
    except BaseException:
        _remove(tmp)
        raise


def _remove(tmp):
    if tmp and os.path.exists(tmp):
        os.unlink(tmp)


def atomic_write_text(path, text):
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    atomic_write(path, write)


def to_json(obj):
    """One line of valid JSON: a non-finite float (which json.dumps would print as a bare NaN) becomes null."""
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v
    return json.dumps(clean(obj), allow_nan=False)
