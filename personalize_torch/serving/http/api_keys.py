"""The API keys a server accepts: `api_key` (fixed for the server's life) and the keys of `api_keys_file`, which is
read again when it changes, so keys can be rotated without a restart.

The keys file holds one key per line (blank lines and lines starting with `#` are skipped; spaces around a key
are ignored). Every key listed is valid at once: to rotate, add the new key, move the clients to it, then
remove the old one. The file's modification time, size and inode are looked at no more than once every
`check_seconds` (one `stat` per second at most on the request path); when they change, the file is read again.
A file that cannot be read at that moment (being replaced, say) leaves the keys as they were and logs a
warning; a file with no keys refuses every request (a server with a keys file never becomes open).

A presented key is compared in constant time with every accepted key (`hmac.compare_digest`, all of them,
whichever matches), so neither the answer's timing nor its content tells a caller how close a guess was.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from personalize_torch.errors import InputError

log = logging.getLogger(__name__)

CHECK_SECONDS = 1.0


def read_keys(path: str | Path) -> tuple[bytes, ...]:
    """The keys listed in a keys file: one per line, blank lines and `#` comments skipped."""
    text = Path(path).read_text(encoding="utf-8")
    keys = (line.strip() for line in text.splitlines())
    return tuple(dict.fromkeys(k.encode() for k in keys if k and not k.startswith("#")))


class ApiKeys:
    """`key`: a fixed key (None: none); `keys_file`: a file of keys (None: none), read now (an InputError naming
    it when it cannot be read or lists no key) and again when it changes. With neither, `required` is False and
    every request is let in."""

    def __init__(self, key: str | None = None, keys_file: str | Path | None = None,
                 check_seconds: float = CHECK_SECONDS, clock: Callable[[], float] = time.monotonic):
        self._fixed = (key.encode(),) if key else ()
        self._file = Path(keys_file) if keys_file else None
        self._check_seconds, self._clock = check_seconds, clock
        self._from_file: tuple[bytes, ...] = ()
        self._seen: tuple | None = None
        self._next_check = 0.0
        self._lock = threading.Lock()   # one re-read at a time (requests of several threads may see it due)
        if self._file is not None:
            try:
                self._seen = self._signature()
                self._from_file = read_keys(self._file)
            except (OSError, UnicodeDecodeError) as err:
                raise InputError(f"cannot read the API keys file: {err}", file=str(self._file),
                                 column="api_keys_file") from None
            if not self._from_file:
                raise InputError("the API keys file lists no key (one key per line)", file=str(self._file),
                                 column="api_keys_file")
            self._next_check = clock() + check_seconds

    @property
    def required(self) -> bool:
        return bool(self._fixed) or self._file is not None

    def accepts(self, presented: bytes | None) -> bool:
        """Whether `presented` is one of the accepted keys (compared in constant time with each of them)."""
        if self._file is not None and self._clock() >= self._next_check:
            self._refresh()
        if presented is None:
            return False
        matched = False
        for key in self._fixed + self._from_file:
            matched |= hmac.compare_digest(presented, key)
        return matched

    def _signature(self) -> tuple:
        st = os.stat(self._file)
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _refresh(self) -> None:
        if not self._lock.acquire(blocking=False):
            return   # another thread is reading it; this request uses the keys as they are
        try:
            self._next_check = self._clock() + self._check_seconds
            try:
                signature = self._signature()
                if signature == self._seen:
                    return
                keys = read_keys(self._file)
            except (OSError, UnicodeDecodeError) as err:
                log.warning("API keys file %s cannot be read (%s); keeping the keys read before", self._file, err)
                return
            self._seen = signature
            if not keys:
                log.warning("API keys file %s lists no key: every request is refused until it does", self._file)
            elif keys != self._from_file:
                log.info("API keys file %s read again: %d key(s)", self._file, len(keys))
            self._from_file = keys
        finally:
            self._lock.release()
