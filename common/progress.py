"""Progress bars for long work, on a terminal only."""
import sys

from tqdm import tqdm


def progress_bar(iterable=None, enabled=True, **kwargs):
    """A tqdm bar when stderr is a terminal, else a silent one: written to a log file, a bar's carriage-return
    updates pile up into one line of thousands of characters."""
    return tqdm(iterable, disable=not (enabled and sys.stderr.isatty()), **kwargs)
