"""How every command fails: one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable

# A write the disk refused: full, over a file-size limit, over a quota.
DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


class UserError(Exception):
    """A problem the user can fix (bad config, missing file, refused token); shown as one line."""


def run_cli(main: Callable[[], int | None]) -> None:
    """Run a command's main(); turn UserError and Ctrl-C into one line and an exit status."""
    try:
        code = main()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except Exception as exc:
        full = disk_full(exc)
        if full is None:
            raise
        print(f"error: cannot write {full.filename or 'a file'}: {full.strerror}: free disk"
              " space (or raise the file-size limit) and run again", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


def disk_full(exc: BaseException) -> OSError | None:
    """The refused write behind `exc` (torch wraps one in a RuntimeError), or None."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None
