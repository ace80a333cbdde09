"""Every installed baseline, forgeline's own and third parties', against the baseline contract.

Running this suite certifies a baseline: it is found through its entry point, exactly as the
training service finds it; it predicts one of the given labels for every eval text and learns
what is plainly learnable; and what it stores is not a pickle and stays inside its output_dir.
A baseline whose defaults cannot run overrides the ``contract_config`` classmethod.
"""

from __future__ import annotations

import json
import os
import pickletools
from pathlib import Path

import pytest

from forgeline.contracts.baselines import Baseline, BaselineContext
from forgeline.registry import PluginRegistry, config_schema, contract_problem

REGISTRY = PluginRegistry()
NAMES = [entry.name for entry in REGISTRY.discover("baselines")]
WORDS = {
    "sport": ["football match", "tennis final", "goal scored", "league table", "team coach"],
    "food": ["fresh bread", "spicy noodles", "sweet cake", "hot soup", "ripe fruit"],
    "weather": ["heavy rain", "sunny morning", "cold wind", "snow storm", "warm breeze"],
}
PICKLE_SUFFIXES = {".pkl", ".pickle", ".joblib", ".bin", ".pt", ".pth"}


def is_pickle(data: bytes) -> bool:
    """Whether ``data`` is one whole pickle (protocol 2+): a valid opcode stream ending in STOP."""
    if not data.startswith(b"\x80"):
        return False
    try:
        ops = list(pickletools.genops(data))
    except Exception:
        return False
    return bool(ops) and ops[-1][0].name == "STOP" and ops[-1][2] == len(data) - 1


def make(cls: type[Baseline]) -> Baseline:
    config = cls.contract_config()
    return cls(cls.Config.model_validate(config) if config is not None else None)


def topics(copies: int, offset: int = 0) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for i in range(copies):
        for label, phrases in WORDS.items():
            texts.append(f"{phrases[(i + offset) % len(phrases)]} today")
            labels.append(label)
    return texts, labels


@pytest.fixture(params=NAMES)
def baseline_cls(request) -> type[Baseline]:
    return REGISTRY.get("baselines", request.param)


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """An empty current directory: a baseline must write only into its output_dir."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def test_there_are_baselines_to_certify():
    assert "tfidf_logreg" in NAMES


def test_fulfils_the_kernel_contract(baseline_cls):
    assert contract_problem("baselines", baseline_cls.name, baseline_cls) is None
    assert baseline_cls.description(), "the docstring's first paragraph is its description"


def test_config_schema_is_json_with_every_field_described(baseline_cls):
    schema = json.loads(json.dumps(config_schema(baseline_cls)))
    assert schema["type"] == "object"
    for name, prop in schema.get("properties", {}).items():
        assert prop.get("description"), f"config field {name!r} has no description"
    with pytest.raises(ValueError):
        baseline_cls.Config.model_validate({"no_such_field": 1})


def test_learns_three_plain_topics_and_predicts_only_known_labels(baseline_cls, tmp_path, workdir):
    train_x, train_y = topics(10)
    eval_x, eval_y = topics(4, offset=2)
    labels = tuple(sorted(WORDS))
    output = tmp_path / "model"
    output.mkdir()
    result = make(baseline_cls).fit_predict(
        train_x, train_y, eval_x, BaselineContext(labels=labels, output_dir=output)
    )
    assert len(result.predictions) == len(eval_x)
    assert set(result.predictions) <= set(labels)
    correct = sum(p == t for p, t in zip(result.predictions, eval_y, strict=True))
    assert correct / len(eval_y) >= 0.9, result.predictions
    assert result.seconds >= 0
    assert not os.listdir(workdir), f"wrote into the current directory: {os.listdir(workdir)}"
    stored = [p for p in output.rglob("*") if p.is_file()]
    if result.model_format:
        assert stored, "model_format is set but output_dir is empty"
    for path in stored:
        assert path.suffix not in PICKLE_SUFFIXES, f"{path.name}: store models without pickle"
        assert not is_pickle(path.read_bytes()), f"{path.name} is a pickle"


def test_stops_when_cancelled(baseline_cls):
    class Stop(Exception):
        pass

    def cancel() -> None:
        raise Stop

    train_x, train_y = topics(3)
    with pytest.raises(Stop):
        make(baseline_cls).fit_predict(
            train_x,
            train_y,
            train_x,
            BaselineContext(labels=tuple(sorted(WORDS)), check_cancelled=cancel),
        )


def test_a_stored_model_predicts_what_the_fitted_one_did(baseline_cls, tmp_path):
    """EvaluateModel scores a stored baseline model through ``predict_saved``: rebuilt from its
    files (by an instance that did not fit it), it must answer as the fitted model did."""
    train_x, train_y = topics(10)
    eval_x, _ = topics(4, offset=2)
    output = tmp_path / "model"
    output.mkdir()
    context = BaselineContext(labels=tuple(sorted(WORDS)), output_dir=output)
    result = make(baseline_cls).fit_predict(train_x, train_y, eval_x, context)
    if not result.model_format:  # nothing stored: the contract's default refuses
        with pytest.raises(NotImplementedError):
            make(baseline_cls).predict_saved(output, eval_x)
        return
    assert make(baseline_cls).predict_saved(output, eval_x) == result.predictions
