"""How every command fails: one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable


class UserError(Exception):
    """A problem the user can fix (bad config, missing file, refused token); shown as one line."""


def run_cli(main: Callable[[], int | None]) -> None:
    """Run a command's main(); turn UserError and Ctrl-C into one line and an exit status."""
    try:
        code = main()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
