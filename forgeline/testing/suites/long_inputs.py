"""The long_inputs contract, over every strategy to certify (fixture ``long_inputs_plugin``).

Running this suite certifies a strategy: it is found through its entry point, exactly as the
training service finds it; a text that fits is kept whole; a longer one is shortened within the
budget to the document's own words, saying what it kept; generating never hands the model an
input over the budget and accounts for every call; and a budget below one token is refused.
Token counters are the callers' (any tokenizer); the suite uses words for English and characters
for Chinese, each plus one (a start token), so counts do not add up, as real tokenizers' do not.
"""

from __future__ import annotations

import json
import re

import pytest

from forgeline.errors import InvalidArgument
from forgeline.registry import config_schema, contract_problem
from forgeline.testing.selection import contract_instance
from forgeline.text_units import words

__all__ = [
    "test_fulfils_the_kernel_contract",
    "test_config_schema_is_json_with_every_field_described",
    "test_a_text_that_fits_is_kept_whole",
    "test_a_long_text_is_shortened_within_the_budget_to_its_own_words",
    "test_generating_never_exceeds_the_budget_and_accounts_for_every_call",
    "test_refuses_a_budget_below_one_token",
]

TOPICS = ["rent", "tenancy", "appeal", "court", "flat", "police", "trap", "money", "keys"]


def english_document(sentences: int = 60) -> str:
    """A judgment-like English text: numbered paragraphs, abbreviations, recurring topics."""
    lines = []
    for i in range(sentences):
        a, b = TOPICS[i % len(TOPICS)], TOPICS[(i * 5 + 2) % len(TOPICS)]
        lines.append(f"In Appeal No. {i} the {a} and the {b} were considered by Mr. Sen at length.")
        if i % 10 == 9:
            lines.append("")
    return "\n".join(lines)


def chinese_document(sentences: int = 40) -> str:
    parts = ["本文研究了飞行器姿态控制问题。", "仿真结果表明方法有效！", "控制器收敛速度如何？"]
    return "".join(f"第{i}段" + parts[i % 3] for i in range(sentences))


def english_tokens(text: str) -> int:
    return len(text.split()) + 1


def chinese_tokens(text: str) -> int:
    return len(re.sub(r"\s", "", text)) + 1


CASES = [
    pytest.param(english_document, english_tokens, id="english"),
    pytest.param(chinese_document, chinese_tokens, id="chinese"),
]


def summarize(texts: list[str]) -> list[str]:
    """A stand-in model: the first few words (characters, for Chinese) of each input."""
    return [" ".join(t.split()[:6]) if " " in t else t[:8] for t in texts]


def test_fulfils_the_kernel_contract(long_inputs_plugin):
    cls = long_inputs_plugin
    assert contract_problem("long_inputs", cls.name, cls) is None
    assert cls.description(), "the docstring's first paragraph is its description"


def test_config_schema_is_json_with_every_field_described(long_inputs_plugin):
    schema = json.loads(json.dumps(config_schema(long_inputs_plugin)))
    assert schema["type"] == "object"
    for name, prop in schema.get("properties", {}).items():
        assert prop.get("description"), f"config field {name!r} has no description"
    with pytest.raises(ValueError):
        long_inputs_plugin.Config.model_validate({"no_such_field": 1})


@pytest.mark.parametrize(("document", "count"), CASES)
def test_a_text_that_fits_is_kept_whole(long_inputs_plugin, document, count):
    text = document(5)
    shortened = contract_instance(long_inputs_plugin).shorten(text, count(text), count)
    assert shortened.text == text
    assert shortened.kept_tokens == shortened.total_tokens == count(text)


@pytest.mark.parametrize("budget", [3, 40, 300])
@pytest.mark.parametrize(("document", "count"), CASES)
def test_a_long_text_is_shortened_within_the_budget_to_its_own_words(
    long_inputs_plugin, document, count, budget
):
    text = document()
    shortened = contract_instance(long_inputs_plugin).shorten(text, budget, count)
    assert shortened.text, "something of the document is kept"
    assert count(shortened.text) <= budget
    assert shortened.kept_tokens == count(shortened.text)
    assert shortened.total_tokens == count(text) > shortened.kept_tokens
    assert set(words(shortened.text)) <= set(words(text)), "only the document's own words"
    assert shortened.details, "the details say what was kept"
    json.dumps(shortened.details)


@pytest.mark.parametrize("budget", [3, 40, 300])
@pytest.mark.parametrize(("document", "count"), CASES)
def test_generating_never_exceeds_the_budget_and_accounts_for_every_call(
    long_inputs_plugin, document, count, budget
):
    text = document()
    calls: list[list[str]] = []

    def generate_batch(texts: list[str]) -> list[str]:
        calls.append(list(texts))
        return summarize(texts)

    result = contract_instance(long_inputs_plugin).generate(text, budget, count, generate_batch)
    assert calls, "generate_batch was called"
    for batch in calls:
        for model_input in batch:
            assert count(model_input) <= budget, "an input over the budget reached the model"
    assert result.text == summarize(calls[-1])[-1], "the output is the last generation's"
    assert result.calls == len(calls)
    assert result.inputs == sum(len(batch) for batch in calls)
    json.dumps(result.details)


def test_refuses_a_budget_below_one_token(long_inputs_plugin):
    strategy = contract_instance(long_inputs_plugin)
    for budget in (0, -5):
        with pytest.raises(InvalidArgument) as refused:
            strategy.shorten(english_document(), budget, english_tokens)
        assert [v.field for v in refused.value.violations] == ["budget"]
        with pytest.raises(InvalidArgument):
            strategy.generate(english_document(), budget, english_tokens, summarize)
