"""`forgeline compress` against a real compression service."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO


def cli(compression, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "FORGELINE_ADDRESSES": json.dumps({"compression": compression.service.address}),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "forgeline", "compress", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )


def test_compress_prints_each_step_against_the_original(compression, models):
    done = cli(
        compression, "tiny-full", "--eval", models.eval.id, "-c", "dynamic_int8",
        "-c", 'onnx_export={"quantize": false}', "--budget", "0.05",
    )  # fmt: skip
    # dynamic_int8 writes hf_int8, which onnx_export does not take: refused before any work.
    assert done.returncode == 1
    assert "compressors[1].name" in done.stderr and "INVALID_ARGUMENT" in done.stderr

    done = cli(
        compression, "tiny-full", "--eval", models.eval.id, "-c", "dynamic_int8",
        "--metric", "f1_macro", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    response = json.loads(done.stdout)
    assert response["steps"][0]["outcome"] == "STEP_OUTCOME_KEPT"
    assert response["budget_metric"] == "f1_macro"

    shown = cli(compression, models.full.id, "--eval", "eval", "-c", "dynamic_int8")
    assert shown.returncode == 0, shown.stderr
    assert "1 dynamic_int8" in shown.stdout and "hf_int8" in shown.stdout
    assert "original" in shown.stdout and "budget 1.00" in shown.stdout
