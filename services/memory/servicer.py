"""forgeline.v1.MemoryService over gRPC: translates messages to Memories calls and back."""

from __future__ import annotations

import asyncio
from typing import Any

from forgeline.convert import artifact, from_struct, plugin_choice, struct
from forgeline.datasets import DatasetRepository, dataset_ref
from forgeline.errors import InvalidArgument, ResourceExhausted
from forgeline.models import ModelRepository
from forgeline.operations import MethodSpec, page_offset
from forgeline.registry import PluginChoice
from forgeline.server import Kernel, ServiceDefinition
from forgeline.services.memory.continual import (
    ContinualJobs,
    Hyper,
    NewMemory,
    UpdateOutcome,
    UpdateSpec,
)
from forgeline.services.memory.memories import (
    BATCH,
    DEFAULT_SAMPLER,
    SERVICE,
    Incoming,
    Memories,
)
from forgeline.services.memory.store import IndexConfig, Sample, Stats
from forgeline.v1 import memory_service_pb2 as pb
from forgeline.v1 import memory_service_pb2_grpc

INDEX_TYPES = {
    pb.INDEX_TYPE_UNSPECIFIED: "flat",
    pb.INDEX_TYPE_FLAT: "flat",
    pb.INDEX_TYPE_HNSW: "hnsw",
    pb.INDEX_TYPE_IVF: "ivf",
}
INDEX_TYPE_PB = {"flat": pb.INDEX_TYPE_FLAT, "hnsw": pb.INDEX_TYPE_HNSW, "ivf": pb.INDEX_TYPE_IVF}


def build(kernel: Kernel) -> list[ServiceDefinition]:
    """The entry point of ``forgeline.services: memory``."""
    memories = Memories(
        kernel.settings.home.expanduser() / "services" / "memory",
        kernel.artifacts,
        kernel.registry,
    )
    continual = ContinualJobs(
        memories,
        DatasetRepository(kernel.artifacts),
        ModelRepository(kernel.artifacts),
        kernel.settings,
    )
    servicer = MemoryServicer(kernel, memories, continual)
    return [
        ServiceDefinition(
            full_name=SERVICE,
            servicer=servicer,
            add_to_server=memory_service_pb2_grpc.add_MemoryServiceServicer_to_server,
            methods=servicer.method_specs(),
            on_close=memories.close,
        )
    ]


def index_config(r: pb.CreateMemoryRequest) -> IndexConfig:
    o = r.index
    if o.type not in INDEX_TYPES:
        raise InvalidArgument.for_field("index.type", f"unknown value {o.type}")
    defaults = IndexConfig(dimension=0)
    return IndexConfig(
        dimension=o.dimension,
        index_type=INDEX_TYPES[o.type],
        hnsw_m=o.hnsw_m or defaults.hnsw_m,
        hnsw_ef_search=o.hnsw_ef_search or defaults.hnsw_ef_search,
        hnsw_ef_construction=o.hnsw_ef_construction or defaults.hnsw_ef_construction,
        ivf_lists=o.ivf_lists or defaults.ivf_lists,
        ivf_probes=o.ivf_probes or defaults.ivf_probes,
        train_size=o.train_size,
    )


def embedding_source(message: pb.EmbeddingSource) -> dict[str, str]:
    kind = message.WhichOneof("source")
    return {kind: getattr(message, kind)} if kind else {}


def stats_pb(s: Stats, memories: Memories) -> pb.MemoryStats:
    config = memories.store.config(s.name, load=False)
    return pb.MemoryStats(
        name=s.name,
        samples=s.samples,
        deleted=s.deleted,
        dimension=s.dimension,
        index_type=INDEX_TYPE_PB[s.index_type],
        trained=s.trained,
        labels=s.labels,
        sources=s.sources,
        index_bytes=s.index_bytes,
        snapshot_samples=s.snapshot_samples,
        embedding=pb.EmbeddingSource(**config.embedding),
        description=config.description,
        model_id=s.model_id,
        updates=s.updates,
        tasks=s.tasks,
    )


def sample_pb(i: int, s: Sample, vector: Any = None) -> pb.MemorySample:
    return pb.MemorySample(
        id=i,
        text=s.text,
        label=s.label,
        source=s.source,
        timestamp=s.timestamp,
        metadata=struct(s.metadata),
        vector=[] if vector is None else vector.tolist(),
    )


def incoming(message: pb.MemorySample) -> Incoming:
    return Incoming(
        Sample(
            text=message.text,
            label=message.label,
            source=message.source,
            timestamp=message.timestamp,
            metadata=from_struct(message.metadata),
        ),
        list(message.vector),
    )


def update_spec(r: pb.ContinualUpdateRequest) -> UpdateSpec:
    h, scaling = r.hyper_parameters, r.scaling
    if scaling.use_gpu or scaling.bf16:
        raise InvalidArgument.for_field(
            "scaling.use_gpu" if scaling.use_gpu else "scaling.bf16",
            "continual updates train on CPU workers for now",
        )
    create = None
    if r.HasField("create_memory"):
        c = r.create_memory
        create = NewMemory(
            embedding=embedding_source(c.embedding),
            index=index_config(c),
            description=c.description,
            dataset=dataset_ref(c.dataset) if c.HasField("dataset") else None,
        )
    return UpdateSpec(
        memory=r.memory,
        model_id=r.model_id,
        create=create,
        new_data=dataset_ref(r.new_data),
        new_eval=dataset_ref(r.new_eval) if r.HasField("new_eval") else None,
        holdout_fraction=r.holdout_fraction,
        task=r.task,
        old_tasks=tuple((t.task, dataset_ref(t.eval)) for t in r.old_tasks),
        selector=plugin_choice(r.selector) if r.selector.name else None,
        replay_ratio=r.replay_ratio if r.HasField("replay_ratio") else None,
        replay_sampler=plugin_choice(r.replay_sampler) if r.replay_sampler.name else None,
        regularizer=plugin_choice(r.regularizer) if r.regularizer.name else None,
        old_rows=r.old_rows,
        hyper=Hyper(
            learning_rate=h.learning_rate,
            batch_size=h.batch_size_per_worker,
            epochs=h.epochs,
            max_length=h.max_sequence_length,
            seed=h.seed,
            num_workers=scaling.num_workers,
            cpus_per_worker=scaling.cpus_per_worker,
            warmup_ratio=h.warmup_ratio,
            warmup_steps=h.warmup_steps,
            weight_decay=h.weight_decay,
            gradient_accumulation_steps=h.gradient_accumulation_steps,
            max_steps=h.max_steps,
            group_by_length=h.group_by_length,
        ),
        max_forgetting=r.max_forgetting if r.HasField("max_forgetting") else None,
        output_name=r.output_name,
    )


def update_response(o: UpdateOutcome, memories: Memories, memory: str):
    return pb.ContinualUpdateResponse(
        model=artifact(o.model),
        promoted=o.promoted,
        reason=o.reason,
        previous_model_id=o.previous_model_id,
        task=o.task,
        new_rows=o.new_rows,
        selected_rows=o.selected_rows,
        replayed_rows=o.replayed_rows,
        added_samples=o.added_samples,
        tasks=[pb.TaskAccuracy(**vars(t)) for t in o.tasks],
        forgetting=o.forgetting,
        max_forgetting=o.max_forgetting,
        backward_transfer=o.backward_transfer,
        new_task_accuracy=o.new_task_accuracy,
        new_task_accuracy_before=o.new_task_accuracy_before,
        history=[pb.UpdateRecord(**h) for h in o.history],
        memory=stats_pb(memories.store.stats(memory), memories),
        metrics=o.metrics,
        seconds=o.seconds,
    )


class MemoryServicer(memory_service_pb2_grpc.MemoryServiceServicer):
    def __init__(self, kernel: Kernel, memories: Memories, continual: ContinualJobs) -> None:
        self._kernel = kernel
        self._memories = memories
        self._continual = continual

    def method_specs(self) -> list[MethodSpec]:
        continual, memories = self._continual, self._memories

        def update(r: pb.ContinualUpdateRequest, ctx) -> pb.ContinualUpdateResponse:
            outcome = continual.run(update_spec(r), ctx, r.request_id)
            return update_response(outcome, memories, r.memory)

        return [MethodSpec("ContinualUpdate", update, lambda r: continual.plan(update_spec(r)))]

    async def _stats(self, name: str, load: bool = True) -> pb.MemoryStats:
        if not name:
            raise InvalidArgument.for_field("memory", "name a memory")
        stats = await asyncio.to_thread(self._memories.store.stats, name, load=load)
        return stats_pb(stats, self._memories)

    async def CreateMemory(self, request, context):
        stats = await asyncio.to_thread(self._create, request)
        return pb.CreateMemoryResponse(memory=stats_pb(stats, self._memories))

    def _create(self, request: pb.CreateMemoryRequest) -> Stats:
        memories = self._memories
        config = memories.config_for(
            request.name,
            embedding_source(request.embedding),
            index_config(request),
            request.description,
        )
        dataset = dataset_ref(request.dataset) if request.HasField("dataset") else None
        return memories.create(config, dataset)

    async def GetMemoryStats(self, request, context):
        return pb.GetMemoryStatsResponse(memory=await self._stats(request.memory))

    async def ListMemories(self, request, context):
        offset = page_offset(request.page_token)
        size = min(request.page_size or 50, 500)
        names = await asyncio.to_thread(self._memories.store.names)
        # Listing opens no memory: one whose snapshot is refused still lists (GetMemoryStats
        # and the other methods say why it cannot be used).
        page = [await self._stats(n, load=False) for n in names[offset : offset + size]]
        more = len(names) > offset + size
        return pb.ListMemoriesResponse(
            memories=page, next_page_token=str(offset + size) if more else ""
        )

    async def AddSamples(self, request_iterator, context):
        limit = self._kernel.settings.max_upload_bytes
        name, ids, batch, received = "", [], [], 0
        async for message in request_iterator:
            received += message.ByteSize()
            if received > limit:
                raise ResourceExhausted(
                    f"the stream exceeds {limit} bytes (FORGELINE_MAX_UPLOAD_BYTES); the "
                    f"{len(ids)} samples before were kept",
                    reason="UPLOAD_TOO_LARGE",
                )
            if message.memory and name and message.memory != name:
                raise InvalidArgument.for_field(
                    "memory", f"one stream adds to one memory ({name!r}, not {message.memory!r})"
                )
            name = name or message.memory
            if not name:
                raise InvalidArgument.for_field("memory", "the first message names the memory")
            batch += [incoming(s) for s in message.samples]
            if message.HasField("dataset"):
                d = message.dataset
                batch += await asyncio.to_thread(
                    self._memories.dataset_rows, name, d.dataset_id, d.text_column, d.label_column
                )
            while len(batch) >= BATCH:
                ids += await asyncio.to_thread(self._memories.add, name, batch[:BATCH])
                batch = batch[BATCH:]
        if not name:
            raise InvalidArgument.for_field("memory", "the stream was empty")
        if batch:
            ids += await asyncio.to_thread(self._memories.add, name, batch)
        return pb.AddSamplesResponse(ids=ids, memory=await self._stats(name))

    async def Search(self, request, context):
        hits = await asyncio.to_thread(
            self._memories.search,
            request.memory,
            request.text,
            list(request.vector),
            request.k,
            from_struct(request.filter),
        )
        vectors = None
        if request.include_vectors and hits:
            vectors = await asyncio.to_thread(
                self._memories.store.vectors, request.memory, [h.id for h in hits]
            )
        return pb.SearchResponse(
            hits=[
                pb.SearchHit(
                    sample=sample_pb(h.id, h.sample, vectors[i] if vectors is not None else None),
                    score=h.score,
                )
                for i, h in enumerate(hits)
            ]
        )

    async def SampleReplay(self, request, context):
        sampler = plugin_choice(request.sampler) if request.sampler.name else None
        ids, samples, vectors = await asyncio.to_thread(
            self._memories.replay,
            request.memory,
            request.k,
            sampler or PluginChoice(DEFAULT_SAMPLER),
            request.seed,
            from_struct(request.filter),
        )
        return pb.SampleReplayResponse(
            samples=[
                sample_pb(i, s, vectors[n] if request.include_vectors else None)
                for n, (i, s) in enumerate(zip(ids, samples, strict=True))
            ]
        )

    async def DeleteSamples(self, request, context):
        where = from_struct(request.filter)
        if not request.ids and not where:
            raise InvalidArgument.for_field("ids", "name the samples: ids and/or a filter")
        deleted = await asyncio.to_thread(
            self._memories.store.delete, request.memory, list(request.ids), where
        )
        return pb.DeleteSamplesResponse(deleted=deleted, memory=await self._stats(request.memory))
