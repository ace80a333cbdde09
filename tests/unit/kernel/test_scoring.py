"""forgeline.models.score_classification: the scores sklearn gives, and the mistakes kept for a
report (the most confident first, texts cut, at most MISCLASSIFIED)."""

from __future__ import annotations

from forgeline.models import EXCERPT_CHARS, MISCLASSIFIED, score_classification


def test_scores_and_the_most_confident_mistakes_first():
    truth = [0, 1, 1, 0, 1]
    predicted = [0, 0, 1, 1, 0]
    texts = ["a", "b" * (EXCERPT_CHARS + 50), "c", "d", "e"]
    found = score_classification(
        truth, predicted, ["neg", "pos"], texts=texts, confidence=[0.9, 0.55, 0.8, 0.97, 0.7]
    )
    assert found.accuracy == 0.4 and found.confusion == [[1, 1], [2, 1]]
    assert [(m["row"], m["label"], m["predicted"]) for m in found.misclassified] == [
        (3, "neg", "pos"),
        (4, "pos", "neg"),
        (1, "pos", "neg"),
    ]
    assert [m["confidence"] for m in found.misclassified] == [0.97, 0.7, 0.55]
    assert found.misclassified[2]["text_excerpt"] == "b" * EXCERPT_CHARS


def test_without_texts_no_mistakes_are_kept_and_the_list_is_bounded():
    assert score_classification([0, 1], [1, 0], ["neg", "pos"]).misclassified == []
    n = MISCLASSIFIED + 5
    found = score_classification([0] * n, [1] * n, ["neg", "pos"], texts=[str(i) for i in range(n)])
    assert len(found.misclassified) == MISCLASSIFIED
    assert [m["row"] for m in found.misclassified] == list(range(MISCLASSIFIED))  # in row order
    assert {m["confidence"] for m in found.misclassified} == {0.0}
