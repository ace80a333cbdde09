"""Memories: named FAISS indexes of sample embeddings with their payloads, persistent and
crash-safe. No gRPC here.

Layout under the store's root::

    memory.db                       SQLite (WAL): every memory's config, and every sample (its
                                    payload and its vector). A sample is committed here before
                                    any index holds it: this table is the index's write-ahead log.
    <memory>/index-<n>.faiss        snapshots of the index (written to a temporary file, fsynced,
                                    renamed)
    <memory>/manifest.json          the current snapshot: its file, SHA-256 and the last sample id
                                    it holds (replaced atomically after the snapshot is complete)

A memory's continual-learning state (its current model, the tasks it is scored on, its update
history) is a JSON row of memory.db, written in the same transaction as the samples an update
adds: an update's samples and its promotion land together or not at all.

Opening a memory checks the snapshot against its manifest's digest (a mismatch is DataLoss: the
memory is refused, never loaded from a file that is not the one written), then adds the samples
committed after the snapshot. A crash at any point loses no committed sample and leaves no torn
index in use. Each memory has a lock: concurrent adds, deletes and snapshots are serialised.

Vectors are L2-normalized and compared by inner product (cosine similarity). Index types:
``flat`` (exact), ``hnsw`` (graph; deletions become tombstones filtered at search) and ``ivf``
(inverted lists; an exact index until ``train_size`` samples exist, then rebuilt as IVF trained
on them).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from forgeline.errors import Aborted, AlreadyExists, DataLoss, InvalidArgument, NotFound

INDEX_TYPES = ("flat", "hnsw", "ivf")
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_.")
FILTER_FIELDS = ("label", "source")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS memories (
    name TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS samples (
    memory TEXT NOT NULL,
    id INTEGER NOT NULL,
    text TEXT NOT NULL,
    label TEXT NOT NULL,
    source TEXT NOT NULL,
    timestamp REAL NOT NULL,
    metadata TEXT NOT NULL,
    vector BLOB NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (memory, id)
);
CREATE INDEX IF NOT EXISTS samples_label ON samples (memory, label);
CREATE TABLE IF NOT EXISTS continual (
    memory TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class IndexConfig:
    """How a memory's vectors are indexed."""

    dimension: int
    index_type: str = "flat"
    hnsw_m: int = 32  # graph degree
    hnsw_ef_search: int = 128  # candidates per search: recall against speed
    hnsw_ef_construction: int = 200
    ivf_lists: int = 1024
    ivf_probes: int = 32  # lists scanned per search
    train_size: int = 0  # ivf: samples before training (0: 39 per list)

    def check(self) -> None:
        if not 1 <= self.dimension <= 65536:
            raise InvalidArgument.for_field("dimension", "must be in [1, 65536]")
        if self.index_type not in INDEX_TYPES:
            raise InvalidArgument.for_field(
                "index_type", f"unknown index type {self.index_type!r}; known: {INDEX_TYPES}"
            )
        limits = {
            "hnsw_m": (2, 256),
            "hnsw_ef_search": (1, 100_000),
            "hnsw_ef_construction": (1, 100_000),
            "ivf_lists": (1, 1 << 20),
            "ivf_probes": (1, 1 << 20),
        }
        for name, (low, high) in limits.items():
            if not low <= getattr(self, name) <= high:
                raise InvalidArgument.for_field(name, f"must be in [{low}, {high}]")
        if self.ivf_probes > self.ivf_lists:
            raise InvalidArgument.for_field("ivf_probes", "must not exceed ivf_lists")
        if self.train_size < 0:
            raise InvalidArgument.for_field("train_size", "must be >= 0")

    @property
    def ivf_train_size(self) -> int:
        return self.train_size or 39 * self.ivf_lists


@dataclass(frozen=True)
class MemoryConfig:
    name: str
    index: IndexConfig
    # Where embeddings come from: {"builtin": "minilm-l6"} or {"model_id": "mdl_..."}; empty when
    # clients send vectors.
    embedding: Mapping[str, str] = field(default_factory=dict)
    description: str = ""


@dataclass
class Sample:
    text: str = ""
    label: str = ""
    source: str = ""
    timestamp: float = 0.0  # 0: when it was added
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Hit:
    id: int
    score: float
    sample: Sample


@dataclass
class Stats:
    name: str
    samples: int
    deleted: int
    dimension: int
    index_type: str
    trained: bool
    labels: dict[str, int]
    sources: dict[str, int]
    index_bytes: int
    snapshot_samples: int
    # Continual learning: the memory's model, its promoted updates, the tasks it is scored on.
    model_id: str = ""
    updates: int = 0
    tasks: list[str] = field(default_factory=list)


class _Memory:
    """One open memory: its config, its live index, its lock."""

    def __init__(self, config: MemoryConfig, folder: Path) -> None:
        self.config = config
        self.folder = folder
        self.lock = threading.RLock()
        self.index: Any = None
        self.tombstones: set[int] = set()
        self.indexed_upto = 0  # the last sample id the live index holds
        self.snapshot_upto = 0
        self.ivf_trained = False


class MemoryStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            self.root / "memory.db", check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._db_lock = threading.Lock()
        self._open: dict[str, _Memory] = {}
        self._open_lock = threading.Lock()

    def close(self) -> None:
        with self._open_lock:
            for memory in self._open.values():
                with memory.lock:
                    self._snapshot(memory)
            self._open.clear()
        self._db.close()

    # --- memories ----------------------------------------------------------------------------

    def create(self, config: MemoryConfig) -> Stats:
        name = config.name
        check_name(name)
        config.index.check()
        row = {"index": asdict(config.index), "embedding": dict(config.embedding)}
        row["description"] = config.description
        with self._db_lock:
            try:
                self._db.execute(
                    "INSERT INTO memories (name, config, created) VALUES (?, ?, ?)",
                    (name, json.dumps(row), time.time()),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(
                    f"name: a memory called {name!r} exists", reason="MEMORY_EXISTS"
                ) from None
        return self.stats(name)

    def exists(self, name: str) -> bool:
        with self._db_lock:
            row = self._db.execute("SELECT 1 FROM memories WHERE name = ?", (name,)).fetchone()
        return row is not None

    def names(self) -> list[str]:
        with self._db_lock:
            return [r[0] for r in self._db.execute("SELECT name FROM memories ORDER BY name")]

    def config(self, name: str, *, load: bool = True) -> MemoryConfig:
        if load:
            return self._memory(name).config
        with self._open_lock:
            memory = self._open.get(name)
        return memory.config if memory is not None else self._read_config(name)

    # --- samples -----------------------------------------------------------------------------

    def add(
        self,
        name: str,
        samples: list[Sample],
        vectors,
        *,
        state: Mapping[str, Any] | None = None,
        expect_model: str | None = None,
    ) -> list[int]:
        """Commits the samples (payload and vector) and indexes them; returns their ids. With
        ``state``, the memory's continual-learning state is replaced in the same transaction,
        provided its model is still ``expect_model`` ("": none yet; Aborted otherwise)."""
        import numpy as np

        memory = self._memory(name)
        vectors = np.asarray(vectors, dtype=np.float32)
        if not samples:  # a state change alone
            vectors = vectors.reshape(0, memory.config.index.dimension)
        vectors = _normalized(vectors)
        if vectors.ndim != 2 or vectors.shape[0] != len(samples):
            raise InvalidArgument.for_field("samples", "one vector per sample is required")
        if vectors.shape[1] != memory.config.index.dimension:
            raise InvalidArgument.for_field(
                "samples.vector",
                f"dimension {vectors.shape[1]} does not match the memory's "
                f"{memory.config.index.dimension}",
            )
        now = time.time()
        with memory.lock:
            with self._db_lock:
                (last,) = self._db.execute(
                    "SELECT COALESCE(MAX(id), 0) FROM samples WHERE memory = ?", (name,)
                ).fetchone()
                ids = list(range(last + 1, last + 1 + len(samples)))
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    if state is not None:
                        self._write_state(name, state, expect_model)
                    self._db.executemany(
                        "INSERT INTO samples (memory, id, text, label, source, timestamp, "
                        "metadata, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            (
                                name,
                                i,
                                s.text,
                                s.label,
                                s.source,
                                s.timestamp or now,
                                json.dumps(s.metadata, sort_keys=True),
                                v.tobytes(),
                            )
                            for i, s, v in zip(ids, samples, vectors, strict=True)
                        ],
                    )
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            self._index_add(memory, vectors, ids)
        return ids

    def continual_state(self, name: str) -> dict[str, Any]:
        """The memory's continual-learning state ({} before its first update)."""
        self._read_config(name)  # NotFound for an unknown memory
        with self._db_lock:
            row = self._db.execute(
                "SELECT state FROM continual WHERE memory = ?", (name,)
            ).fetchone()
        return json.loads(row[0]) if row else {}

    def _write_state(self, name: str, state: Mapping[str, Any], expect_model: str | None) -> None:
        """Inside a transaction: replaces the state if its model is still ``expect_model``."""
        row = self._db.execute("SELECT state FROM continual WHERE memory = ?", (name,)).fetchone()
        current = json.loads(row[0]).get("model_id", "") if row else ""
        if expect_model is not None and current != expect_model:
            raise Aborted(
                f"memory {name!r}: its model became {current or 'none'} while this update "
                f"ran from {expect_model or 'none'}; run the update again on the new model",
                reason="MEMORY_MODEL_CHANGED",
                metadata={"memory": name},
            )
        self._db.execute(
            "INSERT INTO continual (memory, state) VALUES (?, ?) "
            "ON CONFLICT (memory) DO UPDATE SET state = excluded.state",
            (name, json.dumps(state, sort_keys=True)),
        )

    def delete(self, name: str, ids: Iterable[int] = (), where: Mapping[str, Any] | None = None):
        """Deletes samples by id and/or by filter; returns how many were deleted."""
        memory = self._memory(name)
        chosen = set(int(i) for i in ids)
        if where:
            chosen |= set(self._matching(name, where))
        if not chosen:
            return 0
        with memory.lock:
            with self._db_lock:
                found = [
                    r[0]
                    for r in self._db.execute(
                        f"SELECT id FROM samples WHERE memory = ? AND deleted = 0 AND id IN "
                        f"({','.join('?' * len(chosen))})",
                        (name, *chosen),
                    )
                ]
                self._db.executemany(
                    "UPDATE samples SET deleted = 1 WHERE memory = ? AND id = ?",
                    [(name, i) for i in found],
                )
            self._index_remove(memory, found)
        return len(found)

    def search(self, name: str, vectors, k: int, where: Mapping[str, Any] | None = None):
        """The ``k`` nearest live samples of every query vector (cosine similarity), optionally
        only among those matching ``where``."""
        import numpy as np

        memory = self._memory(name)
        queries = _normalized(np.asarray(vectors, dtype=np.float32))
        if queries.ndim != 2 or queries.shape[1] != memory.config.index.dimension:
            raise InvalidArgument.for_field(
                "vector",
                f"queries must have the memory's dimension {memory.config.index.dimension}",
            )
        with memory.lock:
            allowed = self._matching(name, where) if where else None
            if allowed is not None and not allowed:
                return [[] for _ in range(len(queries))]
            params = self._search_params(memory, allowed)
            scores, found = memory.index.search(queries, k, params=params)
        payloads = self._payloads(name, {int(i) for i in found.ravel() if i >= 0})
        out = []
        for row_scores, row_ids in zip(scores, found, strict=True):
            out.append(
                [
                    Hit(int(i), float(s), payloads[int(i)])
                    for s, i in zip(row_scores, row_ids, strict=True)
                    if i >= 0 and int(i) in payloads
                ]
            )
        return out

    def pool(self, name: str, where: Mapping[str, Any] | None = None):
        """Every live sample (ids, payloads, vectors), oldest first: what a replay sampler
        chooses from."""
        return self._rows(self._memory(name), where or {})

    def _rows(self, memory: _Memory, where: Mapping[str, Any]):
        import numpy as np

        clause, extra = _where_sql(where)
        with self._db_lock:
            rows = self._db.execute(
                "SELECT id, text, label, source, timestamp, metadata, vector FROM samples "
                "WHERE memory = ? AND deleted = 0" + clause + " ORDER BY id",
                (memory.config.name, *extra),
            ).fetchall()
        ids = [r[0] for r in rows]
        samples = [Sample(r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]
        vectors = np.frombuffer(b"".join(r[6] for r in rows), dtype=np.float32).reshape(
            len(rows), memory.config.index.dimension
        )
        return ids, samples, vectors

    def vectors(self, name: str, ids: list[int]):
        """The stored (normalized) vectors of ``ids``, in that order."""
        import numpy as np

        memory = self._memory(name)
        with self._db_lock:
            found = dict(
                self._db.execute(
                    f"SELECT id, vector FROM samples WHERE memory = ? AND id IN "
                    f"({','.join('?' * len(ids))})",
                    (name, *ids),
                ).fetchall()
            )
        d = memory.config.index.dimension
        return np.stack([np.frombuffer(found[i], dtype=np.float32) for i in ids]).reshape(-1, d)

    def stats(self, name: str, *, load: bool = True) -> Stats:
        """A memory's counts and index. ``load=False`` does not open a memory that is not open
        yet (listing many memories, one of which may be refused): its index figures then come
        from its manifest, and it holds no index in memory."""
        if load:
            memory: _Memory | None = self._memory(name)
        else:
            with self._open_lock:
                memory = self._open.get(name)
        config = memory.config if memory is not None else self._read_config(name)
        with self._db_lock:
            live, deleted = self._db.execute(
                "SELECT COALESCE(SUM(deleted = 0), 0), COALESCE(SUM(deleted), 0) FROM samples "
                "WHERE memory = ?",
                (name,),
            ).fetchone()
            labels = dict(
                self._db.execute(
                    "SELECT label, COUNT(*) FROM samples WHERE memory = ? AND deleted = 0 "
                    "GROUP BY label ORDER BY label",
                    (name,),
                ).fetchall()
            )
            sources = dict(
                self._db.execute(
                    "SELECT source, COUNT(*) FROM samples WHERE memory = ? AND deleted = 0 "
                    "GROUP BY source ORDER BY source",
                    (name,),
                ).fetchall()
            )
            row = self._db.execute(
                "SELECT state FROM continual WHERE memory = ?", (name,)
            ).fetchone()
        state = json.loads(row[0]) if row else {}
        index = config.index
        if memory is not None:
            with memory.lock:
                size, trained, upto = _index_bytes(memory), memory.ivf_trained, memory.snapshot_upto
        else:
            manifest = self.root / "memories" / name / "manifest.json"
            written = json.loads(manifest.read_text()) if manifest.exists() else {}
            size, trained = 0, bool(written.get("ivf_trained"))
            upto = int(written.get("upto", 0))
        return Stats(
            name=name,
            samples=int(live),
            deleted=int(deleted),
            dimension=index.dimension,
            index_type=index.index_type,
            trained=index.index_type != "ivf" or trained,
            labels={str(k): int(v) for k, v in labels.items()},
            sources={str(k): int(v) for k, v in sources.items()},
            index_bytes=size,
            snapshot_samples=upto,
            model_id=state.get("model_id", ""),
            updates=sum(1 for h in state.get("history", []) if h.get("update", 0) > 0),
            tasks=sorted(state.get("tasks", {})),
        )

    def snapshot(self, name: str) -> None:
        memory = self._memory(name)
        with memory.lock:
            self._snapshot(memory)

    # --- opening, indexing, snapshots ----------------------------------------------------------

    def _memory(self, name: str) -> _Memory:
        if not name:
            raise InvalidArgument.for_field("memory", "name a memory")
        with self._open_lock:
            memory = self._open.get(name)
            if memory is None:
                memory = self._load(name)
                self._open[name] = memory
            return memory

    def _load(self, name: str) -> _Memory:
        import faiss
        import numpy as np

        config = self._read_config(name)
        memory = _Memory(config, self.root / "memories" / name)
        manifest_path = memory.folder / "manifest.json"
        if manifest_path.exists():
            manifest = json.loads(manifest_path.read_text())
            path = memory.folder / manifest["file"]
            digest = _sha256(path) if path.exists() else "missing"
            if digest != manifest["sha256"]:
                raise DataLoss(
                    f"memory {name!r}: its index snapshot {manifest['file']} does not match its "
                    f"manifest (sha256 {digest[:12]}, expected {manifest['sha256'][:12]}); "
                    f"refusing to load it",
                    reason="INDEX_DIGEST_MISMATCH",
                    metadata={"memory": name},
                )
            memory.index = faiss.read_index(str(path))
            memory.indexed_upto = memory.snapshot_upto = int(manifest["upto"])
            memory.ivf_trained = bool(manifest.get("ivf_trained"))
        else:
            memory.index = self._new_index(config.index, trained=False)
        with self._db_lock:
            rows = self._db.execute(
                "SELECT id, vector, deleted FROM samples WHERE memory = ? AND id > ? ORDER BY id",
                (name, memory.indexed_upto),
            ).fetchall()
            dead = [
                r[0]
                for r in self._db.execute(
                    "SELECT id FROM samples WHERE memory = ? AND deleted = 1 AND id <= ?",
                    (name, memory.indexed_upto),
                )
            ]
        if rows:  # committed after the snapshot: replayed from the log
            vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
            self._index_add(memory, vectors.reshape(len(rows), -1), [r[0] for r in rows])
            self._index_remove(memory, [r[0] for r in rows if r[2]])
        self._index_remove(memory, dead)  # deleted after the snapshot was written
        return memory

    def _read_config(self, name: str) -> MemoryConfig:
        if not name:
            raise InvalidArgument.for_field("memory", "name a memory")
        with self._db_lock:
            row = self._db.execute("SELECT config FROM memories WHERE name = ?", (name,)).fetchone()
        if row is None:
            known = self.names()
            raise NotFound(
                f"memory {name!r} does not exist; memories: {known[:20]}",
                reason="MEMORY_NOT_FOUND",
                metadata={"field": "memory"},
            )
        raw = json.loads(row[0])
        return MemoryConfig(
            name, IndexConfig(**raw["index"]), raw["embedding"], raw.get("description", "")
        )

    @staticmethod
    def _new_index(config: IndexConfig, trained: bool):
        import faiss

        d = config.dimension
        if config.index_type == "hnsw":
            inner = faiss.IndexHNSWFlat(d, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = config.hnsw_ef_construction
            inner.hnsw.efSearch = config.hnsw_ef_search
        elif config.index_type == "ivf" and trained:
            # IVF keeps arbitrary ids itself; an IDMap around it would renumber wrongly on remove.
            quantizer = faiss.IndexFlatIP(d)
            index = faiss.IndexIVFFlat(quantizer, d, config.ivf_lists, faiss.METRIC_INNER_PRODUCT)
            index.nprobe = config.ivf_probes
            return index
        else:
            inner = faiss.IndexFlatIP(d)
        return faiss.IndexIDMap2(inner)

    def _index_add(self, memory: _Memory, vectors, ids: list[int]) -> None:
        import numpy as np

        if not ids:
            return
        config = memory.config.index
        memory.index.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))
        memory.indexed_upto = max(memory.indexed_upto, max(ids))
        if (
            config.index_type == "ivf"
            and not memory.ivf_trained
            and memory.index.ntotal >= config.ivf_train_size
        ):
            self._train_ivf(memory)

    def _train_ivf(self, memory: _Memory) -> None:
        """Rebuilds an ivf memory's exact index as IVF, trained on every live vector."""
        import numpy as np

        ids, _, vectors = self._rows(memory, {})
        index = self._new_index(memory.config.index, trained=True)
        index.train(vectors)
        index.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))
        memory.index, memory.ivf_trained = index, True
        memory.tombstones.clear()

    def _index_remove(self, memory: _Memory, ids: list[int]) -> None:
        import numpy as np

        if not ids:
            return
        if memory.config.index.index_type == "hnsw":
            memory.tombstones |= set(ids)  # HNSW cannot remove: filtered at search
        else:
            memory.index.remove_ids(np.asarray(ids, dtype=np.int64))

    def _search_params(self, memory: _Memory, allowed: list[int] | None):
        import faiss
        import numpy as np

        selector = None
        if allowed is not None:
            live = [i for i in allowed if i not in memory.tombstones]
            selector = faiss.IDSelectorBatch(np.asarray(live, dtype=np.int64))
        elif memory.tombstones:
            dead = faiss.IDSelectorBatch(np.asarray(sorted(memory.tombstones), dtype=np.int64))
            selector = faiss.IDSelectorNot(dead)
            selector.referenced = dead  # keep it alive as long as the selector
        config = memory.config.index
        if config.index_type == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=config.hnsw_ef_search)
        elif config.index_type == "ivf" and memory.ivf_trained:
            params = faiss.SearchParametersIVF(nprobe=config.ivf_probes)
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
            params.referenced = selector
        return params

    def _snapshot(self, memory: _Memory) -> None:
        """Writes the live index to a new file, then points the manifest at it."""
        import faiss

        if memory.indexed_upto == memory.snapshot_upto:
            return
        memory.folder.mkdir(parents=True, exist_ok=True)
        number = memory.indexed_upto
        name = f"index-{number:012d}.faiss"
        temporary = memory.folder / (name + ".tmp")
        faiss.write_index(memory.index, str(temporary))
        _fsync(temporary)
        os.replace(temporary, memory.folder / name)
        manifest = {
            "file": name,
            "sha256": _sha256(memory.folder / name),
            "upto": number,
            "ivf_trained": memory.ivf_trained,
            "index_type": memory.config.index.index_type,
        }
        temporary = memory.folder / "manifest.json.tmp"
        temporary.write_text(json.dumps(manifest, indent=2))
        _fsync(temporary)
        os.replace(temporary, memory.folder / "manifest.json")
        _fsync_dir(memory.folder)
        memory.snapshot_upto = number
        for old in memory.folder.glob("index-*.faiss"):
            if old.name != name:
                old.unlink(missing_ok=True)

    # --- payloads and filters ------------------------------------------------------------------

    def _payloads(self, name: str, ids: set[int]) -> dict[int, Sample]:
        if not ids:
            return {}
        out = {}
        chunk = sorted(ids)
        with self._db_lock:
            for start in range(0, len(chunk), 500):
                part = chunk[start : start + 500]
                for r in self._db.execute(
                    "SELECT id, text, label, source, timestamp, metadata FROM samples WHERE "
                    f"memory = ? AND deleted = 0 AND id IN ({','.join('?' * len(part))})",
                    [name, *part],
                ):
                    out[r[0]] = Sample(r[1], r[2], r[3], r[4], json.loads(r[5]))
        return out

    def _matching(self, name: str, where: Mapping[str, Any]) -> list[int]:
        clause, args = _where_sql(where)
        with self._db_lock:
            return [
                r[0]
                for r in self._db.execute(
                    "SELECT id FROM samples WHERE memory = ? AND deleted = 0" + clause,
                    (name, *args),
                )
            ]


def check_name(name: str) -> None:
    if not name or len(name) > 64 or not set(name) <= _NAME_CHARS or name[0] in "-_.":
        raise InvalidArgument.for_field(
            "name", "use 1-64 lowercase letters, digits, '-', '_' or '.' (not first)"
        )


def _where_sql(where: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """An AND of equalities: label / source, or a metadata key ("metadata.<key>")."""
    clause, args = "", []
    for key, value in sorted(where.items()):
        if key in FILTER_FIELDS:
            clause += f" AND {key} = ?"
            args.append(str(value))
        elif key.startswith("metadata.") and key[9:].replace("_", "").isalnum():
            clause += " AND json_extract(metadata, ?) = ?"
            args += [f"$.{key[9:]}", value]
        else:
            raise InvalidArgument.for_field(
                f"filter.{key}", "filter on label, source or metadata.<key> (letters, digits, _)"
            )
    return clause, args


def _normalized(vectors):
    import numpy as np

    if vectors.ndim != 2:
        return vectors
    if not np.isfinite(vectors).all():
        raise InvalidArgument.for_field("vector", "vectors must be finite")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def _index_bytes(memory: _Memory) -> int:
    """What the live index holds in memory, from its layout (serializing it would copy it):
    the vectors, the id map, HNSW's links, IVF's centroids."""
    index, config = memory.index, memory.config.index
    n, d = index.ntotal, config.dimension
    size = n * (d * 4 + 8)
    if config.index_type == "hnsw":
        size += n * config.hnsw_m * 2 * 4  # level-0 links; upper levels add ~1/M more
    elif config.index_type == "ivf" and memory.ivf_trained:
        size += config.ivf_lists * d * 4
    return int(size)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
