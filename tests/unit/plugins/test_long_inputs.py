"""The long-input strategies on real judgments (IN-Abs, ~27k characters) with a real tokenizer
(the bundled MiniLM's WordPiece): truncate keeps the head, or the head and the tail; chunk cuts at
sentences, covers the whole document and summarizes the summaries until they fit; extract keeps
whole salient sentences in document order; each says what it kept."""

from __future__ import annotations

import json

import pytest

from forgeline.plugins.long_inputs.chunk import Chunk, split_into_chunks
from forgeline.plugins.long_inputs.extract import Extract
from forgeline.plugins.long_inputs.truncate import Truncate
from forgeline.text_units import split_sentences, words
from tests.conftest import shared_data


@pytest.fixture(scope="module")
def count_tokens():
    """Token counts of the bundled MiniLM's tokenizer, without special tokens."""
    from tokenizers import Tokenizer

    from forgeline.models import builtin_path

    tokenizer = Tokenizer.from_file(str(builtin_path("minilm-l6") / "tokenizer.json"))
    tokenizer.no_truncation()  # its file truncates and pads to 128 tokens
    tokenizer.no_padding()
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


@pytest.fixture(scope="module")
def judgments() -> list[str]:
    path = shared_data("summarization/in_abs_test.jsonl")
    return [json.loads(line)["document"] for line in path.read_text("utf-8").splitlines()[:3]]


def test_truncate_keeps_the_head_or_the_head_and_the_tail(judgments, count_tokens):
    document = judgments[0]
    head = Truncate().shorten(document, 512, count_tokens)
    assert document.startswith(head.text) and 500 <= head.kept_tokens <= 512
    assert head.total_tokens == count_tokens(document) > 2000
    assert head.details["kept"] == "head"
    assert head.details["dropped_chars"] == len(document) - len(head.text)
    config = Truncate.Config(keep="head_tail", tail_share=0.25)
    both = Truncate(config).shorten(document, 512, count_tokens)
    start, tail = both.text.split(config.marker)
    assert document.startswith(start) and document.rstrip().endswith(tail)
    assert both.kept_tokens <= 512
    assert 100 <= count_tokens(tail) <= 128 and count_tokens(start) >= 370
    assert both.details["head_chars"] + both.details["tail_chars"] == both.details["kept_chars"]


def test_a_budget_too_small_for_head_and_tail_keeps_the_head():
    text = " ".join(f"w{i}" for i in range(50))
    shortened = Truncate(Truncate.Config(keep="head_tail")).shorten(
        text, 3, lambda t: len(t.split())
    )
    assert shortened.text == "w0 w1 w2" and shortened.details["kept"] == "head"


def test_chunks_cut_at_sentences_and_cover_the_whole_judgment(judgments, count_tokens):
    document = judgments[1]
    chunks = split_into_chunks(document, 400, count_tokens)
    assert len(chunks) >= count_tokens(document) // 400
    assert all(count_tokens(c) <= 400 for c in chunks)
    assert words(" ".join(chunks)) == words(document), "every word, in order, nothing dropped"
    sentences = set(split_sentences(document))
    assert all(split_sentences(c)[-1] in sentences for c in chunks), "chunks end at sentences"


def test_chunk_summarizes_the_summaries_until_they_fit(judgments, count_tokens):
    calls: list[list[str]] = []

    def generate_batch(texts: list[str]) -> list[str]:
        calls.append(texts)
        return [" ".join(t.split()[:60]) for t in texts]  # a "summary": the first 60 words

    document = judgments[2]
    result = Chunk().generate(document, 256, count_tokens, generate_batch)
    rounds = result.details["rounds"]
    assert len(rounds) >= 2, "one round of 60-word summaries does not fit 256 tokens"
    assert rounds[0]["input_tokens"] == count_tokens(document)
    assert all(r["output_tokens"] < r["input_tokens"] for r in rounds)
    assert rounds[-1]["output_tokens"] <= 256 and "final_input_truncated" not in result.details
    assert result.calls == len(calls) == len(rounds) + 1
    assert all(count_tokens(t) <= 256 for batch in calls for t in batch)
    assert result.text == generate_batch(calls[-1])[0]


def test_chunk_says_so_when_outputs_stop_shrinking():
    def echo(texts: list[str]) -> list[str]:
        return [t + " and more" for t in texts]

    text = ". ".join(f"Sentence {i} is here" for i in range(40)) + "."
    result = Chunk().generate(text, 30, lambda t: len(t.split()), echo)
    assert len(result.details["rounds"]) == 1
    truncated = result.details["final_input_truncated"]
    assert truncated["kept_tokens"] <= 30 < truncated["total_tokens"]


def test_a_model_that_answers_the_wrong_number_of_texts_is_refused():
    with pytest.raises(ValueError, match="2 outputs for 1 inputs"):
        Truncate().generate("short text", 10, lambda t: len(t.split()), lambda ts: ["a", "b"])


def test_extract_keeps_whole_salient_sentences_in_document_order(judgments, count_tokens):
    document = judgments[0]
    sentences = split_sentences(document)
    extracted = Extract().shorten(document, 512, count_tokens)
    kept = extracted.details["kept_sentences"]
    assert extracted.kept_tokens <= 512
    assert kept == sorted(kept) and 0 < len(kept) < extracted.details["total_sentences"]
    assert extracted.text == "\n".join(sentences[i] for i in kept), "whole sentences, in order"
    centrality = Extract(Extract.Config(method="centrality")).shorten(document, 512, count_tokens)
    assert centrality.kept_tokens <= 512 and centrality.details["method"] == "centrality"


def test_extract_drops_the_off_topic_sentence_first():
    text = (
        "The tenant paid the rent for the flat. The landlord took the rent for the flat. "
        "Bananas grow in warm places. The tenant left the flat and the rent was paid."
    )
    extracted = Extract().shorten(text, 27, lambda t: len(t.split()))
    assert "Bananas" not in extracted.text and extracted.details["kept_sentences"] == [0, 1, 3]
