"""`forgeline memory ...`: the memory service's commands (create, list, stats, add, search,
replay, delete, update), each a thin client of its gRPC API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from forgeline.cli.app import (
    AddressOpt,
    JsonOpt,
    WaitOpt,
    client,
    console,
    follow,
    json_value,
    plugin_specs,
    print_json,
)

if TYPE_CHECKING:
    from google.protobuf import struct_pb2

app = typer.Typer(
    no_args_is_help=True,
    help="Memories of past samples (search, replay) and continual updates without forgetting.",
)
MemoryArg = Annotated[str, typer.Argument(help="The memory's name.")]
FilterOpt = Annotated[
    str,
    typer.Option(
        "--filter",
        help='Only samples matching every field, as JSON: {"label": "pos"}, {"source": "app"}, '
        '{"metadata.KEY": VALUE}.',
    ),
]
INDEX_TYPES = ("flat", "hnsw", "ivf")


def _filter(raw: str) -> struct_pb2.Struct | None:
    from forgeline.convert import struct
    from forgeline.errors import InvalidArgument

    if not raw:
        return None
    value = json_value(raw, "--filter")
    if not isinstance(value, dict):
        raise InvalidArgument.for_field("--filter", 'a JSON object, e.g. {"label": "pos"}')
    return struct(value)


def _print_stats(stats: Any) -> None:
    from forgeline.v1 import memory_service_pb2 as pb

    embedding = stats.embedding.WhichOneof("source")
    console.print(
        f"[bold]{stats.name}[/bold]  {stats.samples} samples ({stats.deleted} deleted)  "
        f"{pb.IndexType.Name(stats.index_type).removeprefix('INDEX_TYPE_').lower()} index of "
        f"dimension {stats.dimension}"
        + (f"  embedded by {getattr(stats.embedding, embedding)}" if embedding else "")
    )
    if stats.labels:
        console.print("labels: " + ", ".join(f"{k}={v}" for k, v in sorted(stats.labels.items())))
    if stats.model_id:
        console.print(f"model {stats.model_id} after {stats.updates} updates: {list(stats.tasks)}")


@app.command("create")
def memory_create(
    memory: MemoryArg,
    embedding_model: Annotated[
        str,
        typer.Option(
            help="Model artifact (id or name) whose encoder embeds texts. Empty: samples and "
            "queries bring their vectors."
        ),
    ] = "",
    builtin: Annotated[str, typer.Option(help='Or a bundled embedder, e.g. "minilm-l6".')] = "",
    index: Annotated[str, typer.Option(help="flat (exact), hnsw or ivf.")] = "flat",
    dimension: Annotated[int, typer.Option(help="Vector size (needed without a model).")] = 0,
    dataset: Annotated[str, typer.Option(help="A dataset whose rows it starts with.")] = "",
    description: str = "",
    address: AddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a memory, empty or holding a dataset's rows."""
    from forgeline.errors import InvalidArgument
    from forgeline.v1 import common_pb2
    from forgeline.v1 import memory_service_pb2 as pb

    if index not in INDEX_TYPES:
        raise InvalidArgument.for_field("--index", f"one of {', '.join(INDEX_TYPES)}")
    if embedding_model and builtin:
        raise InvalidArgument.for_field(
            "--builtin", "give --embedding-model or --builtin, not both"
        )
    source = (
        pb.EmbeddingSource(model_id=embedding_model)
        if embedding_model
        else pb.EmbeddingSource(builtin=builtin)
        if builtin
        else None
    )
    request = pb.CreateMemoryRequest(
        name=memory,
        embedding=source,
        index=pb.IndexOptions(type=INDEX_TYPES.index(index) + 1, dimension=dimension),
        description=description,
        dataset=common_pb2.DatasetInput(dataset_id=dataset) if dataset else None,
    )
    with client(address, "memory") as service:
        created = service.memory.CreateMemory(request).memory
    print_json(created) if as_json else _print_stats(created)


@app.command("list")
def memory_list(
    limit: Annotated[int, typer.Option(help="How many, by name.")] = 50,
    address: AddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Memories, by name."""
    from forgeline.v1 import memory_service_pb2 as pb

    with client(address, "memory") as service:
        reply = service.memory.ListMemories(pb.ListMemoriesRequest(page_size=limit))
    if as_json:
        print_json(reply)
        return
    table = Table("memory", "samples", "dimension", "index", "embedding", "model")
    for m in reply.memories:
        source = m.embedding.WhichOneof("source")
        table.add_row(
            m.name,
            str(m.samples),
            str(m.dimension),
            pb.IndexType.Name(m.index_type).removeprefix("INDEX_TYPE_").lower(),
            getattr(m.embedding, source) if source else "",
            m.model_id,
        )
    console.print(table)


@app.command("stats")
def memory_stats(memory: MemoryArg, address: AddressOpt = None, as_json: JsonOpt = False) -> None:
    """One memory's counts, index, embedding and model."""
    from forgeline.v1 import memory_service_pb2 as pb

    with client(address, "memory") as service:
        stats = service.memory.GetMemoryStats(pb.GetMemoryStatsRequest(memory=memory)).memory
    print_json(stats) if as_json else _print_stats(stats)


@app.command("add")
def memory_add(
    memory: MemoryArg,
    texts: Annotated[
        list[str] | None, typer.Argument(help="Texts to remember (embedded by its model).")
    ] = None,
    label: Annotated[str, typer.Option(help="The texts' label.")] = "",
    source: Annotated[str, typer.Option(help="Where they came from.")] = "",
    dataset: Annotated[str, typer.Option(help="Or every row of a dataset.")] = "",
    address: AddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add texts (or a dataset's rows) to a memory; prints their ids."""
    from forgeline.errors import InvalidArgument
    from forgeline.v1 import common_pb2
    from forgeline.v1 import memory_service_pb2 as pb

    if not texts and not dataset:
        raise InvalidArgument.for_field("TEXTS", "give texts to add, or --dataset")
    request = pb.AddSamplesRequest(
        memory=memory,
        samples=[pb.MemorySample(text=t, label=label, source=source) for t in texts or []],
        dataset=common_pb2.DatasetInput(dataset_id=dataset) if dataset else None,
    )
    with client(address, "memory") as service:
        reply = service.memory.AddSamples(iter([request]))
    if as_json:
        print_json(reply)
        return
    console.print(f"added {len(reply.ids)} samples: ids {', '.join(map(str, reply.ids[:20]))}")
    _print_stats(reply.memory)


def _print_samples(rows: list[tuple[float | None, Any]]) -> None:
    table = Table("id", "score", "label", "source", "text")
    for score, s in rows:
        table.add_row(
            str(s.id), "" if score is None else f"{score:.4f}", s.label, s.source, s.text[:80]
        )
    console.print(table)


@app.command("search")
def memory_search(
    memory: MemoryArg,
    text: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", help="Results (0: 10; at most 1000).")] = 10,
    where: FilterOpt = "",
    address: AddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The samples most similar to a text (cosine similarity)."""
    from forgeline.v1 import memory_service_pb2 as pb

    request = pb.SearchRequest(memory=memory, text=text, k=k, filter=_filter(where))
    with client(address, "memory") as service:
        reply = service.memory.Search(request)
    if as_json:
        print_json(reply)
    else:
        _print_samples([(hit.score, hit.sample) for hit in reply.hits])


@app.command("replay")
def memory_replay(
    memory: MemoryArg,
    k: Annotated[int, typer.Option("-k", help="Samples wanted.")] = 10,
    sampler: Annotated[
        str, typer.Option(help="reservoir (default), class_balanced, diverse, or name=JSON.")
    ] = "",
    seed: int = 0,
    where: FilterOpt = "",
    address: AddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Samples a samplers plugin chooses for replay."""
    from forgeline.v1 import memory_service_pb2 as pb

    request = pb.SampleReplayRequest(
        memory=memory,
        k=k,
        sampler=plugin_specs([sampler], "--sampler")[0] if sampler else None,
        seed=seed,
        filter=_filter(where),
    )
    with client(address, "memory") as service:
        reply = service.memory.SampleReplay(request)
    if as_json:
        print_json(reply)
    else:
        _print_samples([(None, s) for s in reply.samples])


@app.command("delete")
def memory_delete(
    memory: MemoryArg,
    ids: Annotated[list[int] | None, typer.Argument(help="Sample ids.")] = None,
    where: FilterOpt = "",
    address: AddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete samples by id and/or filter."""
    from forgeline.v1 import memory_service_pb2 as pb

    request = pb.DeleteSamplesRequest(memory=memory, ids=ids or [], filter=_filter(where))
    with client(address, "memory") as service:
        reply = service.memory.DeleteSamples(request)
    if as_json:
        print_json(reply)
        return
    console.print(f"deleted {reply.deleted}")
    _print_stats(reply.memory)


@app.command("update")
def memory_update(
    memory: MemoryArg,
    new_data: Annotated[str, typer.Argument(help="The new task's rows (dataset id or name).")],
    model: Annotated[
        str, typer.Option(help="The classifier to update (empty: the memory's).")
    ] = "",
    new_eval: Annotated[
        str, typer.Option(help="The new task's held-out rows (empty: a split of NEW_DATA).")
    ] = "",
    task: Annotated[str, typer.Option(help="The new task's name.")] = "",
    old_task: Annotated[
        list[str] | None,
        typer.Option(help="TASK=DATASET: held-out rows of an old task it does not know yet."),
    ] = None,
    selector: Annotated[str, typer.Option(help="confidence (default) or all.")] = "",
    replay_ratio: Annotated[float | None, typer.Option(help="Replayed per new row (1.0).")] = None,
    regularizer: Annotated[str, typer.Option(help="ewc (default) or none.")] = "",
    max_forgetting: Annotated[
        float | None, typer.Option(help="Largest old-task accuracy drop promoted (0.02).")
    ] = None,
    epochs: int = 0,
    learning_rate: Annotated[float, typer.Option("--lr", help="0: 2e-5.")] = 0,
    name: Annotated[str, typer.Option("--name", help="Name of the updated model.")] = "",
    address: AddressOpt = None,
    wait: WaitOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Update a classifier on a new task with replay and a regularizer; promote it only when it
    keeps what it knew. Exit 1 when it was not promoted."""
    from forgeline.errors import InvalidArgument
    from forgeline.v1 import common_pb2
    from forgeline.v1 import memory_service_pb2 as pb

    def optional_plugin(value: str, option: str) -> Any:
        return plugin_specs([value], option)[0] if value else None

    old_tasks = []
    for i, item in enumerate(old_task or []):
        old, _, dataset = item.partition("=")
        if not dataset:
            raise InvalidArgument.for_field(f"--old-task[{i}]", "write TASK=DATASET")
        old_tasks.append(pb.TaskData(task=old, eval=common_pb2.DatasetInput(dataset_id=dataset)))
    request = pb.ContinualUpdateRequest(
        memory=memory,
        model_id=model,
        new_data=common_pb2.DatasetInput(dataset_id=new_data),
        new_eval=common_pb2.DatasetInput(dataset_id=new_eval) if new_eval else None,
        task=task,
        old_tasks=old_tasks,
        selector=optional_plugin(selector, "--selector"),
        replay_ratio=replay_ratio,
        regularizer=optional_plugin(regularizer, "--regularizer"),
        hyper_parameters=common_pb2.HyperParameters(learning_rate=learning_rate, epochs=epochs),
        max_forgetting=max_forgetting,
        output_name=name,
    )
    with client(address, "memory") as service:
        result = follow(
            service,
            service.memory.ContinualUpdate(request),
            pb.ContinualUpdateResponse,
            wait,
            as_json,
        )
    if as_json:
        print_json(result)
    else:
        table = Table("task", "before", "after", "learned", "examples")
        for t in result.tasks:
            table.add_row(
                t.task + (" (new)" if t.new else ""),
                f"{t.before:.4f}",
                f"{t.after:.4f}",
                f"{t.learned:.4f}",
                str(t.examples),
            )
        console.print(table)
        verdict = "[green]promoted[/green]" if result.promoted else "[red]not promoted[/red]"
        console.print(
            f"[bold]{result.model.id}[/bold] {verdict}: {result.reason}  (forgetting "
            f"{result.forgetting:.4f} of {result.max_forgetting:.4f} allowed)",
            soft_wrap=True,
        )
    if not result.promoted:
        raise typer.Exit(1)
