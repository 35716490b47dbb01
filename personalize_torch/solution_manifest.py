"""A solution version's checksum manifest: the size and SHA-256 of every file, written at save, checked at load.

    manifest.json   {"format": 1, "files": {"model.ckpt": {"size": 123, "sha256": "..."}, ...}}

A solution version whose files were changed after it was written (a copy cut short, a disk or a hand that
altered a byte, a file deleted) is refused at load, naming the file, rather than served wrong. Writing the
manifest also flushes every file to disk, so a solution version renamed into place after it survives a
power cut whole.

Checking reads every byte once (SHA-256 at roughly 1-2 GB/s a core, the files hashed in parallel), which a
server pays once when it loads a solution version; `verify="size"` checks only that every file is there with
its size (a missing or truncated file, not an altered byte), for solution versions too large to read at
start. Solution versions written before manifests existed have none and load unchecked, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from personalize_torch.data.durable_files import sync_directory
from personalize_torch.errors import InputError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = 1
VERIFY_MODES = ("sha256", "size", "off")
CHUNK_BYTES = 8 << 20


def file_digest(path: Path, flush: bool = False) -> str:
    """The SHA-256 of a file's bytes (hex); `flush`: also make its bytes durable (fsync)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
        if flush:
            os.fsync(fh.fileno())
    return digest.hexdigest()


def _files(directory: Path) -> list[str]:
    """Every regular file under `directory` but the manifest, as relative POSIX paths, sorted."""
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*")
                  if p.is_file() and p.relative_to(directory).as_posix() != MANIFEST)


def _threads(n_files: int) -> int:
    return max(1, min(n_files, os.cpu_count() or 1, 8))


def write_manifest(directory: str | Path) -> Path:
    """Write `directory`/manifest.json listing every other file's size and SHA-256, flushing each file (and
    the manifest, and the directory) to disk. Call it last, once nothing else will be written there."""
    directory = Path(directory)
    names = _files(directory)
    with ThreadPoolExecutor(_threads(len(names))) as pool:
        digests = list(pool.map(lambda name: file_digest(directory / name, flush=True), names))
    files = {name: {"size": (directory / name).stat().st_size, "sha256": digest}
             for name, digest in zip(names, digests)}
    path = directory / MANIFEST
    with open(path, "w") as fh:
        json.dump({"format": FORMAT, "files": files}, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    sync_directory(directory)
    return path


def read_manifest(directory: str | Path) -> dict[str, dict] | None:
    """The manifest's files ({relative path: {"size", "sha256"}}); None when there is no manifest."""
    path = Path(directory) / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError("the solution version's checksum manifest is damaged (not valid JSON)",
                         file=str(path)) from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(_is_entry(name, entry) for name, entry in files.items()):
        raise InputError("the solution version's checksum manifest is damaged (expected a size and a sha256 for "
                         "each file)", file=str(path))
    return files


def _is_entry(name: str, entry) -> bool:
    relative = PurePosixPath(name)
    return (not relative.is_absolute() and ".." not in relative.parts and isinstance(entry, dict)
            and isinstance(entry.get("size"), int) and isinstance(entry.get("sha256"), str))


class ManifestCheck:
    """A check of a solution version's files that has started: sizes checked already, checksums being computed
    in threads (so a load can read the files meanwhile). `result()` waits for it: True when the files match
    the manifest, False when there was none to check against; an InputError naming the first damaged file."""

    def __init__(self, directory: Path, files: dict[str, dict] | None, checksums: bool):
        self.checked = files is not None
        self._directory, self._files = directory, files or {}
        self._futures = {}
        if checksums and self._files:
            pool = ThreadPoolExecutor(_threads(len(self._files)), thread_name_prefix="manifest-check")
            self._futures = {name: pool.submit(file_digest, directory / name) for name in self._files}
            pool.shutdown(wait=False)

    def result(self) -> bool:
        for name, future in self._futures.items():
            if future.result() != self._files[name]["sha256"]:
                raise InputError("file is damaged: its contents differ from when the solution version was written "
                                 "(SHA-256 mismatch)", file=str(self._directory / name))
        return self.checked


def start_verify(directory: str | Path, verify: str = "sha256", required: bool = False) -> ManifestCheck:
    """Check `directory`'s files against its manifest: now, that every listed file is there with its size;
    with `verify` "sha256", each file's SHA-256 too, in background threads (see `ManifestCheck`). A solution
    version without a manifest (written before them) is not checked, with a warning, or refused when
    `required`. Raises InputError naming the file that is missing or has another size."""
    if verify not in VERIFY_MODES:
        raise InputError(f"expected one of {', '.join(VERIFY_MODES)}, got {verify!r}", column="verify")
    directory = Path(directory)
    if verify == "off":
        return ManifestCheck(directory, None, False)
    files = read_manifest(directory)
    if files is None:
        if required:
            raise InputError(f"{MANIFEST} is missing (the solution version says it was written with one)",
                             file=str(directory / MANIFEST))
        log.warning("%s has no %s (written before solution versions had one): its files are not checked",
                    directory, MANIFEST)
        return ManifestCheck(directory, None, False)
    for name, entry in files.items():
        path = directory / name
        if not path.is_file():
            raise InputError("file is missing from the solution version (listed in its manifest)", file=str(path))
        size = path.stat().st_size
        if size != entry["size"]:
            raise InputError(f"file is damaged: {size} bytes, {entry['size']} when the solution version was written"
                             f" ({'truncated' if size < entry['size'] else 'grown'})", file=str(path))
    return ManifestCheck(directory, files, verify == "sha256")


def verify_manifest(directory: str | Path, verify: str = "sha256", required: bool = False) -> bool:
    """`start_verify(...).result()`: the whole check, waited for."""
    return start_verify(directory, verify, required).result()
