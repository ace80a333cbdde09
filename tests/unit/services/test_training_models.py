"""Models built from a config: the same texts and seed give the same tokenizer and weights in
every process (the training service promises determinism under a seed)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

BUILD = """
import sys, torch
from pathlib import Path
from forgeline.finetune.build import build_from_config
from forgeline.finetune.planning import model_config_fields
from tests.fixtures import TINY_BERT, reviews
torch.manual_seed(3)
texts = reviews(8).column("text").to_pylist() + ["好吃 不错", "太咸了"]
config = model_config_fields("bert", TINY_BERT)
build_from_config("bert", config, iter(texts), 120, Path(sys.argv[1]))
"""


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.timeout(120)
def test_bert_from_config_is_the_same_in_every_process(tmp_path):
    repo = Path(__file__).resolve().parents[3]
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        subprocess.run(
            [sys.executable, "-c", BUILD, str(folder)], cwd=repo, check=True, capture_output=True
        )
    vocabs = [json.loads((f / "tokenizer.json").read_text())["model"]["vocab"] for f in folders]
    assert vocabs[0] == vocabs[1]
    assert vocabs[0]["[PAD]"] == 0 and "好" in vocabs[0]  # CJK characters are tokens of their own
    assert digest(folders[0] / "model.safetensors") == digest(folders[1] / "model.safetensors")
