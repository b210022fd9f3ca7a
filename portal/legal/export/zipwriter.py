"""A ZIP written entry by entry, hashing every file as it streams: the package's inventory for free.

Only one entry is open at a time (a zipfile rule), so every writer streams its file to the end before
the next begins; nothing is held in memory beyond the current chunk and the inventory rows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@dataclasses.dataclass(frozen=True)
class FileEntry:
    """One file of the package, as the manifest and the load file list it."""

    path: str
    size: int
    sha256: str
    media_type: str
    metadata: dict[str, str]


class _HashingStream:
    """Wraps an open ZIP entry: counts and hashes what is written through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.hasher = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        self.size += len(data)
        return self._raw.write(data)


class PackageWriter:
    """Streams entries into ``path`` and records their size and SHA-256."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6)
        self.entries: list[FileEntry] = []
        self._names: set[str] = set()

    @contextlib.contextmanager
    def open(
        self,
        name: str,
        *,
        media_type: str = "application/json",
        metadata: dict[str, str] | None = None,
        listed: bool = True,
    ) -> Iterator[_HashingStream]:
        """Open entry ``name`` for streaming writes; on close it joins the inventory (if ``listed``)."""
        if name in self._names:
            raise ValueError(f"duplicate package entry {name!r}")
        self._names.add(name)
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        with self._zip.open(info, "w", force_zip64=True) as raw:
            stream = _HashingStream(raw)
            yield stream
        if listed:
            self.entries.append(
                FileEntry(name, stream.size, stream.hasher.hexdigest(), media_type, metadata or {})
            )

    def write_bytes(
        self,
        name: str,
        data: bytes,
        *,
        media_type: str = "application/json",
        metadata: dict[str, str] | None = None,
        listed: bool = True,
    ) -> None:
        """Write a whole (small) entry."""
        with self.open(name, media_type=media_type, metadata=metadata, listed=listed) as out:
            out.write(data)

    def write_json(self, name: str, value: Any, *, metadata: dict[str, str] | None = None) -> None:
        """Pretty-printed, key-sorted UTF-8 JSON (human-readable evidence; the hash covers the bytes)."""
        data = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n"
        self.write_bytes(name, data, metadata=metadata)

    def close(self) -> None:
        """Finish the central directory."""
        self._zip.close()

    def abort(self) -> None:
        """Close without caring whether the archive is complete (the caller deletes it)."""
        with contextlib.suppress(Exception):
            self._zip.close()
