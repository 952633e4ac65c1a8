"""One kind of error for bad user input, the argument parser every CLI uses, and the wrapper that turns a UserError
into one line and exit status 2."""
import argparse
import math
import sys


class UserError(Exception):
    """Bad input from the user (path, file, parameter). Printed as one line, exit code 2."""


def check_label(label, flag="--label"):
    """A name for rows and tables: one printable line (no line or paragraph separators: U+2028 broke the CSV's rows),
    no commas, at most 100 characters."""
    if len(label) > 100 or not label.isprintable() or "," in label:
        raise UserError(f"{flag} must be one short printable name without commas or line breaks")
    return label


def first_line(e):
    """The last non-empty line of an exception from a library, at most 160 characters: the reason inside a one-line
    refusal."""
    return (str(e).strip().splitlines() or [type(e).__name__])[-1].strip()[:160]


# Bounds of the options several CLIs share, by argparse dest: (lowest, highest or None).
# Shared options' ranges: CIFAR-10 has 50,000 training and 10,000 test images, so a larger subset is a typo that
# would silently use them all; the synthetic set and step counts are capped where their memory or time is still
# seconds, not hours.
BOUNDS = {"threads": (1, 1024), "subset": (1, 50000), "test_subset": (1, 10000), "calib_images": (1, 50000),
          "synthetic": (1, 100000), "steps": (1, 100000), "batch": (1, 65536),
          "batch_size": (1, 65536), "epochs": (1, 100000), "weight_decay": (0, None), "max_gmacs": (0.001, 1000),
          "quiet_wait": (0, 86400), "seed": (0, 2**32 - 1), "lr": (0, 10)}


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (UserError -> `prog: error: ...`, exit 2) like every other bad input;
    every float option must be a finite number (NaN passes `lr <= 0` checks and trains a NaN model), and the shared
    options of BOUNDS stay in range."""

    def error(self, message):
        raise UserError(f"{message} (see --help)")

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        for action in self._actions:
            value = getattr(namespace, action.dest, None)
            flag = action.option_strings[0] if action.option_strings else action.dest
            if action.type is float and isinstance(value, float) and not math.isfinite(value):
                raise UserError(f"{flag} must be a finite number, got {value}")
            low, high = BOUNDS.get(action.dest, (None, None))
            if isinstance(value, (int, float)) and not isinstance(value, bool) and action.option_strings and (
                    (low is not None and value < low) or (high is not None and value > high)):
                raise UserError(f"{flag} must be {'at least %s' % low if high is None else f'in {low}..{high}'}, "
                                f"got {value}")
        return namespace, extras


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Appends "(default: X)" unless the help text already says what the default is (or it is None)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text.lower() or action.default is None or action.nargs == 0:  # flags need no default shown
            return text
        return super()._get_help_string(action)


def parser(doc):
    """An argument parser whose --help shows a module docstring: its first line, then (after the options) the rest,
    examples included, as written."""
    first, _, rest = doc.strip().partition("\n")
    return Parser(prog=program_name(), description=first, epilog=rest.strip("\n") or None,
                  formatter_class=DefaultsHelpFormatter)


def program_name():
    """The command's name in usage and error lines: the script's file name, or its package for `python -m pkg`."""
    path = sys.argv[0] if sys.argv and sys.argv[0] else "cli"
    name = path.rsplit("/", 1)[-1]
    if name == "__main__.py":
        return path.rsplit("/", 2)[-2] if path.count("/") else "cli"
    return "cli" if name in ("-m", "-c") else name


def run_cli(main, argv=None):
    """Run `main(argv)`; bad input becomes `prog: error: message` on stderr and exit status 2. An int that main
    returns is the exit status; anything else it returns (a method's metadata) is for Python callers, exit 0."""
    prog = program_name()
    try:
        result = main(argv)
    except UserError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(result if isinstance(result, int) and not isinstance(result, bool) else 0)
