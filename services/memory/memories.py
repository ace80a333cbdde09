"""The memory service's work: memories with their embedding models, replay through samplers
plugins. No gRPC here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgeline.artifacts import ArtifactStore
from forgeline.datasets import DatasetRef, DatasetRepository
from forgeline.errors import FailedPrecondition, InvalidArgument
from forgeline.registry import PluginChoice, PluginRegistry, ReplayPool
from forgeline.services.memory.embed import Embedders
from forgeline.services.memory.store import (
    Hit,
    IndexConfig,
    MemoryConfig,
    MemoryStore,
    Sample,
    Stats,
    check_name,
)

SERVICE = "forgeline.v1.MemoryService"
MAX_K = 1000
DEFAULT_SAMPLER = "reservoir"
BATCH = 512  # samples committed (and embedded) at once


@dataclass
class Incoming:
    """A sample to add, with its vector when the client sent one."""

    sample: Sample
    vector: list[float]


class Memories:
    def __init__(self, root: Path, artifacts: ArtifactStore, registry: PluginRegistry) -> None:
        self.store = MemoryStore(root)
        self.embedders = Embedders(artifacts)
        self.datasets = DatasetRepository(artifacts)
        self.registry = registry

    def close(self) -> None:
        self.store.close()

    def config_for(
        self, name: str, embedding: Mapping[str, str], index: IndexConfig, description: str
    ) -> MemoryConfig:
        """A new memory's config, checked (its name, its index, the embedding model's
        dimension); creates nothing."""
        check_name(name)
        if embedding:
            dimension = self.embedders.dimension(embedding)
            if index.dimension and index.dimension != dimension:
                raise InvalidArgument.for_field(
                    "index.dimension",
                    f"{index.dimension} does not match the embedding model's {dimension}",
                )
            index = IndexConfig(**{**index.__dict__, "dimension": dimension})
        elif not index.dimension:
            raise InvalidArgument.for_field(
                "index.dimension", "required without an embedding source (clients send vectors)"
            )
        index.check()
        return MemoryConfig(name, index, dict(embedding), description)

    def create(self, config: MemoryConfig, dataset: DatasetRef | None = None) -> Stats:
        """Creates a memory, holding ``dataset``'s rows if given: read (and checked) before the
        memory exists, embedded and committed BATCH at a time."""
        rows: list[Incoming] = []
        if dataset is not None:
            if not config.embedding:
                raise InvalidArgument.for_field(
                    "dataset", "a memory seeded with a dataset needs an embedding source"
                )
            rows = self.dataset_rows(
                None, dataset.dataset_id, dataset.text_column, dataset.label_column
            )
        stats = self.store.create(config)
        for start in range(0, len(rows), BATCH):
            self.add(config.name, rows[start : start + BATCH])
        return self.store.stats(config.name) if rows else stats

    def add(self, name: str, items: list[Incoming]) -> list[int]:
        import numpy as np

        config = self.store.config(name)
        d = config.index.dimension
        vectors = np.zeros((len(items), d), dtype=np.float32)
        missing = []
        for i, item in enumerate(items):
            if item.vector:
                if len(item.vector) != d:
                    raise InvalidArgument.for_field(
                        f"samples[{i}].vector",
                        f"has {len(item.vector)} dimensions; memory {name!r} has {d}",
                    )
                vectors[i] = item.vector
            elif config.embedding:
                missing.append(i)
            else:
                raise InvalidArgument.for_field(
                    f"samples[{i}].vector",
                    f"memory {name!r} has no embedding model: send each sample's vector",
                )
        if missing:
            vectors[missing] = self.embedders.embed(
                config.embedding, [items[i].sample.text for i in missing]
            )
        return self.store.add(name, [item.sample for item in items], vectors)

    def dataset_rows(
        self, name: str | None, dataset_id: str, text_column: str, label_column: str
    ) -> list[Incoming]:
        """A dataset's rows as samples (source: the dataset's id; metadata: its row number),
        for memory ``name`` (None: one about to be created with an embedding source)."""
        if name is not None and not self.store.config(name).embedding:
            raise FailedPrecondition(
                f"dataset: memory {name!r} has no embedding model to embed a dataset's texts",
                reason="NO_EMBEDDING_MODEL",
                metadata={"field": "dataset"},
            )
        dataset = self.datasets.get(dataset_id, "dataset.dataset_id")
        text = text_column or dataset.text_column
        label = label_column or dataset.label_column
        for field, column in (("text_column", text), ("label_column", label)):
            if column and column not in dataset.column_names:
                raise InvalidArgument.for_field(
                    f"dataset.{field}",
                    f"no column {column!r} in dataset {dataset.id}; columns: "
                    f"{dataset.column_names}",
                )
        if not text:
            raise InvalidArgument.for_field(
                "dataset.text_column", f"dataset {dataset.id} has no text column; name one"
            )
        table = self.datasets.read(dataset, columns=[text] + ([label] if label else []))
        texts = table.column(text).to_pylist()
        labels = table.column(label).to_pylist() if label else [""] * len(texts)
        return [
            Incoming(
                Sample(
                    text=t or "",
                    label="" if y is None else str(y),
                    source=dataset.id,
                    metadata={"row": i},
                ),
                [],
            )
            for i, (t, y) in enumerate(zip(texts, labels, strict=True))
        ]

    def query_vector(self, name: str, text: str, vector: list[float]):
        import numpy as np

        config = self.store.config(name)
        if vector and text:
            raise InvalidArgument.for_field("text", "search by a text or by a vector, not both")
        if vector:
            return np.asarray([vector], dtype=np.float32)
        if not text:
            raise InvalidArgument.for_field("text", "give a text or a vector to search for")
        if not config.embedding:
            raise FailedPrecondition(
                f"text: memory {name!r} has no embedding model; search by vector",
                reason="NO_EMBEDDING_MODEL",
                metadata={"field": "text"},
            )
        return self.embedders.embed(config.embedding, [text])

    def search(
        self, name: str, text: str, vector: list[float], k: int, where: Mapping[str, Any]
    ) -> list[Hit]:
        if not 0 <= k <= MAX_K:
            raise InvalidArgument.for_field("k", f"must be in [0, {MAX_K}]")
        query = self.query_vector(name, text, vector)
        return self.store.search(name, query, k or 10, where)[0]

    def replay(
        self, name: str, k: int, sampler: PluginChoice, seed: int, where: Mapping[str, Any]
    ) -> tuple[list[int], list[Sample], Any]:
        if k < 0:
            raise InvalidArgument.for_field("k", "must be >= 0")
        plugin = self.registry.create("samplers", sampler.name, sampler.config, "sampler")
        ids, samples, vectors = self.store.pool(name, where)
        pool = ReplayPool(
            labels=[s.label for s in samples],
            vectors=vectors,
            timestamps=[s.timestamp for s in samples],
        )
        chosen = plugin.sample(pool, k, seed)
        return [ids[i] for i in chosen], [samples[i] for i in chosen], vectors[chosen]
