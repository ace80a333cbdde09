"""Sentences and words of natural-language text, English and Chinese alike: what generation
metrics, long-input strategies and extractive summaries all cut text into.

No tokenizer model and no downloaded data (NLTK's punkt is not on every machine): sentences are
found by rules that hold for English legal text ("No. 8", "Rs. 215", "sec.\\n19", "W.H. King",
"S.C.R. 519" do not end a sentence) and for Chinese (。！？ end one, with or without a space after).
Words are runs of letters and digits; a CJK character is a word of its own, since Chinese and
Japanese put no spaces between words.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# Han (with the extensions and compatibility block), kana. Hangul is left out on purpose: Korean
# separates words with spaces, so its words are whole words like English ones.
CJK_CHARS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff"
_CJK = re.compile(f"[{CJK_CHARS}]")
# A CJK character alone, else a run of letters and digits (no underscore) that holds no CJK.
_WORD = re.compile(f"[{CJK_CHARS}]|(?:(?![{CJK_CHARS}])[^\\W_])+")
_WORD_ONLY = re.compile(r"[^\W_]+")

# A sentence ends at one of these, with any closing quotes and brackets that follow it.
_TERMINAL = re.compile(r"(?:[.!?]+|[。！？]+|…+)[\"'”’」』）)\]》]*")
_CJK_TERMINAL = re.compile(r"[。！？]")
_PARAGRAPH = re.compile(r"\n[ \t\r\f\v]*\n\s*")
# Words after which a full stop does not end a sentence: titles, company forms, citations...
ABBREVIATIONS = frozenset(
    """
    v vs ltd co corp inc bros pvt mr mrs ms dr prof hon sr jr st mt rev gen col capt lt
    re rel anr ors messrs govt dept ed eds edn eg ie viz cf al approx illus ibid
    jan feb mar apr jun jul aug sep sept oct nov dec
    """.split()
)
# ... and those that do not end one when a number follows: "No. 8", "sec.\n19", "Art. (2)".
NUMBER_ABBREVIATIONS = frozenset(
    """
    no nos s ss sec secs art arts cl cls para paras sch ch chap r rr o ord reg regs rs vol vols
    p pp fig figs
    """.split()
)
# A lone number, roman numeral or letter (in brackets or not) before the stop: "20." opening a
# numbered paragraph, "(iv).", "(a)." -- a label, not a sentence.
_LABEL = re.compile(r"\(?(?:\d{1,3}|[ivxlcdm]{1,6}|[a-z])\)?", re.IGNORECASE)


def has_cjk(text: str) -> bool:
    """Whether ``text`` holds a Chinese or Japanese character."""
    return _CJK.search(text) is not None


def words(text: str, *, cjk: bool = True) -> list[str]:
    """The words of ``text``, lowercased: runs of letters and digits, and (``cjk``) every CJK
    character on its own. With ``cjk=False`` a run of CJK characters is one word, as a tokenizer
    splitting on spaces would see it. On ASCII text both are exactly rouge-score's tokens."""
    return (_WORD if cjk else _WORD_ONLY).findall(text.lower())


def word_count(text: str) -> int:
    """How many ``words`` ``text`` holds (a CJK character counts one): the model-free token
    count of extractive baselines' budgets."""
    return len(_WORD.findall(text))


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every sentence of ``text``, in order, without the whitespace around it;
    ``text[start:end]`` is the sentence. A blank line always ends one (a paragraph break), a
    single line break never does by itself (hard-wrapped text, and sentence-split corpora that
    broke a line after "sec.")."""
    spans: list[tuple[int, int]] = []
    position = 0
    for paragraph in _PARAGRAPH.split(text):
        start = text.index(paragraph, position) if paragraph else position
        position = start + len(paragraph)
        spans.extend((start + a, start + b) for a, b in _paragraph_spans(paragraph))
    return spans


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` (see ``sentence_spans``)."""
    return [text[a:b] for a, b in sentence_spans(text)]


def _paragraph_spans(paragraph: str) -> list[tuple[int, int]]:
    spans = []
    begin = 0
    for match in _TERMINAL.finditer(paragraph):
        end = match.end()
        if _ends_sentence(paragraph, begin, match.start(), end):
            spans.append((begin, end))
            begin = end
    spans.append((begin, len(paragraph)))
    result = []
    for a, b in spans:
        chunk = paragraph[a:b]
        stripped = chunk.strip()
        if not stripped:
            continue
        a += len(chunk) - len(chunk.lstrip())
        if result and not _WORD.search(stripped):  # a stray "." or "?": part of the last one
            result[-1] = (result[-1][0], a + len(stripped))
        else:
            result.append((a, a + len(stripped)))
    return result


def _ends_sentence(text: str, begin: int, stop: int, end: int) -> bool:
    """Whether the terminal ``text[stop:end]`` ends the sentence that began at ``begin``."""
    if _CJK_TERMINAL.match(text, stop):
        return True
    following = text[end : end + 1]
    if not following:
        return True
    if not following.isspace():
        # "1.5", "U.S.A", "Ltd.," go on; an ASCII stop straight before Chinese ends a sentence
        # (Chinese abstracts often use "." for "。").
        return has_cjk(following)
    rest = text[end:].lstrip()
    if not rest:
        return True
    if rest[0].islower() or rest[0] in ",;:":
        return False
    if text[stop] != ".":
        return True  # ! and ? take no abbreviation
    before = text[begin:stop].split()
    word = before[-1].lstrip("([\"'“‘") if before else ""
    if not word:
        return True
    if len(before) == 1 and _LABEL.fullmatch(word):
        return False  # "20." / "(iv)." opening a numbered paragraph
    lowered = word.lower()
    if lowered in ABBREVIATIONS:
        return False
    if lowered in NUMBER_ABBREVIATIONS and (rest[0].isdigit() or rest[0] == "("):
        return False
    if len(word) == 1 and word.isalpha():
        # An initial ("A. K. Sen"), unless a line ends there ("... AIYAR J.\nThe facts").
        return "\n" in text[end : len(text) - len(rest)]
    # "S.C.R", "W.H", "i.e": dotted initials and acronyms (a whole-word run of letters and stops).
    return not re.fullmatch(r"(?:[^\W\d_]{1,3}\.)+[^\W\d_]{1,3}", word)


def longest_prefix(text: str, budget: int, count: Callable[[str], int]) -> str:
    """The longest start of ``text`` that ``count`` finds within ``budget`` (a binary search over
    the cut, so a tokenizer is called about log2(len(text)) times). The cut moves back to the
    last space when there is one in the final tenth, so a word is not cut in half."""
    return _longest(text, budget, count, lambda k: text[:k], prefix=True)


def longest_suffix(text: str, budget: int, count: Callable[[str], int]) -> str:
    """The longest end of ``text`` within ``budget`` (see ``longest_prefix``)."""
    return _longest(text, budget, count, lambda k: text[len(text) - k :], prefix=False)


def _longest(
    text: str, budget: int, count: Callable[[str], int], cut: Callable[[int], str], prefix: bool
) -> str:
    if count(text) <= budget:
        return text
    low, high = 0, len(text)  # cut(low) fits; cut(high) does not
    while high - low > 1:
        middle = (low + high) // 2
        if count(cut(middle)) <= budget:
            low = middle
        else:
            high = middle
    piece = cut(low)
    space = piece.rfind(" ") if prefix else piece.find(" ")
    boundary = space if prefix else len(piece) - space - 1
    if space > 0 and boundary >= low * 0.9 and count(cut(boundary)) <= budget:
        piece = cut(boundary)
    return piece.strip()
