"""Sentence salience (forgeline.salience): the sentence sharing most with the others ranks first,
scores are a distribution and repeat exactly, and picking within a budget keeps document order and
never goes over, even when a counter's parts do not add up."""

from __future__ import annotations

import pytest

from forgeline.salience import pick_salient, sentence_salience

SENTENCES = [
    "The weather was fine that morning.",
    "The tenant paid the rent of the flat to the landlord.",
    "The landlord accepted the rent for the flat.",
    "The tenant left the flat and the landlord kept the rent.",
    "Bananas are yellow.",
]


@pytest.mark.parametrize("method", ["textrank", "centrality"])
def test_central_sentences_outrank_unrelated_ones(method):
    scores = sentence_salience(SENTENCES, method)
    assert sum(scores) == pytest.approx(1.0)
    best = max(range(len(scores)), key=scores.__getitem__)
    assert best in (1, 3)
    assert scores[4] == min(scores)
    assert sentence_salience(SENTENCES, method) == scores


def test_edge_cases_one_sentence_none_and_no_shared_words():
    assert sentence_salience([]) == []
    assert sentence_salience(["Only one."]) == [1.0]
    assert sentence_salience(["alpha beta", "gamma delta", "..."]) == pytest.approx([1 / 3] * 3)
    with pytest.raises(ValueError):
        sentence_salience(SENTENCES, "bogus")  # type: ignore[arg-type]


def test_chinese_sentences_are_compared_per_character():
    sentences = ["飞行器姿态控制方法。", "姿态控制器的设计方法。", "今天天气很好。"]
    scores = sentence_salience(sentences)
    assert scores[2] == min(scores)


def test_picking_keeps_document_order_and_the_budget():
    scores = sentence_salience(SENTENCES)

    def count(text: str) -> int:
        return len(text.split()) + 1

    chosen = pick_salient(SENTENCES, scores, 25, count)
    assert chosen == sorted(chosen) and chosen
    assert count("\n".join(SENTENCES[i] for i in chosen)) <= 25
    assert pick_salient(SENTENCES, scores, None, count, max_sentences=2) == sorted(
        sorted(range(5), key=lambda i: -scores[i])[:2]
    )
    assert pick_salient(SENTENCES, scores, 2, count) == []
