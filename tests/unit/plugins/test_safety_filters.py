"""The safety checks: what each finds and, as much, what it must leave alone."""

from __future__ import annotations

import pytest

from forgeline.errors import FailedPrecondition, InvalidArgument
from forgeline.plugins.input_filters.blocklist import Blocklist
from forgeline.plugins.input_filters.classifier import ClassifierFilter
from forgeline.plugins.input_filters.pii import Pii
from forgeline.plugins.input_filters.text import fold
from forgeline.plugins.output_rules.classifier import ClassifierRule
from forgeline.plugins.output_rules.match import Keywords, Regex
from forgeline.redaction import redact
from forgeline.registry import PluginRegistry
from forgeline.testing import text_checks


def spans(check, text: str) -> list[tuple[str, str]]:
    """What ``check`` found in ``text``, as (the original characters, label)."""
    return [(text[m.start : m.end], m.label) for m in check.find([text])[0]]


# --- folding and the blocklist -------------------------------------------------------------------


def test_folding_maps_every_folded_character_back_to_the_original():
    text = "ﬁne ＢＡＤ Straße cafe\u0301 ｶﾞ"
    folded = fold(text)
    assert folded.text == "fine bad strasse café ガ"
    assert folded.span(0, 2) == (0, 1)  # "fi" came from the one ligature
    assert text[slice(*folded.span(5, 8))] == "ＢＡＤ"
    assert text[slice(*folded.span(9, 16))] == "Straße"
    assert text[slice(*folded.span(17, 21))] == "cafe\u0301"
    assert text[slice(*folded.span(22, 23))] == "ｶﾞ"
    assert fold("Plain ASCII").text == "plain ascii" and fold("Plain").starts is None


def test_blocklist_matches_whole_english_words_and_chinese_anywhere():
    check = Blocklist(
        Blocklist.Config(
            words=["ass", "ＢＡＤ word", "垃圾", "A片", "fine"], regexes=[r"buy\s+now"]
        )
    )
    text = "class, Bad WORD, ｂａｄ ｗｏｒｄ; 垃圾桶 and a片 ﬁne! BUY   NOW ass_hat ass."
    assert spans(check, text) == [
        ("Bad WORD", "ＢＡＤ word"),
        ("ｂａｄ ｗｏｒｄ", "ＢＡＤ word"),
        ("垃圾", "垃圾"),
        ("a片", "A片"),
        ("ﬁne", "fine"),
        ("BUY   NOW", "regex"),
        ("ass", "ass"),
    ]
    assert spans(check, "classy bassist finer badword") == []
    # A CJK neighbour is a boundary for a Latin word; the longer of two words wins.
    longer = Blocklist(Blocklist.Config(words=["spam", "spam mail"], label="blocked"))
    assert spans(longer, "垃圾spam邮件 spam mail") == [
        ("spam", "blocked"),
        ("spam mail", "blocked"),
    ]


def test_blocklist_refuses_a_bad_regex_or_nothing_to_find_naming_the_field():
    registry = PluginRegistry()
    with pytest.raises(InvalidArgument) as exc:
        registry.create("input_filters", "blocklist", {"regexes": ["ok", "(unclosed"]}, "rules[0]")
    assert exc.value.violations[0].field == "rules[0].config.regexes"
    assert "'(unclosed'" in exc.value.message
    with pytest.raises(InvalidArgument, match="at least one word or regex"):
        registry.create("input_filters", "blocklist", {}, "rules[0]")
    with pytest.raises(InvalidArgument, match=r"rules\[0\].config.words"):
        registry.create("input_filters", "blocklist", {"words": ["ok", "  "]}, "rules[0]")


# --- PII ------------------------------------------------------------------------------------------


def test_pii_finds_every_kind_and_redacts_it():
    check = Pii()
    text = (
        "Mail John.Doe+x@example.co.uk, call +1 (415) 555-0132, 415-555-0132, "
        "+44 20 7946 0958 or 手机13800138000 / +86 138 0013 8000；身份证11010519491231002X，"
        "SSN 123-45-6789, card 4111 1111 1111 1111 or 378282246310005, host 192.168.1.254, "
        "ｍｅ＠ｅｘａｍｐｌｅ．ｃｏｍ １３９１２３４５６７８"
    )
    assert spans(check, text) == [
        ("John.Doe+x@example.co.uk", "email"),
        ("+1 (415) 555-0132", "phone"),
        ("415-555-0132", "phone"),
        ("+44 20 7946 0958", "phone"),
        ("13800138000", "phone"),
        ("+86 138 0013 8000", "phone"),
        ("11010519491231002X", "id_number"),
        ("123-45-6789", "id_number"),
        ("4111 1111 1111 1111", "card_number"),
        ("378282246310005", "card_number"),
        ("192.168.1.254", "ip_address"),
        ("ｍｅ＠ｅｘａｍｐｌｅ．ｃｏｍ", "email"),
        ("１３９１２３４５６７８", "phone"),
    ]
    text = "mail me@example.com or call 13800138000, card 5555-5555-5555-4444."
    assert redact(text, check.find([text])[0]) == (
        "mail [EMAIL] or call [PHONE], card [CARD_NUMBER]."
    )
    only_email = Pii(Pii.Config(kinds=["email"]))
    assert spans(only_email, text) == [("me@example.com", "email")]


def test_pii_leaves_numbers_that_are_not_personal_data_alone():
    check = Pii()
    innocent = [
        "card 4111 1111 1111 1112 and 4111111111111112",  # Luhn fails
        "ID 110105194912310021",  # wrong check digit
        "ID 110105199902300027",  # no February 30th
        "dates 2024-01-15, 2024/01/15, 15.01.2024, 20240115",
        "order 20240115123456789 and order no. 138001380001",  # digit runs, not phones
        "SKU A13800138000B, tracking 1Z999AA10123456784",
        "SSN-like 000-12-3456, 666-12-3456, 900-12-3456, 123-00-4567",
        "ips 999.1.1.1, 256.1.1.1, 1.2.3.4.5, version 10.0.1",
        "prices 1,234.56 and 12 345 678",
        "电话号码是12345678901，订单号202401151234",
    ]
    assert [check.find([text])[0] for text in innocent] == [[] for _ in innocent]


# --- output matchers ----------------------------------------------------------------------------


def test_keywords_and_regex_match_on_folded_text_with_original_spans():
    keywords = Keywords(Keywords.Config(words=["Confidential", "机密"]))
    text = "This is ＣＯＮＦＩＤＥＮＴＩＡＬ: 机密文件, not confidentiality."
    assert spans(keywords, text) == [
        ("ＣＯＮＦＩＤＥＮＴＩＡＬ", "Confidential"),
        ("机密", "机密"),
    ]
    regex = Regex(Regex.Config(patterns=[r"password\s*[:=]\s*\S+", r"\d{3}"], label="secret"))
    text = "Password： hunter2 and pin １２３"
    assert spans(regex, text) == [("Password： hunter2", "secret"), ("１２３", "secret")]
    exact = Regex(Regex.Config(patterns=["API_KEY"], ignore_case=False))
    assert spans(exact, "api_key API_KEY ＡＰＩ＿ＫＥＹ") == [
        ("API_KEY", "regex"),
        ("ＡＰＩ＿ＫＥＹ", "regex"),
    ]
    with pytest.raises(InvalidArgument, match=r"rule.config.patterns"):
        PluginRegistry().create("output_rules", "regex", {"patterns": ["[a-"]}, "rule")


# --- classifier --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certain_spam(tmp_path_factory):
    """A model lookup holding a tiny model for which every text is spam with p ~ 1."""
    store = text_checks.model_store(tmp_path_factory.mktemp("artifacts"), bias=(-10.0, 10.0))
    yield text_checks.safety_context(store)
    store.close()


def test_classifier_matches_the_whole_text_at_the_threshold(certain_spam):
    texts = ["cheap pills", "", "你好 " * 100]
    spam = ClassifierFilter(ClassifierFilter.Config(model_id="contract-model", labels=["spam"]))
    with pytest.raises(FailedPrecondition, match="prepare"):
        spam.find(texts)
    spam.prepare(certain_spam)
    found = spam.find(texts)
    assert [[(m.start, m.end, m.label) for m in ms] for ms in found] == [
        [(0, len(t), "spam")] for t in texts
    ]
    assert all(m.score > 0.999 for ms in found for m in ms)

    config = {"model_id": "contract-model", "labels": ["ham", "spam"], "threshold": 0.9}
    rule = ClassifierRule(ClassifierRule.Config(**config, batch_size=2))
    rule.prepare(certain_spam)
    assert [[m.label for m in ms] for ms in rule.find(texts)] == [["spam"]] * 3
    strict = ClassifierRule(ClassifierRule.Config(**{**config, "threshold": 1.0}))
    strict.prepare(certain_spam)
    assert strict.find(texts) == [[], [], []]


def test_classifier_refuses_labels_and_models_it_cannot_use(certain_spam):
    unknown = ClassifierFilter(
        ClassifierFilter.Config(model_id="contract-model", labels=["spam", "toxic"])
    )
    with pytest.raises(InvalidArgument) as exc:
        unknown.prepare(certain_spam)
    assert exc.value.violations[0].field == "config.labels"
    assert "the model knows: ham, spam" in exc.value.message
    missing = ClassifierFilter(ClassifierFilter.Config(model_id="no-such-model", labels=["spam"]))
    with pytest.raises(InvalidArgument) as exc:
        missing.prepare(certain_spam)
    assert exc.value.violations[0].field == "config.model_id"
    with pytest.raises(InvalidArgument, match=r"f.config.labels"):
        PluginRegistry().create("input_filters", "classifier", {"model_id": "m", "labels": []}, "f")
