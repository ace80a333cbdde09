"""MemoryService over gRPC on real FAISS and SQLite: create, a streamed add, search with
filters, replay by every sampler, deletes, listing, a memory embedding texts with a model
artifact, and every refusal naming its field."""

from __future__ import annotations

import numpy as np
import pytest

from forgeline.convert import struct
from forgeline.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from forgeline.v1 import common_pb2
from forgeline.v1 import memory_service_pb2 as pb
from tests.fixtures import add_samples, memory_samples

D = 8


def create(client, name: str, **index) -> pb.MemoryStats:
    return client.memory.CreateMemory(
        pb.CreateMemoryRequest(name=name, index=pb.IndexOptions(dimension=D, **index))
    ).memory


def test_a_streamed_add_is_searched_filtered_replayed_and_deleted(mem):
    created = create(mem, "vectors", type=pb.INDEX_TYPE_HNSW)
    assert created.samples == 0 and created.index_type == pb.INDEX_TYPE_HNSW
    samples = memory_samples(600, D)
    added = add_samples(mem, "vectors", samples)
    assert list(added.ids) == list(range(1, 601))
    stats = added.memory
    assert stats.samples == 600 and dict(stats.labels) == {"neg": 200, "neutral": 200, "pos": 200}
    assert dict(stats.sources) == {"app": 300, "batch": 300} and stats.index_bytes > 600 * D * 4

    found = mem.memory.Search(
        pb.SearchRequest(memory="vectors", vector=samples[7].vector, k=5, include_vectors=True)
    ).hits
    assert found[0].sample.id == 8 and found[0].score == pytest.approx(1.0, abs=1e-5)
    assert found[0].sample.text == "sample 7" and found[0].sample.metadata["shard"] == 3
    unit = np.asarray(samples[7].vector) / np.linalg.norm(samples[7].vector)
    assert np.allclose(found[0].sample.vector, unit, atol=1e-6)
    assert [h.score for h in found] == sorted((h.score for h in found), reverse=True)
    filtered = mem.memory.Search(
        pb.SearchRequest(
            memory="vectors",
            vector=samples[7].vector,
            k=20,
            filter=struct({"label": "pos", "metadata.shard": 2}),
        )
    ).hits
    assert len(filtered) == 20
    assert all(h.sample.label == "pos" and h.sample.metadata["shard"] == 2 for h in filtered)

    for name in ("reservoir", "class_balanced", "diverse"):
        replay = mem.memory.SampleReplay(
            pb.SampleReplayRequest(
                memory="vectors", k=30, seed=4, sampler=common_pb2.PluginSpec(name=name)
            )
        ).samples
        ids = [s.id for s in replay]
        assert len(set(ids)) == 30 and all(1 <= i <= 600 for i in ids), name
        if name == "class_balanced":
            labels = [s.label for s in replay]
            assert {labels.count(x) for x in ("pos", "neg", "neutral")} == {10}
    only_app = mem.memory.SampleReplay(
        pb.SampleReplayRequest(memory="vectors", k=1000, filter=struct({"source": "app"}))
    ).samples
    assert len(only_app) == 300 and {s.source for s in only_app} == {"app"}

    deleted = mem.memory.DeleteSamples(
        pb.DeleteSamplesRequest(memory="vectors", ids=[8], filter=struct({"label": "neutral"}))
    )
    assert deleted.deleted == 201 and deleted.memory.samples == 399
    again = mem.memory.Search(pb.SearchRequest(memory="vectors", vector=samples[7].vector, k=50))
    assert all(h.sample.id != 8 and h.sample.label != "neutral" for h in again.hits)


def test_memories_are_listed_a_page_at_a_time(mem):
    for name in ("page-a", "page-b", "page-c"):
        create(mem, name)
    first = mem.memory.ListMemories(pb.ListMemoriesRequest(page_size=2))
    names = [m.name for m in first.memories]
    while first.next_page_token:
        first = mem.memory.ListMemories(
            pb.ListMemoriesRequest(page_size=2, page_token=first.next_page_token)
        )
        names += [m.name for m in first.memories]
    assert {"page-a", "page-b", "page-c"} <= set(names) and names == sorted(names)


def test_texts_are_embedded_by_a_model_artifact(memory_service, mem, tmp_path):
    from forgeline.artifacts import ArtifactStore, Lineage
    from forgeline.testing.classifiers import base_model

    store = ArtifactStore(memory_service.home / "artifacts")
    model = store.commit_dir(
        base_model(tmp_path / "encoder"),
        kind="model",
        name="tiny-encoder",
        metadata={"format": "hf", "task": ""},
        lineage=Lineage(),
    )
    created = mem.memory.CreateMemory(
        pb.CreateMemoryRequest(
            name="texts", embedding=pb.EmbeddingSource(model_id=model.id), index=pb.IndexOptions()
        )
    ).memory
    assert created.dimension == 32 and created.embedding.model_id == model.id
    texts = ["good food", "cold soup", "fast delivery", "awful taste", "lovely service"]
    add_samples(mem, "texts", [pb.MemorySample(text=t, label="x") for t in texts])
    for i, text in enumerate(texts):
        hits = mem.memory.Search(pb.SearchRequest(memory="texts", text=text, k=2)).hits
        assert hits[0].sample.id == i + 1 and hits[0].score == pytest.approx(1.0, abs=1e-5)

    # A dataset artifact's rows, embedded by the same model.
    import pyarrow as pa

    from forgeline.datasets import DatasetRepository

    rows = pa.table({"review": ["stale bread", "great taste"], "stars": ["neg", "pos"]})
    dataset = DatasetRepository(store).save(
        rows, name="reviews", text_column="review", label_column="stars", lineage=Lineage()
    )
    added = mem.memory.AddSamples(
        iter(
            [
                pb.AddSamplesRequest(
                    memory="texts", dataset=common_pb2.DatasetInput(dataset_id=dataset.id)
                )
            ]
        )
    )
    assert list(added.ids) == [6, 7] and dict(added.memory.labels) == {"neg": 1, "pos": 1, "x": 5}
    hit = mem.memory.Search(pb.SearchRequest(memory="texts", text="stale bread", k=1)).hits[0]
    assert hit.sample.source == dataset.id and hit.sample.label == "neg"
    assert hit.sample.metadata["row"] == 0
    with pytest.raises(InvalidArgument, match="dataset.text_column"):
        mem.memory.AddSamples(
            iter(
                [
                    pb.AddSamplesRequest(
                        memory="texts",
                        dataset=common_pb2.DatasetInput(dataset_id=dataset.id, text_column="title"),
                    )
                ]
            )
        )
    # A memory created holding a dataset's rows; a bad dataset creates nothing.
    seeded = mem.memory.CreateMemory(
        pb.CreateMemoryRequest(
            name="seeded",
            embedding=pb.EmbeddingSource(model_id=model.id),
            dataset=common_pb2.DatasetInput(dataset_id=dataset.id),
        )
    ).memory
    assert seeded.samples == 2 and dict(seeded.sources) == {dataset.id: 2}
    with pytest.raises(NotFound, match="dataset.dataset_id"):
        mem.memory.CreateMemory(
            pb.CreateMemoryRequest(
                name="seeded-badly",
                embedding=pb.EmbeddingSource(model_id=model.id),
                dataset=common_pb2.DatasetInput(dataset_id="ds_nope"),
            )
        )
    names = [m.name for m in mem.memory.ListMemories(pb.ListMemoriesRequest()).memories]
    assert "seeded" in names and "seeded-badly" not in names
    with pytest.raises(InvalidArgument, match="dataset"):
        mem.memory.CreateMemory(
            pb.CreateMemoryRequest(
                name="seeded-raw",
                index=pb.IndexOptions(dimension=4),
                dataset=common_pb2.DatasetInput(dataset_id=dataset.id),
            )
        )
    with pytest.raises(FailedPrecondition, match="no embedding model"):
        create(mem, "vectors-only")
        mem.memory.AddSamples(
            iter(
                [
                    pb.AddSamplesRequest(
                        memory="vectors-only",
                        dataset=common_pb2.DatasetInput(dataset_id=dataset.id),
                    )
                ]
            )
        )


def test_bad_requests_are_refused_naming_the_field(mem):
    create(mem, "strict")
    with pytest.raises(AlreadyExists):
        create(mem, "strict")
    with pytest.raises(NotFound, match="memories: .*'strict'"):
        mem.memory.GetMemoryStats(pb.GetMemoryStatsRequest(memory="missing"))
    with pytest.raises(InvalidArgument, match="name"):
        create(mem, "Not OK")
    with pytest.raises(InvalidArgument, match="index.dimension"):
        mem.memory.CreateMemory(pb.CreateMemoryRequest(name="nodim"))
    with pytest.raises(InvalidArgument, match="ivf_probes"):
        create(mem, "ivf-bad", type=pb.INDEX_TYPE_IVF, ivf_lists=4, ivf_probes=8)
    with pytest.raises(InvalidArgument, match=r"samples\[1\].vector"):
        add_samples(
            mem, "strict", [memory_samples(1, D)[0], pb.MemorySample(text="x", vector=[1.0, 2.0])]
        )
    with pytest.raises(InvalidArgument, match=r"samples\[0\].vector"):
        add_samples(mem, "strict", [pb.MemorySample(text="no vector")])
    with pytest.raises(InvalidArgument, match="memory"):
        add_samples(mem, "", memory_samples(1, D))
    with pytest.raises(FailedPrecondition, match="no embedding model"):
        mem.memory.Search(pb.SearchRequest(memory="strict", text="hello"))
    with pytest.raises(InvalidArgument, match="k"):
        mem.memory.Search(pb.SearchRequest(memory="strict", vector=[1.0] * D, k=5000))
    with pytest.raises(InvalidArgument, match="filter.colour"):
        mem.memory.Search(
            pb.SearchRequest(memory="strict", vector=[1.0] * D, filter=struct({"colour": "x"}))
        )
    with pytest.raises(InvalidArgument, match="sampler.name"):
        mem.memory.SampleReplay(
            pb.SampleReplayRequest(memory="strict", k=1, sampler=common_pb2.PluginSpec(name="zz"))
        )
    with pytest.raises(InvalidArgument, match="ids"):
        mem.memory.DeleteSamples(pb.DeleteSamplesRequest(memory="strict"))
    # Nothing of the refused adds was kept.
    assert mem.memory.GetMemoryStats(pb.GetMemoryStatsRequest(memory="strict")).memory.samples == 0
