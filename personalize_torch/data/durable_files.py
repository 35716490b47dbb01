"""Files that a crash, a kill or a power cut leaves whole: written aside, flushed to disk, renamed into place.

A rename replaces a file atomically (a reader sees the old file or the new one), but only the bytes and the
rename flushed to disk survive a power cut: so the new file is flushed before its rename, and the directory
after it (POSIX; where a directory cannot be opened, as on Windows, that step is skipped).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

TMP_PREFIX = "."    # a file being written is hidden (".<name>.tmp-<pid>") until it is renamed into place


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """`write(tmp)` a temporary file next to `path`, flush it to disk, then rename it to `path`."""
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        flush_file(tmp)
        os.replace(tmp, path)
        sync_directory(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def flush_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_directory(directory: Path) -> None:
    """Make new files and renames in `directory` durable."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
