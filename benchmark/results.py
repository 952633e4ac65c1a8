"""The benchmark results CSV: one row per (checkpoint sha256, backend, device, precision, batch).

Several benchmark processes may write the same file at once. `merge_rows` takes an exclusive
fcntl lock on the CSV's folder (no lock file is left behind), reads the current rows, replaces
those with the same key, and writes the whole table to a temporary file renamed over the old one:
readers always see a complete table, and no writer's rows are lost or duplicated.
"""
import contextlib
import csv
import fcntl
import os

from common.errors import UserError
from common.outputs import atomic_write
from common.results_schema import COLUMNS, FLOAT_COLUMNS, INT_COLUMNS, KEY, MACHINE_COLUMNS  # noqa: F401 (re-exported)


def same_machine(row, env):
    """True when `row` was measured on the machine and software that `env` (benchmark.run.environment) describes."""
    return all(str(row.get(c) if row.get(c) is not None else "") == str(env.get(c, "")) for c in MACHINE_COLUMNS)


def measured_row(rows, sha, backend, device, precision, batch, env=None):
    """The first timed row of `rows` for that checkpoint and configuration (measured on `env`'s machine if given)."""
    for r in rows:
        if (
            r.get("checkpoint_sha256") == sha
            and r.get("backend") == backend
            and r.get("device") == device
            and r.get("precision") == precision
            and r.get("batch") == batch
            and r.get("latency_p50_ms")
            and (env is None or same_machine(r, env))
        ):
            return r
    return None


def row_key(row):
    return tuple(str(row.get(k, "")) for k in KEY)


def _parse(column, text):
    """CSV text back to the value that was written (ints and floats exactly: floats are written with repr); a
    ValueError for text in a numeric column."""
    if text == "" or text is None:
        return None
    if column in INT_COLUMNS:
        return int(text)
    if column in FLOAT_COLUMNS:
        return float(text)
    return text


def _format(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def read_rows(path):
    """All rows of a results CSV as dicts with typed values ([] when the file does not exist or is empty); one line
    for a file that is not a results CSV of this project or has text where a number belongs."""
    _, raw = _read_raw(path)
    rows = []
    for line, row in enumerate(raw, start=2):  # line 1 is the header
        typed = {}
        for column, text in row.items():
            try:
                typed[column] = _parse(column, text)
            except (ValueError, TypeError):
                raise UserError(f"{path}: line {line}: column {column} holds {text!r}, not a number") from None
        rows.append(typed)
    return rows


def _read_raw(path):
    """(columns, raw rows) of the results CSV at `path`; ([], []) when it does not exist or is empty. A file of
    another kind (a user's notes, another tool's CSV) is refused: it is never rewritten as a results CSV."""
    if not os.path.exists(path) or (os.path.isfile(path) and os.path.getsize(path) == 0):
        return [], []
    if not os.path.isfile(path):
        raise UserError(f"{path}: not a file, expected a results CSV")
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            fields = list(reader.fieldnames or [])
            if not set(KEY) <= set(fields):
                raise UserError(
                    f"{path}: exists and is not a results CSV of this project (its header lacks "
                    f"{', '.join(c for c in KEY if c not in fields)}); refusing to touch it"
                )
            return fields, list(reader)
    except (UnicodeDecodeError, csv.Error) as e:
        raise UserError(
            f"{path}: exists and is not a results CSV of this project ({type(e).__name__}); refusing to touch it"
        ) from None


@contextlib.contextmanager
def locked_folder(path):
    """Exclusive lock on the folder holding `path`, held by every writer while it reads and rewrites the file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def merge_rows(path, new_rows):
    """Add `new_rows` to the CSV at `path`; a row whose key is already there replaces the old one in place."""
    new_rows = [{k: _format(v) for k, v in row.items()} for row in new_rows]
    path = os.path.realpath(path)  # a symlinked CSV: lock and rewrite its target, the link stays
    with locked_folder(path):
        fields, rows = _read_raw(path)
        columns = COLUMNS + [c for c in fields if c not in COLUMNS]
        columns += [c for row in new_rows for c in row if c not in columns]
        index = {row_key(row): i for i, row in enumerate(rows)}
        for row in new_rows:
            key = row_key(row)
            if key in index:
                rows[index[key]] = row
            else:
                index[key] = len(rows)
                rows.append(row)

        def write(tmp):
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
                writer.writeheader()
                for row in rows:
                    writer.writerow({c: row.get(c, "") for c in columns})

        atomic_write(path, write)
