"""One kind of error for bad user input, and the CLI wrapper that turns it into one line and exit 2."""
import sys


class UserError(Exception):
    """Bad input from the user (path, file, parameter). Printed as one line, exit code 2."""


def run_cli(main, argv=None):
    """Run `main(argv)`; bad input becomes `prog: error: message` on stderr and exit status 2."""
    prog = sys.argv[0].rsplit("/", 1)[-1]
    if prog in ("__main__.py", "-m", "-c"):
        prog = "cli"
    try:
        result = main(argv)
    except UserError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(result or 0)
