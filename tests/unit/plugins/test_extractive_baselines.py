"""The extractive summarization baselines lead_k and textrank, and the baselines contract's task:
each baseline declares what it predicts, a task outside the contract's is refused at load, and
the classifier baseline stays a classifier."""

from __future__ import annotations

import pytest

from forgeline.contracts.baselines import (
    CLASSIFICATION,
    SUMMARIZATION,
    Baseline,
    BaselineContext,
    BaselineResult,
)
from forgeline.errors import InvalidArgument
from forgeline.plugins.baselines.extractive import LeadK, TextRank
from forgeline.registry import PluginRegistry, contract_problem
from forgeline.text_units import word_count

JUDGMENT = (
    "N: Criminal Appeal No. 8 of 1951. The appellant was the tenant of a flat in Bombay. "
    "The complainant paid him Rs. 30,000 for the flat. The police laid a trap for the tenant. "
    "The weather in Bombay was humid that week. The High Court held that the tenant had "
    "relinquished the flat under sec. 19 of the Act. The tenant appealed against the flat case."
)
ABSTRACT = (
    "本文研究了飞行器姿态控制问题。提出了一种姿态控制器设计方法。"
    "今天天气很好。仿真表明姿态控制器有效。"
)


def summarize(baseline: Baseline, *documents: str) -> list[str]:
    result = baseline.fit_predict(["ignored"], ["ignored"], list(documents), BaselineContext())
    assert isinstance(result, BaselineResult) and result.model_format == ""
    return result.predictions


def test_lead_k_takes_the_first_sentences():
    (lead,) = summarize(LeadK(), JUDGMENT)
    assert lead.split("\n") == [
        "N: Criminal Appeal No. 8 of 1951.",
        "The appellant was the tenant of a flat in Bombay.",
        "The complainant paid him Rs. 30,000 for the flat.",
    ]
    (chinese,) = summarize(LeadK(LeadK.Config(sentences=2)), ABSTRACT)
    assert chinese == "本文研究了飞行器姿态控制问题。\n提出了一种姿态控制器设计方法。"


def test_lead_k_within_a_word_budget_stops_before_the_sentence_that_would_pass_it():
    # 7, 10 and 10 words ("Rs. 30,000" is three: rs, 30, 000)
    (lead,) = summarize(LeadK(LeadK.Config(sentences=None, max_words=27)), JUDGMENT)
    assert lead.count("\n") == 2 and word_count(lead) == 27
    (lead,) = summarize(LeadK(LeadK.Config(sentences=None, max_words=26)), JUDGMENT)
    assert lead.count("\n") == 1 and word_count(lead) == 17
    (cut,) = summarize(LeadK(LeadK.Config(max_words=4)), JUDGMENT)
    assert cut == "N: Criminal Appeal No."


def test_textrank_keeps_central_sentences_in_document_order():
    (summary,) = summarize(TextRank(TextRank.Config(sentences=3)), JUDGMENT)
    kept = summary.split("\n")
    assert len(kept) == 3 and "weather" not in summary
    assert [JUDGMENT.index(s) for s in kept] == sorted(JUDGMENT.index(s) for s in kept)
    (chinese,) = summarize(TextRank(TextRank.Config(sentences=2)), ABSTRACT)
    assert "天气" not in chinese and chinese.count("\n") == 1
    (budgeted,) = summarize(TextRank(TextRank.Config(sentences=None, max_words=30)), JUDGMENT)
    assert 0 < word_count(budgeted) <= 30


def test_every_baseline_declares_its_task():
    registry = PluginRegistry()
    tasks = {cls.name: cls.task for cls in registry.load_kind("baselines")}
    assert tasks["tfidf_logreg"] == CLASSIFICATION
    assert tasks["lead_k"] == tasks["textrank"] == SUMMARIZATION


def test_a_baseline_of_an_unknown_task_is_refused_at_load():
    class Translator(LeadK):
        """Translates, which no baseline does."""

        name = "translator"
        task = "translation"

    problem = contract_problem("baselines", "translator", Translator)
    assert problem is not None and "'translation'" in problem and SUMMARIZATION in problem


def test_configs_are_refused_naming_the_field():
    with pytest.raises(InvalidArgument) as refused:
        PluginRegistry().create("baselines", "lead_k", {"sentences": 0}, "baseline")
    assert [v.field for v in refused.value.violations] == ["baseline.config.sentences"]
