"""Continual learning on real data: the bundled MiniLM fine-tuned on the UCI amazon sentences,
then updated by the memory service on the imdb sentences, three ways, each from the same model
and a memory holding the amazon training rows: naive fine-tuning (no replay, no regularizer),
replay, and replay + EWC. Every update keeps the new rows the model is unsure or wrong about
(the confidence selector), as a deployed update would.

Goal (issue 7): the amazon task's forgetting with replay + EWC at most half of naive
fine-tuning's, with imdb accuracy no more than 2 points below naive's. Replay alone is only
reported: it runs with FORGELINE_E2E_ALL=1. Skipped where ../shared/data is absent. `pytest -s`
prints the table; FORGELINE_WRITE_RESULTS=1 also writes it to
benchmarks/results/continual_quality.json.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import pyarrow as pa
import pytest

from forgeline.artifacts import Lineage
from forgeline.client import Client
from forgeline.convert import struct
from forgeline.v1 import common_pb2
from forgeline.v1 import memory_service_pb2 as pb
from tests.conftest import E2E_ALL, REPO, ServiceThread, make_settings, shared_data
from tests.fixtures import Workspace
from tests.waiting import wait_done

# No fixed limit: how long these runs take depends on the machine's load; every long wait
# here is tests.waiting's, which fails once a run stops making progress.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(0)]

SEED = 7
TRAIN_ROWS, EVAL_ROWS = 600, 200
HYPER = dict(
    learning_rate=5e-5,
    epochs=3,
    batch_size_per_worker=16,
    max_sequence_length=64,
    # Not group_by_length: with it (tried once, 2026-11-29) naive fine-tuning forgot nothing on
    # this split (amazon 0.865 > 0.880), leaving replay and EWC nothing to show.
)

METHODS = {
    "naive": dict(replay_ratio=0.0, regularizer="none"),
    "replay": dict(replay_ratio=1.0, regularizer="none"),
    "replay_ewc": dict(replay_ratio=1.0, regularizer="ewc"),
}
JUDGED = ("naive", "replay_ewc")
EWC = {"strength": 10.0, "fisher_samples": 128}


def sentences(relative: str) -> tuple[pa.Table, pa.Table]:
    rows = []
    for line in shared_data(relative).read_text(encoding="utf-8", errors="replace").splitlines():
        text, sep, label = line.rpartition("\t")
        if sep and label.strip() in ("0", "1") and text.strip():
            rows.append((text.strip(), label.strip()))
    random.Random(SEED).shuffle(rows)

    def table(part):
        return pa.table({"text": [t for t, _ in part], "label": [y for _, y in part]})

    return table(rows[:TRAIN_ROWS]), table(rows[TRAIN_ROWS : TRAIN_ROWS + EVAL_ROWS])


def sentiment_model(work: Path, train: pa.Table) -> Path:
    """MiniLM fine-tuned on the amazon training rows, in this process."""
    import pyarrow.parquet as pq

    from forgeline.finetune.recipe import RecipeConfig, run_recipe
    from forgeline.finetune.sessions import LocalSession
    from forgeline.models import builtin_path

    pq.write_table(train, work / "amazon.parquet")
    out = work / "amazon-model"
    run_recipe(
        RecipeConfig(
            model_path=str(builtin_path("minilm-l6")),
            train_path=str(work / "amazon.parquet"),
            labels=["0", "1"],
            learning_rate=5e-5,
            batch_size=16,
            epochs=2,
            max_length=64,
            seed=SEED,
            output_dir=str(out),
        ),
        LocalSession(),
    )
    return out


@pytest.fixture(scope="module")
def memory(ray_local, tmp_path_factory):
    pytest.importorskip("faiss")
    home = tmp_path_factory.mktemp("continual-home")
    service = ServiceThread("memory", make_settings(home, [home])).start()
    yield Workspace(home, service)
    service.stop()


def test_replay_and_ewc_forget_less_than_naive_fine_tuning(memory, tmp_path_factory):
    amazon_train, amazon_eval = sentences("en/amazon_cells_labelled.txt")
    imdb_train, imdb_eval = sentences("en/imdb_labelled.txt")
    space = memory
    work = tmp_path_factory.mktemp("continual-e2e")
    started = time.monotonic()
    folder = sentiment_model(work, amazon_train)
    model = space.store.commit_dir(
        folder,
        kind="model",
        name="minilm-amazon",
        metadata={"format": "hf", "task": "sequence_classification", "labels": ["0", "1"]},
        lineage=Lineage(),
    )
    base_seconds = time.monotonic() - started
    ids = {
        name: space.dataset(table, name).id
        for name, table in (
            ("amazon-train", amazon_train),
            ("amazon-eval", amazon_eval),
            ("imdb-train", imdb_train),
            ("imdb-eval", imdb_eval),
        )
    }
    results = {}
    began = time.monotonic()
    with Client(memory.service.address) as client:
        client.wait_ready()
        operations = {}
        for method, options in METHODS.items():  # they run at once, a CPU each
            if method not in JUDGED and not E2E_ALL:
                continue
            config = EWC if options["regularizer"] == "ewc" else {}
            operations[method] = client.memory.ContinualUpdate(
                pb.ContinualUpdateRequest(
                    memory=f"sentiment-{method.replace('_', '-')}",
                    create_memory=pb.CreateMemoryRequest(
                        embedding=pb.EmbeddingSource(builtin="minilm-l6"),
                        dataset=common_pb2.DatasetInput(dataset_id=ids["amazon-train"]),
                    ),
                    model_id=model.id,
                    new_data=common_pb2.DatasetInput(dataset_id=ids["imdb-train"]),
                    new_eval=common_pb2.DatasetInput(dataset_id=ids["imdb-eval"]),
                    task="imdb",
                    old_tasks=[
                        pb.TaskData(
                            task="amazon",
                            eval=common_pb2.DatasetInput(dataset_id=ids["amazon-eval"]),
                        )
                    ],
                    selector=common_pb2.PluginSpec(name="confidence"),
                    replay_ratio=options["replay_ratio"],
                    regularizer=common_pb2.PluginSpec(
                        name=options["regularizer"], config=struct(config)
                    ),
                    hyper_parameters=common_pb2.HyperParameters(seed=SEED, **HYPER),
                    scaling=common_pb2.Scaling(num_workers=1, cpus_per_worker=1),
                    max_forgetting=0.02,
                )
            )
        for method, op in operations.items():
            r = wait_done(client, op, pb.ContinualUpdateResponse)
            amazon = next(t for t in r.tasks if t.task == "amazon")
            results[method] = {
                "amazon_before": amazon.before,
                "amazon_after": amazon.after,
                "forgetting": r.forgetting,
                "imdb_before": r.new_task_accuracy_before,
                "imdb_after": r.new_task_accuracy,
                "backward_transfer": r.backward_transfer,
                "selected_rows": r.selected_rows,
                "replayed_rows": r.replayed_rows,
                "promoted": r.promoted,
                "seconds": round(r.seconds, 1),
            }
            assert r.promoted == (r.forgetting <= 0.02 + 1e-9), r.reason

    print(f"\nbase model: {base_seconds:.0f} s, updates: {time.monotonic() - began:.0f} s")
    print(f"{'method':<12}{'amazon':>16}{'forgetting':>12}{'imdb':>16}{'rows':>10}{'promoted':>10}")
    for method, m in results.items():
        print(
            f"{method:<12}{m['amazon_before']:>8.3f}>{m['amazon_after']:.3f}"
            f"{m['forgetting']:>12.3f}{m['imdb_before']:>8.3f}>{m['imdb_after']:.3f}"
            f"{m['selected_rows']:>5}+{m['replayed_rows']:<4}{m['promoted']!s:>10}"
        )
    naive, best = results["naive"], results["replay_ewc"]
    goals = {
        "naive fine-tuning forgets (else there is nothing to compare)": naive["forgetting"] > 0,
        "forgetting(replay + EWC) <= 0.5 x naive": best["forgetting"] <= 0.5 * naive["forgetting"],
        "imdb accuracy(replay + EWC) >= naive - 2 points": best["imdb_after"]
        >= naive["imdb_after"] - 0.02,
    }
    if os.environ.get("FORGELINE_WRITE_RESULTS"):
        out = REPO / "benchmarks" / "results" / "continual_quality.json"
        out.write_text(
            json.dumps(
                {
                    "benchmark": "continual_quality",
                    "data": "UCI sentiment sentences: amazon then imdb",
                    "rows": {"train": TRAIN_ROWS, "eval": EVAL_ROWS},
                    "hyper_parameters": HYPER,
                    "ewc": EWC,
                    "results": results,
                    "goals": goals,
                },
                indent=2,
            )
            + "\n"
        )
    assert all(goals.values()), (goals, results)
