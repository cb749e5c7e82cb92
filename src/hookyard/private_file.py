"""Reading and writing a file of secrets (the demo secrets file) safely on a shared machine.

The file's path is often a relative name in a working directory other local users may write
to (`/tmp`, a shared checkout). So it is never opened through a symbolic link (another user
could point the link at a file of ours to overwrite, or at one of theirs holding an admin
token they chose), nor when it has other names (a hard link), belongs to someone else, or is
no regular file. Whatever its mode was, it leaves with 0600: secrets readable by the group
or by everyone are made private (and the fix is logged), not kept as they were.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from hookyard.logs import log

_PRIVATE = 0o600
# Never follow a link; never block on a FIFO someone left under the name.
_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


class UnsafeFile(ValueError):
    """The path is not a private regular file of ours; the message says why."""


def _open(path: Path, flags: int) -> int:
    try:
        fd = os.open(path, flags | _FLAGS, _PRIVATE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFile(f"{path} is a symbolic link, which is never followed") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFile(f"{path} is not a regular file")
        if info.st_uid != os.geteuid():
            raise UnsafeFile(f"{path} belongs to another user")
        if info.st_nlink > 1:
            raise UnsafeFile(f"{path} has other names (hard links)")
        if stat.S_IMODE(info.st_mode) != _PRIVATE:
            os.fchmod(fd, _PRIVATE)
            log.warning(
                "secrets_file_mode_fixed", path=str(path), mode=oct(stat.S_IMODE(info.st_mode))
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_private(path: Path) -> str | None:
    """The file's text, or None when there is no file."""
    try:
        fd = _open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, encoding="utf-8", errors="replace") as file:
        return file.read()


def write_private(path: Path, text: str) -> None:
    """Replace the file's text (creating it with mode 0600)."""
    fd = _open(path, os.O_WRONLY | os.O_CREAT)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.truncate(0)  # only now: the checks above passed
        file.write(text)
