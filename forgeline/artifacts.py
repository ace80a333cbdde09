"""The content-addressed artifact store: Parquet datasets and model folders, with lineage.

Layout under the store root::

    objects/<sha[:2]>/<sha256>[.parquet]   immutable content, named by its digest (a file, or a
                                             folder whose digest is that of its file listing)
    staging/<pid>-<random>/                  in-progress writes, one folder per process; a
                                             folder whose process is gone is swept at open
    catalog.db                               SQLite index: id, kind, name, version, lineage

A write goes to staging/, is fsynced, hashed and renamed into objects/ (atomic on one
filesystem), and only then indexed. A crash at any point leaves either nothing or a complete,
unreferenced object: never a half-written artifact that a reader can see.

Shared (``FORGELINE_ARTIFACT_URI``: an S3-compatible bucket or a shared mount, see
forgeline.storage), the same layout lives there: ``objects/`` as above and ``records/<id>.json``,
one immutable record per artifact, written after its object. The local root is then this
machine's cache: its objects/ holds the objects used here (fetched on first use, checked against
their digest like any other) and its catalog.db a replica of the records, synced before a lookup
by name or a listing (a lookup by id fetches that one record). Versions are numbered from the
records seen at commit time; two machines committing the same name in the same instant can
number the same version, and the replica keeps the first it saw under that number (the other
stays reachable by id).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeline import __version__, storage
from forgeline.errors import DataLoss, InvalidArgument, NotFound, excerpt
from forgeline.logging import get_logger
from forgeline.versions import process_versions

if TYPE_CHECKING:
    import pyarrow as pa

ID_PREFIX = {"dataset": "ds", "model": "mdl", "adapter": "adp", "index": "idx", "report": "rpt"}
_CHUNK = 1 << 20
_COLUMNS = (
    "id",
    "kind",
    "uri",
    "sha256",
    "size_bytes",
    "name",
    "version",
    "metadata",
    "lineage",
    "create_time",
    "request_id",
)
log = get_logger(__name__)


@dataclass(frozen=True)
class Lineage:
    """Which operation, inputs and config made an artifact."""

    parent_ids: list[str] = field(default_factory=list)
    producer: str = ""
    operation: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    forgeline_version: str = __version__
    pipeline_run: str = ""
    pipeline_step: str = ""
    # Python's and the main libraries' versions in the process that recorded it
    # (forgeline.versions): the store fills them in when it records the artifact.
    libraries: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ArtifactRecord:
    id: str
    kind: str
    uri: str
    sha256: str
    size_bytes: int
    name: str
    version: int
    metadata: dict[str, Any]
    lineage: Lineage
    create_time: datetime
    request_id: str = ""

    @property
    def path(self) -> Path:
        return Path(self.uri.removeprefix("file://"))


def sha256_tree(folder: Path) -> str:
    """The digest of a folder: of its sorted (relative path, file digest) listing."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder).as_posix()}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def sha256_path(path: Path) -> str:
    return sha256_tree(path) if path.is_dir() else sha256_file(path)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ArtifactStore:
    """Content-addressed artifacts on a local folder with a SQLite catalog, or on shared
    storage with this folder as the machine's cache."""

    def __init__(
        self,
        root: Path,
        on_commit: Callable[[ArtifactRecord], None] | None = None,
        *,
        shared: str = "",
    ) -> None:
        """``on_commit`` hears of every artifact this store indexes (the kernel sends the
        models and adapters to the audit log); ``shared`` is the URI of shared storage."""
        self.root = Path(root).expanduser()
        self._on_commit = on_commit
        self.shared = storage.Location(shared) if shared else None
        if self.shared is not None:
            self.shared.open()  # a bad URI stops the service here, naming the setting
        self._objects = self.root / "objects"
        self._objects.mkdir(parents=True, exist_ok=True)
        staging_root = self.root / "staging"
        staging_root.mkdir(exist_ok=True)
        sweep_dead(staging_root)
        # Several services share one store: each process writes only into its own folder.
        self._staging = staging_root / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._staging.mkdir()
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.root / "catalog.db", check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        with self._lock, self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                """CREATE TABLE IF NOT EXISTS artifacts (
                    id TEXT PRIMARY KEY, kind TEXT NOT NULL, uri TEXT NOT NULL,
                    sha256 TEXT NOT NULL, size_bytes INTEGER NOT NULL,
                    name TEXT NOT NULL, version INTEGER NOT NULL,
                    metadata TEXT NOT NULL, lineage TEXT NOT NULL,
                    create_time TEXT NOT NULL, request_id TEXT NOT NULL DEFAULT '',
                    UNIQUE (kind, name, version))"""
            )
            self._db.execute(
                "CREATE INDEX IF NOT EXISTS artifacts_request ON artifacts (request_id)"
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()
        shutil.rmtree(self._staging, ignore_errors=True)

    # --- writing ----------------------------------------------------------------------------
    @contextmanager
    def staging_path(self, suffix: str = "") -> Iterator[Path]:
        """A fresh path in staging/; removed afterwards unless it was committed."""
        path = self._staging / f"{uuid.uuid4().hex}{suffix}"
        try:
            yield path
        finally:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink()

    def commit_file(
        self,
        staged: Path,
        *,
        kind: str,
        name: str,
        metadata: dict[str, Any],
        lineage: Lineage,
        suffix: str = "",
        request_id: str = "",
    ) -> ArtifactRecord:
        """Moves a fully written staged file into objects/ and indexes it as a new version."""
        if not name:
            raise InvalidArgument.for_field("name", "an artifact name is required")
        with open(staged, "rb+") as fh:
            os.fsync(fh.fileno())
        sha = sha256_file(staged)
        target = self._objects / sha[:2] / f"{sha}{suffix}"
        target.parent.mkdir(exist_ok=True)
        size = staged.stat().st_size
        if target.exists():
            staged.unlink()  # identical content is already stored
        else:
            os.replace(staged, target)
        uri = self._publish(target)
        return self._index(kind, name, uri, sha, size, metadata, lineage, request_id)

    def commit_dir(
        self,
        staged: Path,
        *,
        kind: str,
        name: str,
        metadata: dict[str, Any],
        lineage: Lineage,
        request_id: str = "",
    ) -> ArtifactRecord:
        """Moves a fully written staged folder (a model, an adapter) into objects/ and indexes
        it. Symlinks are refused: an artifact holds its own bytes."""
        if not name:
            raise InvalidArgument.for_field("name", "an artifact name is required")
        files = [p for p in staged.rglob("*")]
        if any(p.is_symlink() for p in files):
            raise InvalidArgument.for_field("name", f"{staged} holds symlinks; refusing it")
        for path in files:
            if path.is_file():
                with open(path, "rb+") as fh:
                    os.fsync(fh.fileno())
        sha = sha256_tree(staged)
        size = sum(p.stat().st_size for p in files if p.is_file())
        target = self._objects / sha[:2] / sha
        target.parent.mkdir(exist_ok=True)
        if target.exists():
            shutil.rmtree(staged)
        else:
            os.replace(staged, target)
        uri = self._publish(target)
        return self._index(kind, name, uri, sha, size, metadata, lineage, request_id)

    def put_table(
        self,
        table: pa.Table,
        *,
        name: str,
        metadata: dict[str, Any],
        lineage: Lineage,
        request_id: str = "",
    ) -> ArtifactRecord:
        """Writes ``table`` as a Parquet dataset artifact (a new version of ``name``)."""
        import pyarrow.parquet as pq

        with self.staging_path(".parquet") as staged:
            pq.write_table(table, staged, compression="zstd")
            return self.commit_file(
                staged,
                kind="dataset",
                name=name,
                metadata=metadata,
                lineage=lineage,
                suffix=".parquet",
                request_id=request_id,
            )

    def _publish(self, target: Path) -> str:
        """The URI an object is indexed under: in shared storage (uploaded there first, once:
        the same name is the same content) or this folder."""
        if self.shared is None:
            return target.resolve().as_uri()
        location = self._shared_object(target.relative_to(self._objects).as_posix())
        if not storage.exists(location):
            storage.upload(target, location)
        return location.display

    def _shared_object(self, relative: str) -> storage.Location:
        return self.shared.child("objects", *relative.split("/"))

    def _index(
        self,
        kind: str,
        name: str,
        uri: str,
        sha: str,
        size: int,
        metadata: dict[str, Any],
        lineage: Lineage,
        request_id: str,
    ) -> ArtifactRecord:
        if not name:
            raise InvalidArgument.for_field("name", "an artifact name is required")
        artifact_id = f"{ID_PREFIX.get(kind, kind[:3])}_{uuid.uuid4().hex[:12]}"
        now = datetime.now(UTC)
        if not lineage.libraries:
            lineage = replace(lineage, libraries=process_versions())
        if self.shared is not None:
            self.sync()
        with self._lock, self._db:
            row = self._db.execute(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM artifacts WHERE kind=? AND name=?",
                (kind, name),
            ).fetchone()
            values = (
                artifact_id,
                kind,
                uri,
                sha,
                size,
                name,
                int(row[0]),
                json.dumps(metadata),
                json.dumps(asdict(lineage)),
                now.isoformat(),
                request_id,
            )
            if self.shared is not None:  # the shared record first: then it exists everywhere
                record = json.dumps(dict(zip(_COLUMNS, values, strict=True)))
                storage.write_bytes(
                    self.shared.child("records", f"{artifact_id}.json"), record.encode()
                )
            self._db.execute("INSERT INTO artifacts VALUES (?,?,?,?,?,?,?,?,?,?,?)", values)
        record = self.get(artifact_id)
        if self._on_commit is not None:
            self._on_commit(record)
        return record

    # --- reading ----------------------------------------------------------------------------
    def get(self, ref: str, *, kind: str | None = None) -> ArtifactRecord:
        """By id, by "name" (latest version) or by "name@version"."""
        if self.shared is not None and not self._known(ref):
            self.sync()
        with self._lock:
            row = self._db.execute("SELECT * FROM artifacts WHERE id=?", (ref,)).fetchone()
            if row is None:
                name, _, version = ref.partition("@")
                query = "SELECT * FROM artifacts WHERE name=?"
                args: list[Any] = [name]
                if kind:
                    query += " AND kind=?"
                    args.append(kind)
                if version:
                    if not version.isdigit():
                        raise InvalidArgument.for_field("id", f"bad version in {excerpt(ref)}")
                    query += " AND version=?"
                    args.append(int(version))
                row = self._db.execute(query + " ORDER BY version DESC LIMIT 1", args).fetchone()
        if row is None or (kind and row["kind"] != kind):
            raise NotFound(
                f"no {kind or 'artifact'} {excerpt(ref)}; list them with ListDatasets or "
                f"`forgeline data list`",
                reason="ARTIFACT_NOT_FOUND",
                metadata={"id": ref},
            )
        return _record(row)

    def find_by_request_id(self, request_id: str) -> ArtifactRecord | None:
        if not request_id:
            return None
        if self.shared is not None:
            self.sync()
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM artifacts WHERE request_id=? LIMIT 1", (request_id,)
            ).fetchone()
        return _record(row) if row else None

    def list(
        self, *, kind: str | None = None, name: str = "", offset: int = 0, limit: int = 100
    ) -> list[ArtifactRecord]:
        """Newest first."""
        query, args = "SELECT * FROM artifacts WHERE 1=1", []
        if kind:
            query += " AND kind=?"
            args.append(kind)
        if name:
            query += " AND name=?"
            args.append(name)
        query += " ORDER BY create_time DESC, id LIMIT ? OFFSET ?"
        args += [limit, offset]
        if self.shared is not None:
            self.sync()
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        return [_record(r) for r in rows]

    def sync(self) -> int:
        """Copies the shared records this machine has not seen into its replica; how many."""
        import pyarrow.fs as pafs

        fs, path = self.shared.child("records").open()
        listing = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        ids = {i.base_name.removesuffix(".json") for i in listing if i.base_name.endswith(".json")}
        with self._lock:
            known = {r[0] for r in self._db.execute("SELECT id FROM artifacts")}
        new = sorted(ids - known)
        for artifact_id in new:
            with fs.open_input_stream(f"{path}/{artifact_id}.json") as src:
                values = json.loads(src.read())
            with self._lock, self._db:
                inserted = self._db.execute(
                    "INSERT OR IGNORE INTO artifacts VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    [values[c] for c in _COLUMNS],
                ).rowcount
            if not inserted:
                log.warning(
                    "artifact_version_taken",
                    id=artifact_id,
                    name=values["name"],
                    version=values["version"],
                )
        return len(new)

    def _known(self, ref: str) -> bool:
        with self._lock:
            return (
                self._db.execute("SELECT 1 FROM artifacts WHERE id=?", (ref,)).fetchone()
                is not None
            )

    def local_path(self, record: ArtifactRecord) -> Path:
        """Where the record's content is (or will be, once fetched) on this machine."""
        if self.shared is None:
            return record.path
        return self._objects / _object_name(record)

    def verify(self, record: ArtifactRecord) -> Path:
        """The content path on this machine (fetched from shared storage on first use), after
        checking it exists and still matches its digest."""
        path = self.local_path(record)
        if self.shared is not None and not path.exists():
            self._fetch(record, path)
        if not path.exists():
            raise DataLoss(
                f"artifact {record.id} is indexed but its content {path} is missing",
                reason="ARTIFACT_CONTENT_MISSING",
                metadata={"id": record.id},
            )
        actual = sha256_path(path)
        if actual != record.sha256:
            raise DataLoss(
                f"artifact {record.id} content digest {actual[:12]} does not match its "
                f"manifest {record.sha256[:12]}; refusing to use it",
                reason="ARTIFACT_DIGEST_MISMATCH",
                metadata={"id": record.id},
            )
        return path

    def _fetch(self, record: ArtifactRecord, path: Path) -> None:
        location = self._shared_object(_object_name(record))
        with self.staging_path() as staged:
            try:
                storage.download(location, staged)
            except FileNotFoundError:
                return  # verify() reports the missing content
            path.parent.mkdir(exist_ok=True)
            try:
                os.replace(staged, path)
            except OSError:  # another process of this machine fetched it first
                pass

    def shared_object(self, path: Path) -> storage.Location | None:
        """The shared location of a local path that is (inside) an object of this store."""
        if self.shared is None or not Path(path).resolve().is_relative_to(self._objects.resolve()):
            return None
        return self._shared_object(
            Path(path).resolve().relative_to(self._objects.resolve()).as_posix()
        )

    def location(self, record: ArtifactRecord) -> str:
        """Where a process on any machine of the cluster opens the record's content: its
        shared URI (options included) when storage is shared, else its local path."""
        if self.shared is None:
            return str(record.path)
        return self._shared_object(_object_name(record)).uri

    def read_table(self, record: ArtifactRecord, columns: list[str] | None = None) -> pa.Table:
        """A dataset's rows, after verifying its digest."""
        import pyarrow.parquet as pq

        return pq.read_table(self.verify(record), columns=columns)


def sweep_dead(staging_root: Path) -> None:
    """Removes the folders ("<pid>-...") of processes that no longer run: writes that never
    landed."""
    for folder in staging_root.iterdir():
        pid = folder.name.split("-", 1)[0]
        if not pid.isdigit() or not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True) if folder.is_dir() else folder.unlink()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _object_name(record: ArtifactRecord) -> str:
    """ "<sha[:2]>/<sha>[.parquet]": where the record's content is under any objects/."""
    return record.uri.rsplit("/objects/", 1)[1]


def _record(row: sqlite3.Row) -> ArtifactRecord:
    return ArtifactRecord(
        id=row["id"],
        kind=row["kind"],
        uri=row["uri"],
        sha256=row["sha256"],
        size_bytes=row["size_bytes"],
        name=row["name"],
        version=row["version"],
        metadata=json.loads(row["metadata"]),
        lineage=Lineage(**json.loads(row["lineage"])),
        create_time=datetime.fromisoformat(row["create_time"]),
        request_id=row["request_id"],
    )
