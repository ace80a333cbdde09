"""The baseline contract, over every baseline to certify (fixture ``baselines_plugin``).

Running this suite certifies a baseline: it is found through its entry point, exactly as the
training service finds it; it does what its declared task asks (classification: one of the given
labels for every eval text, learning what is plainly learnable; summarization: a non-empty
summary of every eval text, in English and Chinese); and what it stores is not a pickle and stays
inside its output_dir. A baseline whose defaults cannot run overrides the ``contract_config``
classmethod.
"""

from __future__ import annotations

import json
import os
import pickletools

import pytest

from forgeline.contracts.baselines import CLASSIFICATION, BaselineContext, BaselineResult
from forgeline.registry import config_schema, contract_problem
from forgeline.testing.selection import contract_instance
from forgeline.text_units import words

__all__ = [
    "test_fulfils_the_kernel_contract",
    "test_config_schema_is_json_with_every_field_described",
    "test_does_what_its_task_asks_and_writes_only_into_its_output_dir",
    "test_stops_when_cancelled",
    "test_a_stored_model_predicts_what_the_fitted_one_did",
]

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


def topics(copies: int, offset: int = 0) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for i in range(copies):
        for label, phrases in WORDS.items():
            texts.append(f"{phrases[(i + offset) % len(phrases)]} today")
            labels.append(label)
    return texts, labels


def test_fulfils_the_kernel_contract(baselines_plugin):
    assert contract_problem("baselines", baselines_plugin.name, baselines_plugin) is None
    assert baselines_plugin.description(), "the docstring's first paragraph is its description"


def test_config_schema_is_json_with_every_field_described(baselines_plugin):
    schema = json.loads(json.dumps(config_schema(baselines_plugin)))
    assert schema["type"] == "object"
    for name, prop in schema.get("properties", {}).items():
        assert prop.get("description"), f"config field {name!r} has no description"
    with pytest.raises(ValueError):
        baselines_plugin.Config.model_validate({"no_such_field": 1})


DOCUMENTS = [
    "The appellant was the tenant of a flat in Bombay. He received Rs. 30,000 from the "
    "complainant. The police laid a trap for him. The High Court convicted him under sec. 19 of "
    "the Act. He appealed to this Court against the conviction.",
    "本文研究了飞行器姿态控制问题。提出了一种基于平方和方法的控制器设计方法。仿真结果表明该方法"
    "有效。控制器具有较快的响应速度。",
]
SUMMARIES = ["The conviction of the tenant was set aside.", "一种飞行器姿态控制器设计方法"]


def test_does_what_its_task_asks_and_writes_only_into_its_output_dir(
    baselines_plugin, tmp_path, forgeline_empty_cwd
):
    output = tmp_path / "model"
    output.mkdir()
    baseline = contract_instance(baselines_plugin)
    if baselines_plugin.task == CLASSIFICATION:
        result = _learns_three_plain_topics(baseline, output)
    else:
        result = _summarizes_every_document(baseline, output)
    assert result.seconds >= 0
    assert not os.listdir(forgeline_empty_cwd), (
        f"wrote into the current directory: {os.listdir(forgeline_empty_cwd)}"
    )
    stored = [p for p in output.rglob("*") if p.is_file()]
    if result.model_format:
        assert stored, "model_format is set but output_dir is empty"
    for path in stored:
        assert path.suffix not in PICKLE_SUFFIXES, f"{path.name}: store models without pickle"
        assert not is_pickle(path.read_bytes()), f"{path.name} is a pickle"


def _learns_three_plain_topics(baseline, output) -> BaselineResult:
    """Classification: only known labels, and what is plainly learnable learned."""
    train_x, train_y = topics(10)
    eval_x, eval_y = topics(4, offset=2)
    labels = tuple(sorted(WORDS))
    result = baseline.fit_predict(
        train_x, train_y, eval_x, BaselineContext(labels=labels, output_dir=output)
    )
    assert len(result.predictions) == len(eval_x)
    assert set(result.predictions) <= set(labels)
    correct = sum(p == t for p, t in zip(result.predictions, eval_y, strict=True))
    assert correct / len(eval_y) >= 0.9, result.predictions
    return result


def _summarizes_every_document(baseline, output) -> BaselineResult:
    """Summarization: a non-empty summary per document, in the document's own words (the
    reference summaries are the train labels; an extractive baseline may ignore them)."""
    result = baseline.fit_predict(
        DOCUMENTS, SUMMARIES, DOCUMENTS, BaselineContext(output_dir=output)
    )
    assert len(result.predictions) == len(DOCUMENTS)
    for summary, document in zip(result.predictions, DOCUMENTS, strict=True):
        assert isinstance(summary, str) and summary.strip(), "an empty summary"
        assert len(summary) < len(document), "a summary shorter than its document"
        assert set(words(summary)) <= set(words(document)) | set(words(" ".join(SUMMARIES)))
    return result


def test_stops_when_cancelled(baselines_plugin):
    class Stop(Exception):
        pass

    def cancel() -> None:
        raise Stop

    train_x, train_y = topics(3)
    labels = tuple(sorted(WORDS))
    if baselines_plugin.task != CLASSIFICATION:
        train_x, train_y, labels = DOCUMENTS, SUMMARIES, ()
    with pytest.raises(Stop):
        contract_instance(baselines_plugin).fit_predict(
            train_x,
            train_y,
            train_x,
            BaselineContext(labels=labels, check_cancelled=cancel),
        )


def test_a_stored_model_predicts_what_the_fitted_one_did(baselines_plugin, tmp_path):
    """EvaluateModel scores a stored baseline model through ``predict_saved``: rebuilt from its
    files (by an instance that did not fit it), it must answer as the fitted model did."""
    train_x, train_y = topics(10)
    eval_x, _ = topics(4, offset=2)
    labels = tuple(sorted(WORDS))
    if baselines_plugin.task != CLASSIFICATION:
        train_x, train_y, eval_x, labels = DOCUMENTS, SUMMARIES, DOCUMENTS, ()
    output = tmp_path / "model"
    output.mkdir()
    context = BaselineContext(labels=labels, output_dir=output)
    result = contract_instance(baselines_plugin).fit_predict(train_x, train_y, eval_x, context)
    if not result.model_format:  # nothing stored: the contract's default refuses
        with pytest.raises(NotImplementedError):
            contract_instance(baselines_plugin).predict_saved(output, eval_x)
        return
    assert contract_instance(baselines_plugin).predict_saved(output, eval_x) == result.predictions
