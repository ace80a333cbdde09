"""The generation metrics: rouge scores Chinese per character where rouge-score's own tokenizer
scores it 0, and equals rouge-score exactly on English; bleu picks sacrebleu's Chinese tokenizer
for Chinese; chrf and exact_match do what their configs say; bad configs are refused naming the
field."""

from __future__ import annotations

import json

import pytest

from forgeline.contracts.baselines import BaselineContext
from forgeline.errors import InvalidArgument
from forgeline.plugins.baselines.extractive import LeadK
from forgeline.plugins.generation_metrics.exact_match import ExactMatch
from forgeline.plugins.generation_metrics.ngram import Bleu, Chrf
from forgeline.plugins.generation_metrics.rouge import Rouge
from forgeline.registry import PluginRegistry
from forgeline.text_units import has_cjk
from tests.conftest import shared_data


def chinese_titles(rows: int) -> tuple[list[str], list[str]]:
    """The first sentence of each abstract (a lead-1 "title") and the real title, for rows whose
    title is Chinese only (no ASCII letter or digit for rouge-score's tokenizer to keep)."""
    path = shared_data("summarization/csl_title_zh.tsv")
    abstracts, titles = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        _, abstract, title = line.split("\t")
        if not any(c.isascii() and c.isalnum() for c in title + abstract):
            abstracts.append(abstract)
            titles.append(title)
    leads = LeadK(LeadK.Config(sentences=1)).fit_predict([], [], abstracts, BaselineContext())
    return leads.predictions[:rows], titles[:rows]


def test_chinese_scores_per_character_where_rouge_scores_default_tokenizer_gives_0():
    from rouge_score import rouge_scorer

    predictions, titles = chinese_titles(50)
    assert len(titles) == 50 and all(has_cjk(t) for t in titles)
    default = rouge_scorer.RougeScorer(["rouge1", "rougeL"])
    assert all(
        default.score(t, p)["rougeL"].fmeasure == 0.0
        for p, t in zip(predictions, titles, strict=True)
    )
    scores = Rouge().score(predictions, titles)
    assert 0.15 < scores.corpus["rougeL"] < 0.7, scores.corpus
    assert 0.2 < scores.corpus["rouge1"] < 0.8, scores.corpus
    assert scores.corpus["rouge2"] < scores.corpus["rouge1"]
    characters = Rouge(Rouge.Config(tokenize="characters")).score(predictions, titles)
    assert characters.corpus == pytest.approx(scores.corpus)  # Chinese only: the same tokens
    assert Rouge(Rouge.Config(tokenize="words")).score(predictions, titles).corpus["rougeL"] < (
        0.1 * scores.corpus["rougeL"]
    ), "a run of Chinese characters as one word almost never matches"


def test_english_scores_are_exactly_rouge_scores_own():
    from rouge_score import rouge_scorer

    references = ["The appellant's tenancy was not relinquished; the conviction was set aside."]
    predictions = ["The conviction of the appellant was set aside, as no tenancy was relinquished."]
    for stemming in (False, True):
        ours = Rouge(Rouge.Config(stemming=stemming)).score(predictions, references)
        theirs = rouge_scorer.RougeScorer(
            ["rouge1", "rouge2", "rougeL"], use_stemmer=stemming
        ).score(references[0], predictions[0])
        for key in ("rouge1", "rouge2", "rougeL"):
            assert ours.per_example[key] == [theirs[key].fmeasure], (key, stemming)
    plain = Rouge().score(["The courts ruled"], ["The court rules"]).corpus["rouge1"]
    stemmed = Rouge(Rouge.Config(stemming=True)).score(["The courts ruled"], ["The court rules"])
    assert stemmed.corpus["rouge1"] == 1.0 > plain


def test_lead_k_on_in_abs_test_judgments_scores_in_the_published_range():
    """IN-Abs references are long (~940 words): lead-k with a matching word budget is the
    baseline, and its ROUGE lands where extractive baselines do on this corpus."""
    path = shared_data("summarization/in_abs_test.jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:5]]
    documents = [r["document"] for r in rows]
    references = [r["summary"] for r in rows]
    lead = LeadK(LeadK.Config(sentences=None, max_words=900))
    summaries = lead.fit_predict([], [], documents, BaselineContext()).predictions
    scores = Rouge().score(summaries, references)
    assert 0.3 < scores.corpus["rouge1"] < 0.7, scores.corpus
    assert 0.1 < scores.corpus["rouge2"] < scores.corpus["rouge1"], scores.corpus
    assert 0.12 < scores.corpus["rougeL"] < 0.45, scores.corpus
    assert scores.corpus["rougeL"] == pytest.approx(sum(scores.per_example["rougeL"]) / 5)


def test_bleu_picks_the_chinese_tokenizer_for_chinese_references():
    predictions, titles = chinese_titles(50)
    auto = Bleu().score(predictions, titles)
    assert auto.details["tokenize"] == "zh" and "tok:zh" in auto.details["signature"]
    unsplit = Bleu(Bleu.Config(tokenize="13a")).score(predictions, titles)
    assert unsplit.corpus["bleu"] < auto.corpus["bleu"] / 5, (unsplit.corpus, auto.corpus)
    english = Bleu().score(["the cat sat on the mat"], ["the cat sat on the red mat"])
    assert english.details["tokenize"] == "13a"
    assert 0 < english.corpus["bleu"] < 1 and english.per_example == {}


def test_chrf_and_chrf_plus_plus():
    predictions = ["the cat sat on the mat", "猫坐在垫子上"]
    references = ["the cat sat on the red mat", "猫坐在红色的垫子上"]
    chrf = Chrf().score(predictions, references)
    plus = Chrf(Chrf.Config(word_order=2)).score(predictions, references)
    assert "nw:0" in chrf.details["signature"] and "nw:2" in plus.details["signature"]
    assert 0 < chrf.corpus["chrf"] < 1 and len(chrf.per_example["chrf"]) == 2
    assert plus.corpus["chrf"] != chrf.corpus["chrf"]


def test_exact_match_normalises_as_configured():
    predictions = ["  Set   aside ", "ALLOWED", "驳回 上诉"]
    references = ["Set aside", "allowed", "驳回上诉"]
    assert ExactMatch().score(predictions, references).per_example["exact_match"] == [1, 0, 0]
    folded = ExactMatch(ExactMatch.Config(casefold=True, whitespace="remove"))
    assert folded.score(predictions, references).corpus["exact_match"] == 1.0
    strict = ExactMatch(ExactMatch.Config(strip=False, whitespace="keep"))
    assert strict.score(predictions, references).corpus["exact_match"] == 0.0


def test_configs_are_refused_naming_the_field():
    registry = PluginRegistry()
    with pytest.raises(InvalidArgument) as refused:
        registry.create("generation_metrics", "rouge", {"tokenize": "jieba"}, "metrics[0]")
    assert [v.field for v in refused.value.violations] == ["metrics[0].config.tokenize"]
    with pytest.raises(InvalidArgument) as refused:
        registry.create("generation_metrics", "chrf", {"word_order": 5}, "metrics[1]")
    assert [v.field for v in refused.value.violations] == ["metrics[1].config.word_order"]
