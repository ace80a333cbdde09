"""The `forgeline` CLI against a real data service process, as a person would use it."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.cli_runner import forgeline
from tests.conftest import ServiceProcess


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    home = tmp_path_factory.mktemp("cli-home")
    root = tmp_path_factory.mktemp("cli-root")
    process = ServiceProcess("data", home, [root]).start()
    yield process, root
    assert process.terminate() == 0


def cli(service, *args: str) -> subprocess.CompletedProcess:
    process, _ = service
    return forgeline({"data": process.address}, *args, timeout=120)


def test_ingest_clean_split_profile_list(service):
    _, root = service
    lines = [f"review number {i % 40}\t{i % 2}" for i in range(100)]
    (root / "reviews.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")

    ingested = cli(
        service,
        "data",
        "ingest",
        str(root / "reviews.txt"),
        "--json",
        "--loader",
        'txt={"delimiter": "\\t", "label_type": "int"}',
    )
    assert ingested.returncode == 0, ingested.stderr
    dataset = json.loads(ingested.stdout)
    assert dataset["numRows"] == "100" and dataset["labelColumn"] == "label"

    cleaned = cli(
        service,
        "data",
        "clean",
        "reviews",
        "--cleaner",
        "normalize_text",
        "--cleaner",
        "dedup_exact",
    )
    assert cleaned.returncode == 0, cleaned.stderr
    assert "dedup_exact" in cleaned.stdout and "reviews v2  40 rows" in cleaned.stdout

    split = cli(
        service,
        "data",
        "split",
        "reviews",
        "--train",
        "0.5",
        "--validation",
        "0.5",
        "--test",
        "0",
        "--seed",
        "3",
    )
    assert split.returncode == 0, split.stderr
    assert "reviews-train v1  20 rows" in split.stdout
    assert "reviews-validation v1  20 rows" in split.stdout

    profile = cli(service, "data", "profile", "reviews", "--json")
    assert profile.returncode == 0, profile.stderr
    assert json.loads(profile.stdout)["labelCounts"] == {"0": "20", "1": "20"}

    listed = cli(service, "data", "list", "--json")
    names = sorted(d["name"] for d in json.loads(listed.stdout)["datasets"])
    assert names == ["reviews", "reviews", "reviews-train", "reviews-validation"]

    head = cli(service, "data", "head", "reviews", "-n", "2")
    assert [json.loads(line)["text"] for line in head.stdout.splitlines()] == [
        "review number 0",
        "review number 1",
    ]


def test_errors_exit_nonzero_and_name_the_field(service):
    bad = cli(service, "data", "clean", "no-such-dataset", "--cleaner", "dedup_exact")
    assert bad.returncode == 1
    assert "NOT_FOUND" in bad.stderr and "no-such-dataset" in bad.stderr
    _, root = service
    (root / "x.txt").write_text("a\n")
    config = cli(service, "data", "ingest", str(root / "x.txt"), "--loader", 'txt={"nope": 1}')
    assert config.returncode == 1
    assert "loader.config.nope" in config.stderr


def test_plugins_list_shows_every_builtin_with_its_package(service):
    listed = cli(service, "plugins", "list")
    assert listed.returncode == 0, listed.stderr
    for name in (
        "csv",
        "hf_disk",
        "http",
        "normalize_text",
        "dedup_near",
        "segment_zh",
        "synonym_replace",
    ):
        assert name in listed.stdout
    assert "forgeline==0.1.0" in listed.stdout
