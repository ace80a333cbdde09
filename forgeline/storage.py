"""Storage several machines share, through pyarrow's filesystems: an S3-compatible bucket or a
shared mount, named by one URI (``FORGELINE_ARTIFACT_URI``).

``s3://bucket/prefix?endpoint_override=host:9000&scheme=http`` takes pyarrow's S3 options in
its query and the credentials from the standard ``AWS_*`` variables (never from the URI); a
path or ``file://`` URI is a mount every machine sees at the same path. A location inside it is
written as the same URI with a longer path (the options kept), so a Ray worker on another
machine opens exactly what the service meant.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from forgeline.errors import InvalidArgument

_CHUNK = 1 << 20


def is_remote(location: str) -> bool:
    """True for a URI with a scheme other than file:// (a plain path is local)."""
    scheme = urlsplit(location).scheme
    return bool(scheme) and scheme != "file" and len(scheme) > 1  # "C:" is a drive


@dataclass(frozen=True)
class Location:
    """A place in shared storage: its filesystem, the path inside it, and how to name it."""

    uri: str  # the full URI, options included: what another process opens

    def open(self):
        """(pyarrow filesystem, path inside it)."""
        import pyarrow.fs as pafs

        try:
            if not is_remote(self.uri):
                path = urlsplit(self.uri).path if self.uri.startswith("file:") else self.uri
                return pafs.LocalFileSystem(), str(Path(path).expanduser().resolve())
            return pafs.FileSystem.from_uri(self.uri)
        except (ValueError, OSError) as exc:
            raise InvalidArgument.for_field("artifact_uri", f"{self.uri!r}: {exc}") from None

    def child(self, *parts: str) -> Location:
        """The location ``parts`` below this one (same scheme and options)."""
        split = urlsplit(self.uri)
        if not split.scheme:
            return Location(str(Path(self.uri, *parts)))
        if split.scheme == "file":
            return Location(Path(split.path, *parts).as_uri())
        path = "/".join([split.path.rstrip("/"), *parts])
        return Location(urlunsplit((split.scheme, split.netloc, path, split.query, "")))

    @property
    def display(self) -> str:
        """The URI without its options (what a record shows)."""
        split = urlsplit(self.uri)
        return urlunsplit((split.scheme, split.netloc, split.path, "", "")) or self.uri


def exists(location: Location) -> bool:
    import pyarrow.fs as pafs

    fs, path = location.open()
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def remove(location: Location) -> None:
    """Deletes a folder and everything below it (nothing when it is gone already)."""
    fs, path = location.open()
    try:
        fs.delete_dir(path)
    except FileNotFoundError:
        pass


def write_bytes(location: Location, data: bytes) -> None:
    fs, path = location.open()
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as out:
        out.write(data)


def read_bytes(location: Location) -> bytes:
    """A file's bytes (FileNotFoundError when there is none)."""
    fs, path = location.open()
    with fs.open_input_stream(path) as src:
        return src.read()


def upload(local: Path, location: Location) -> None:
    """Copies a file, or a folder's whole tree, to ``location``."""
    fs, path = location.open()
    files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
    for file in files:
        target = path if file == local else f"{path}/{file.relative_to(local).as_posix()}"
        fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        with open(file, "rb") as src, fs.open_output_stream(target) as dst:
            shutil.copyfileobj(src, dst, _CHUNK)


def download(location: Location, local: Path) -> None:
    """Copies a file, or every file below a folder, from ``location`` to ``local``."""
    import pyarrow.fs as pafs

    fs, path = location.open()
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File:
        files = [info]
    else:
        files = [
            i
            for i in fs.get_file_info(pafs.FileSelector(path, recursive=True))
            if i.type == pafs.FileType.File
        ]
        if not files:
            raise FileNotFoundError(f"{location.display} holds no files")
    for item in files:
        target = local if item.path == path else local / item.path[len(path) :].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        with fs.open_input_stream(item.path) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, _CHUNK)


def localize(location: str, cache: Path | None = None) -> Path:
    """A local copy of a content-addressed object (its name is its digest, so a copy once made
    never goes stale): ``location`` itself when it is local, else a download into ``cache``
    (default: this machine's temp folder), made once per machine however many processes ask."""
    if not is_remote(location):
        return Path(urlsplit(location).path if location.startswith("file:") else location)
    cache = cache or Path(tempfile.gettempdir()) / "forgeline-objects"
    name = Location(location).display.rstrip("/").rsplit("/", 1)[-1]
    target = cache / name
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    partial = cache / f".{name}.{os.getpid()}-{uuid.uuid4().hex[:6]}"
    download(Location(location), partial)
    try:
        os.replace(partial, target)  # atomic; a folder another process placed first stays
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
    return target
