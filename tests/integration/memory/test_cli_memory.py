"""`forgeline memory ...` against a real memory service: a memory whose texts a tiny encoder
artifact embeds, filled, searched, replayed and pruned from the command line, and bad input
named."""

from __future__ import annotations

import json

import pytest

from forgeline.artifacts import ArtifactStore, Lineage
from forgeline.testing.classifiers import base_model
from tests.cli_runner import forgeline


@pytest.fixture(scope="module")
def encoder(memory_service, tmp_path_factory) -> str:
    store = ArtifactStore(memory_service.home / "artifacts")
    try:
        return store.commit_dir(
            base_model(tmp_path_factory.mktemp("cli-encoder") / "encoder"),
            kind="model",
            name="cli-encoder",
            metadata={"format": "hf", "task": ""},
            lineage=Lineage(),
        ).id
    finally:
        store.close()


def cli(memory_service, *args: str):
    return forgeline({"memory": memory_service.service.address}, "memory", *args)


def test_a_memory_is_filled_searched_replayed_and_pruned(memory_service, mem, encoder):
    created = cli(memory_service, "create", "cli-notes", "--embedding-model", encoder)
    assert created.returncode == 0, created.stderr
    assert "cli-notes" in created.stdout and "dimension 32" in created.stdout

    good = cli(memory_service, "add", "cli-notes", "good food", "fresh and tasty", "--label", "pos")
    bad = cli(memory_service, "add", "cli-notes", "cold soup", "--label", "neg", "--json")
    assert good.returncode == 0 and bad.returncode == 0, good.stderr + bad.stderr
    assert "added 2 samples: ids 1, 2" in good.stdout
    assert json.loads(bad.stdout)["ids"] == ["3"]

    found = cli(memory_service, "search", "cli-notes", "good food", "-k", "2", "--json")
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)["hits"]
    assert len(hits) == 2 and hits[0]["sample"]["text"] == "good food"
    only_neg = cli(memory_service, "search", "cli-notes", "food", "--filter", '{"label": "neg"}')
    assert only_neg.returncode == 0 and "cold soup" in only_neg.stdout
    assert "good food" not in only_neg.stdout

    replayed = cli(memory_service, "replay", "cli-notes", "-k", "5", "--json")
    assert len(json.loads(replayed.stdout)["samples"]) == 3

    deleted = cli(memory_service, "delete", "cli-notes", "--filter", '{"label": "neg"}')
    assert deleted.returncode == 0 and "deleted 1" in deleted.stdout
    stats = json.loads(cli(memory_service, "stats", "cli-notes", "--json").stdout)
    assert (stats["samples"], stats["labels"]) == ("2", {"pos": "2"})
    listed = cli(memory_service, "list")
    assert listed.returncode == 0 and "cli-notes" in listed.stdout


def test_bad_input_is_refused_naming_the_field(memory_service, mem):
    bad_name = cli(memory_service, "create", "Not OK", "--dimension", "4")
    assert bad_name.returncode == 1
    assert bad_name.stderr.count("INVALID_ARGUMENT") == 1 and "  - name: " in bad_name.stderr

    bad_filter = cli(memory_service, "search", "cli-notes", "x", "--filter", "{label: pos}")
    assert bad_filter.returncode == 1 and "--filter: not JSON" in bad_filter.stderr

    old_task = cli(memory_service, "update", "cli-notes", "new-rows", "--old-task", "food")
    assert old_task.returncode == 1 and "--old-task[0]: write TASK=DATASET" in old_task.stderr

    missing = cli(memory_service, "stats", "no-such-memory")
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
    assert "Traceback" not in missing.stderr + bad_filter.stderr + bad_name.stderr
