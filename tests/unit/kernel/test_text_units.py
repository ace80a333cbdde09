"""Sentences and words (forgeline.text_units): English legal citations and abbreviations do not
end a sentence, Chinese full stops do with no space after them, and a prefix or suffix found for a
budget is the longest that fits whatever the counter."""

from __future__ import annotations

import json

from forgeline.text_units import (
    has_cjk,
    longest_prefix,
    longest_suffix,
    sentence_spans,
    split_sentences,
    word_count,
    words,
)
from tests.conftest import shared_data


def test_legal_abbreviations_citations_and_initials_do_not_end_a_sentence():
    text = (
        "N: Criminal Appeal No. 8 of 1951. The rent was Rs. 215. Iswarlal C. Dalai and R.B. "
        "Dalai, for the appellant. See W.H. King v. Republic of India, (1952) S.C.R. 519. "
        "Sub section (1) of sec.\n19 of the Act applies. It was held so! Was it? Yes."
    )
    assert split_sentences(text) == [
        "N: Criminal Appeal No. 8 of 1951.",
        "The rent was Rs. 215.",
        "Iswarlal C. Dalai and R.B. Dalai, for the appellant.",
        "See W.H. King v. Republic of India, (1952) S.C.R. 519.",
        "Sub section (1) of sec.\n19 of the Act applies.",
        "It was held so!",
        "Was it?",
        "Yes.",
    ]


def test_a_plain_word_before_a_stop_ends_the_sentence_and_a_line_ends_an_initial():
    assert split_sentences("He said no. Then he left.") == ["He said no.", "Then he left."]
    text = "The Judgment was delivered by AIYAR J.\nThe facts are not long."
    assert split_sentences(text) == [
        "The Judgment was delivered by AIYAR J.",
        "The facts are not long.",
    ]


def test_numbered_paragraphs_quotes_and_decimals():
    text = 'He wrote "it is over." Then 2.5 per cent was paid. .\n\n2. The second ground fails.'
    assert split_sentences(text) == [
        'He wrote "it is over."',
        "Then 2.5 per cent was paid. .",
        "2. The second ground fails.",
    ]


def test_chinese_sentences_end_at_full_stops_with_or_without_space():
    text = "他走了。她说：“好！”然后呢？没有了……真的。仿真结果表明,方法有效.控制器收敛较快."
    assert split_sentences(text) == [
        "他走了。",
        "她说：“好！”",
        "然后呢？",
        "没有了……",
        "真的。",
        "仿真结果表明,方法有效.",
        "控制器收敛较快.",
    ]


def test_spans_point_into_the_text_and_a_blank_line_ends_a_paragraph():
    text = "  First line without a stop\n\nSecond one.  Third one.\n"
    spans = sentence_spans(text)
    assert [text[a:b] for a, b in spans] == [
        "First line without a stop",
        "Second one.",
        "Third one.",
    ]


def test_in_abs_judgments_split_into_about_one_sentence_per_line():
    """The IN-Abs corpus is stored about one sentence per line by its own splitter, which broke
    lines after "sec." (ours joins those back) and left some lines of several sentences."""
    rows = [json.loads(line) for line in shared_data("summarization/in_abs_test.jsonl").open()]
    found = sum(len(split_sentences(r["document"])) for r in rows[:20])
    lines = sum(r["document"].count("\n") + 1 for r in rows[:20])
    assert 0.9 * lines <= found <= 1.1 * lines
    joined = [s for r in rows[:20] for s in split_sentences(r["summary"]) if s.endswith(" sec.")]
    assert joined == [], "a sentence ended at 'sec.'"


def test_words_are_rouge_score_tokens_on_ascii_and_characters_for_cjk():
    from rouge_score.tokenize import tokenize

    english = "The appellant's rent, Rs. 29,500 (sec. 19) -- under_scored CAPS."
    assert words(english) == tokenize(english, None)
    assert words("采用MRP参数 café") == ["采", "用", "mrp", "参", "数", "café"]
    assert words("采用MRP参数", cjk=False) == ["采用mrp参数"]
    assert word_count("采用 two words") == 4
    assert has_cjk("a 字") and not has_cjk("plain")


def test_longest_prefix_and_suffix_fit_the_budget_and_end_at_a_word():
    text = " ".join(f"w{i}" for i in range(100))

    def count(t: str) -> int:
        return len(t.split()) + 1  # a start token: counts do not add up

    head = longest_prefix(text, 11, count)
    assert head == " ".join(f"w{i}" for i in range(10))
    tail = longest_suffix(text, 6, count)
    assert tail == " ".join(f"w{i}" for i in range(95, 100))
    assert longest_prefix(text, 1000, count) == text
    assert longest_prefix("一二三四五六", 3, len) == "一二三"
