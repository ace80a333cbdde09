"""ContinualUpdate over gRPC on real Ray Train, FAISS and SQLite, with a tiny classifier: an
update that is promoted (the memory gains the new rows, its model and history move on), a chained
update that forgets and is refused (the memory untouched), and every refusal before work
starts."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from forgeline.artifacts import Lineage
from forgeline.errors import FailedPrecondition, InvalidArgument, NotFound
from forgeline.finetune.build import build_from_config
from forgeline.finetune.recipe import RecipeConfig
from forgeline.testing.classifiers import (
    LABELS,
    TINY_BERT,
    metadata,
    reviews,
    train_locally,
    write_rows,
)
from forgeline.v1 import common_pb2
from forgeline.v1 import memory_service_pb2 as pb
from tests.fixtures import spec
from tests.waiting import wait_done

GOOD = ["superb service", "kind staff", "clean room", "quick checkin", "comfy bed"]
BAD = ["rude service", "dirty room", "noisy staff", "slow checkin", "hard bed"]


def hotel(copies: int, offset: int = 0, flip: bool = False) -> pa.Table:
    texts = [f"{t} {i + offset}" for i in range(copies) for t in GOOD + BAD]
    good = "neg" if flip else "pos"
    bad = "pos" if flip else "neg"
    labels = [good if t in GOOD else bad for _ in range(copies) for t in GOOD + BAD]
    return pa.table({"text": texts, "label": labels})


def food(copies: int, offset: int = 0, flip: bool = False) -> pa.Table:
    texts, labels = reviews(copies, offset)
    if flip:
        labels = ["neg" if y == "pos" else "pos" for y in labels]
    return pa.table({"text": texts, "label": labels})


def classifier(work: Path) -> Path:
    """A tiny BERT whose tokenizer knows both tasks' words (as a pretrained model's would),
    trained on the food reviews only."""
    import torch

    torch.manual_seed(0)
    words = food(2).column("text").to_pylist() + hotel(2).column("text").to_pylist()
    base = build_from_config("bert", TINY_BERT, words, 160, work / "base")
    rows = food(6)
    train = write_rows(
        work / "food.parquet", rows.column("text").to_pylist(), rows.column("label").to_pylist()
    )
    train_locally(
        RecipeConfig(
            model_path=str(base),
            train_path=str(train),
            labels=LABELS,
            learning_rate=5e-3,
            batch_size=10,
            epochs=15,
            max_length=32,
            output_dir=str(work / "food-model"),
        )
    )
    return work / "food-model"


@pytest.fixture(scope="module")
def world(ray_local, memory_service, mem, tmp_path_factory):
    """A tiny food-review classifier; a memory embedding with it that holds its training rows;
    held-out food rows; hotel rows (a new task) and food rows with flipped labels."""
    space = memory_service  # the memory service's workspace: its artifact store
    work = tmp_path_factory.mktemp("continual")
    folder = classifier(work)
    model = space.store.commit_dir(
        folder, kind="model", name="tiny-food", metadata=metadata(folder), lineage=Lineage()
    )
    data = {
        "food_train": space.dataset(food(6), "food-train"),
        "food_eval": space.dataset(food(3, offset=50), "food-eval"),
        "hotel": space.dataset(hotel(8), "hotel"),
        "hotel_eval": space.dataset(hotel(3, offset=50), "hotel-eval"),
        "flipped": space.dataset(food(8, offset=100, flip=True), "food-flipped"),
        "one_row": space.dataset(pa.table({"text": ["good food"], "label": ["pos"]}), "one"),
        "maybe": space.dataset(pa.table({"text": ["a", "b"], "label": ["pos", "maybe"]}), "maybe"),
    }
    mem.memory.CreateMemory(
        pb.CreateMemoryRequest(name="reviews", embedding=pb.EmbeddingSource(model_id=model.id))
    )
    mem.memory.AddSamples(
        iter(
            [
                pb.AddSamplesRequest(
                    memory="reviews",
                    dataset=common_pb2.DatasetInput(dataset_id=data["food_train"].id),
                )
            ]
        )
    )
    mem.memory.CreateMemory(
        pb.CreateMemoryRequest(name="empty", embedding=pb.EmbeddingSource(model_id=model.id))
    )
    mem.memory.CreateMemory(
        pb.CreateMemoryRequest(name="raw-vectors", index=pb.IndexOptions(dimension=4))
    )
    return {"model": model, "space": space, **{k: v.id for k, v in data.items()}}


def request(world, **fields) -> pb.ContinualUpdateRequest:
    base = dict(
        memory="reviews",
        model_id=world["model"].id,
        new_data=common_pb2.DatasetInput(dataset_id=world["hotel"]),
        new_eval=common_pb2.DatasetInput(dataset_id=world["hotel_eval"]),
        task="hotel",
        old_tasks=[
            pb.TaskData(task="food", eval=common_pb2.DatasetInput(dataset_id=world["food_eval"]))
        ],
        selector=spec("all"),
        regularizer=spec("ewc", strength=100.0, online=True),
        hyper_parameters=common_pb2.HyperParameters(
            learning_rate=5e-3, epochs=10, batch_size_per_worker=16
        ),
        scaling=common_pb2.Scaling(num_workers=1, cpus_per_worker=1),
        max_forgetting=0.5,
    )
    base.update(fields)
    return pb.ContinualUpdateRequest(**{k: v for k, v in base.items() if v is not None})


def update(client, req) -> tuple[pb.ContinualUpdateResponse, str]:
    op = client.memory.ContinualUpdate(req)
    return wait_done(client, op, pb.ContinualUpdateResponse), op.name


@pytest.mark.slow
def test_an_update_is_promoted_then_a_forgetting_one_is_refused(mem, world):
    # The first update creates its memory, holding the food training rows.
    create = pb.CreateMemoryRequest(
        embedding=pb.EmbeddingSource(model_id=world["model"].id),
        dataset=common_pb2.DatasetInput(dataset_id=world["food_train"]),
    )
    first, name = update(mem, request(world, memory="journey", create_memory=create))
    assert first.promoted, first.reason
    assert first.previous_model_id == world["model"].id and first.model.id != world["model"].id
    scores = {t.task: t for t in first.tasks}
    assert list(scores) == ["food", "hotel"] and scores["hotel"].new
    assert scores["food"].examples == 30 and scores["hotel"].examples == 30
    assert first.forgetting == pytest.approx(max(0.0, scores["food"].before - scores["food"].after))
    assert first.new_task_accuracy == scores["hotel"].after
    assert first.new_task_accuracy > first.new_task_accuracy_before
    # Every new row was trained on, with as many memory samples replayed as the memory has.
    assert first.new_rows == first.selected_rows == 80 and first.replayed_rows == 60
    assert first.added_samples == 80
    assert [h.update for h in first.history] == [0, 1]
    assert first.history[0].model_id == world["model"].id
    assert dict(first.history[1].accuracy) == {
        "food": scores["food"].after,
        "hotel": first.new_task_accuracy,
    }
    memory = first.memory
    assert memory.samples == 140 and memory.model_id == first.model.id
    assert memory.updates == 1 and list(memory.tasks) == ["food", "hotel"]
    assert memory.sources[world["hotel"]] == 80
    folder = Path(first.model.uri.removeprefix("file://"))
    assert json.loads((folder / "regularizer" / "ewc.json").read_text())["tasks"] == 1
    events = mem.stream_events(name, follow=False)
    points = {p.name for e in events if e.HasField("metrics") for p in e.metrics.points}
    assert {"before/food", "before/hotel", "after/food", "after/hotel", "loss"} <= points

    # Chained from the memory's model: food with flipped labels, trained plainly, forgets the
    # food task the memory scores; the update is refused and the memory stays as it was.
    second, _ = update(
        mem,
        request(
            world,
            memory="journey",
            create_memory=create,  # ignored: the memory exists
            model_id="",
            new_data=common_pb2.DatasetInput(dataset_id=world["flipped"]),
            new_eval=None,
            task="food-flipped",
            old_tasks=[],
            selector=spec("confidence", threshold=0.9),  # keeps every row it gets wrong
            replay_ratio=0.0,
            regularizer=spec("ewc", strength=0.0, online=True),
            max_forgetting=0.0,
        ),
    )
    assert not second.promoted
    assert second.previous_model_id == first.model.id and second.model.id != first.model.id
    assert second.forgetting > 0 and "'food'" in second.reason and "max_forgetting" in second.reason
    assert [t.task for t in second.tasks] == ["food", "hotel", "food-flipped"]
    assert second.selected_rows == second.new_rows == 64  # 80 rows, 16 held out
    assert second.replayed_rows == 0 and second.added_samples == 0
    assert [h.update for h in second.history] == [0, 1, 2]
    assert [h.promoted for h in second.history] == [True, True, False]
    kept = second.tasks[0]
    assert second.backward_transfer == pytest.approx(
        ((kept.after - kept.learned) + (second.tasks[1].after - second.tasks[1].learned)) / 2
    )
    assert kept.learned == first.history[0].accuracy["food"]  # scored before it was updated on
    unchanged = mem.memory.GetMemoryStats(pb.GetMemoryStatsRequest(memory="journey")).memory
    assert unchanged.samples == 140 and unchanged.model_id == first.model.id
    assert unchanged.updates == 1 and list(unchanged.tasks) == ["food", "hotel"]
    # The refused model is kept for inspection; its EWC state summed the two updates' Fisher.
    refused = Path(second.model.uri.removeprefix("file://"))
    assert json.loads((refused / "regularizer" / "ewc.json").read_text())["tasks"] == 2


REFUSALS = {
    "unknown memory": (dict(memory="nope"), NotFound, "memory"),
    "memory without an embedding model": (
        dict(memory="raw-vectors"),
        FailedPrecondition,
        "NO_EMBEDDING_MODEL",
    ),
    "no model for a new memory": (dict(memory="empty", model_id=""), InvalidArgument, "model_id"),
    "unknown model": (dict(model_id="mdl_nope"), NotFound, "model_id"),
    "a dataset as the model": (dict(model_id="@hotel"), FailedPrecondition, "NOT_A_MODEL"),
    "no new data": (
        dict(new_data=common_pb2.DatasetInput()),
        InvalidArgument,
        "new_data.dataset_id",
    ),
    "labels the model does not know": (
        dict(new_data="@maybe"),
        InvalidArgument,
        "new_data.label_column",
    ),
    "too few rows to hold out": (
        dict(new_data="@one_row", new_eval=None),
        InvalidArgument,
        "new_data.dataset_id",
    ),
    "holdout out of range": (
        dict(new_eval=None, holdout_fraction=0.7),
        InvalidArgument,
        "holdout_fraction",
    ),
    "threshold out of range": (
        dict(selector=spec("confidence", threshold=1.5)),
        InvalidArgument,
        "selector.config.threshold",
    ),
    "unknown selector": (dict(selector=spec("psychic")), InvalidArgument, "selector.name"),
    "unknown sampler": (dict(replay_sampler=spec("zz")), InvalidArgument, "replay_sampler.name"),
    "negative replay": (dict(replay_ratio=-1.0), InvalidArgument, "replay_ratio"),
    "forgetting bound over 1": (dict(max_forgetting=1.5), InvalidArgument, "max_forgetting"),
    "ewc on an empty memory": (dict(memory="empty"), FailedPrecondition, "EMPTY_MEMORY"),
    "an old task named as the new one": (
        dict(
            old_tasks=[
                pb.TaskData(
                    task="hotel-again", eval=common_pb2.DatasetInput(dataset_id="@food_eval")
                )
            ]
        ),
        InvalidArgument,
        "old_tasks[0].task",
    ),
    "a memory to create without an embedding model": (
        dict(
            memory="fresh",
            create_memory=pb.CreateMemoryRequest(index=pb.IndexOptions(dimension=4)),
        ),
        FailedPrecondition,
        "create_memory.embedding",
    ),
    "a memory to create with a bad name": (
        dict(
            memory="Fresh Memory",
            create_memory=pb.CreateMemoryRequest(embedding=pb.EmbeddingSource(builtin="x")),
        ),
        InvalidArgument,
        "create_memory.name",
    ),
    "negative learning rate": (
        dict(hyper_parameters=common_pb2.HyperParameters(learning_rate=-1.0)),
        InvalidArgument,
        "hyper_parameters.learning_rate",
    ),
    "weight decay over 1": (
        dict(hyper_parameters=common_pb2.HyperParameters(weight_decay=2.0)),
        InvalidArgument,
        "hyper_parameters.weight_decay",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_bad_update_is_refused_naming_the_field(case, mem, world):
    changes, error, named = REFUSALS[case]

    def resolve(value):
        if isinstance(value, str) and value.startswith("@"):
            return world[value[1:]]
        return value

    fields = {"task": "hotel-again"}
    for key, value in changes.items():
        if key == "new_data" and isinstance(value, str):
            value = common_pb2.DatasetInput(dataset_id=resolve(value))
        elif key == "old_tasks":
            for t in value:
                t.eval.dataset_id = resolve(t.eval.dataset_id)
        fields[key] = resolve(value)
    before = mem.memory.GetMemoryStats(pb.GetMemoryStatsRequest(memory="reviews")).memory
    with pytest.raises(error) as err:
        mem.memory.ContinualUpdate(request(world, **fields))
    assert named in str(err.value) or named == getattr(err.value, "reason", None)
    after = mem.memory.GetMemoryStats(pb.GetMemoryStatsRequest(memory="reviews")).memory
    assert after == before
