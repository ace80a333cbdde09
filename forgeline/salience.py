"""How central each sentence of a document is: the ranking that extractive summaries and the
``extract`` long-input strategy pick sentences by.

Sentences are TF-IDF vectors over ``forgeline.text_units.words`` (a CJK character is a word, so
Chinese needs no segmenter); two sentences are as similar as their cosine. ``textrank`` is PageRank
over that similarity graph (Mihalcea & Tarau, 2004), ``centrality`` the plain sum of a sentence's
similarities (degree centrality). Both are deterministic: the same sentences give the same scores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from forgeline.text_units import words

SalienceMethod = Literal["textrank", "centrality"]
# PageRank's power iteration stops when the scores move less than this in total (L1), or after
# MAX_ITERATIONS; a few dozen iterations reach it on documents of hundreds of sentences.
TOLERANCE = 1e-8
MAX_ITERATIONS = 200


def sentence_salience(
    sentences: list[str], method: SalienceMethod = "textrank", damping: float = 0.85
) -> list[float]:
    """A score per sentence (higher: more central), summing to 1 over the document. Sentences
    with no word score least. ``damping`` is PageRank's (textrank only)."""
    import numpy as np

    n = len(sentences)
    if n == 0:
        return []
    if n == 1:
        return [1.0]
    similarity = _similarity(sentences)
    np.fill_diagonal(similarity, 0.0)
    if method == "centrality":
        scores = similarity.sum(axis=1)
    elif method == "textrank":
        scores = _pagerank(similarity, damping)
    else:
        raise ValueError(f"unknown salience method {method!r}: textrank or centrality")
    total = float(scores.sum())
    if total <= 0:  # no two sentences share a word: nothing stands out
        return [1.0 / n] * n
    return [float(s) / total for s in scores]


def _similarity(sentences: list[str]):
    """The cosine similarity of every pair of sentences' TF-IDF vectors (a dense n x n array)."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(analyzer=words, sublinear_tf=True)
    try:
        vectors = vectorizer.fit_transform(sentences)  # rows are L2-normalised
    except ValueError:  # no sentence holds a word
        return np.zeros((len(sentences), len(sentences)))
    return (vectors @ vectors.T).toarray()


def _pagerank(weights, damping: float):
    """PageRank of a weighted undirected graph by power iteration. A sentence linked to none
    spreads its score evenly (the usual fix for dangling nodes)."""
    import numpy as np

    n = weights.shape[0]
    out = weights.sum(axis=1, keepdims=True)
    transition = np.where(out > 0, weights / np.where(out > 0, out, 1.0), 1.0 / n)
    scores = np.full(n, 1.0 / n)
    for _ in range(MAX_ITERATIONS):
        updated = (1.0 - damping) / n + damping * (transition.T @ scores)
        if float(np.abs(updated - scores).sum()) < TOLERANCE:
            return updated
        scores = updated
    return scores


def pick_salient(
    sentences: list[str],
    scores: list[float],
    budget: int | None,
    count: Callable[[str], int],
    max_sentences: int | None = None,
    separator: str = "\n",
) -> list[int]:
    """Indices of the highest-scoring sentences, in document order, whose join (by
    ``separator``) ``count`` finds within ``budget`` (None: any length), at most
    ``max_sentences`` of them. Greedy by score: a sentence that does not fit is passed over for
    shorter ones after it. Counts each sentence once and the final join once more, since a
    tokenizer's counts need not add up; while the join is over, the least salient pick goes."""
    order = sorted(range(len(sentences)), key=lambda i: (-scores[i], i))
    joint = count(separator) if separator.strip() else 0
    chosen: list[int] = []
    used = 0
    for i in order:
        if max_sentences is not None and len(chosen) >= max_sentences:
            break
        cost = count(sentences[i]) + (joint if chosen else 0)
        if budget is None or used + cost <= budget:
            chosen.append(i)
            used += cost
    while budget is not None and chosen:
        if count(separator.join(sentences[i] for i in sorted(chosen))) <= budget:
            break
        chosen.pop()  # the least salient of those chosen
    return sorted(chosen)
