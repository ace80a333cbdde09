"""Case- and width-insensitive matching of word lists and regexes that reports spans in the text
as given: the one implementation behind the blocklist and the keywords and regex output rules.

Texts are folded (NFKC, then casefold) before matching, so "ＢＡＤ", "Bad" and "bad" are one word
and full-width digits are digits. Folding can change lengths ("ﬁ" -> "fi", "ß" -> "ss"), so a
folded text keeps, per folded character, the span of the original characters it came from.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import re2

from forgeline.contracts.input_filters import TextMatch
from forgeline.patterns import MAX_PATTERN_CHARS, REFUSED_SYNTAX, compile_pattern

# Scripts written without spaces between words (and Hangul, whose particles attach to words):
# a word with one of these characters matches anywhere, not only between word boundaries.
_CJK = (
    "\u2e80-\u2fdf\u3040-\u30ff\u3100-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f"
)
_HAS_CJK = re.compile(f"[{_CJK}]")
# A character that continues a Latin (Cyrillic, Greek, digit...) word: a word character that is
# not CJK. "ass" must not match inside "class"; a CJK neighbour is a boundary.
_WORD_CHAR = f"[^\\W{_CJK}]"
# Not between two such characters: a boundary for a word that starts (ends) with one, and no
# condition for one that starts (ends) with punctuation ("c++", "#tag"). A single check for every
# word, not one per word: a character class over these ranges is slow to compile.
_NOT_INSIDE_A_WORD = f"(?:(?<!{_WORD_CHAR})|(?!{_WORD_CHAR}))"
MAX_WORD_CHARS = 200
WORDS_HELP = (
    "Words or phrases to find, case- and width-insensitively. One without CJK characters "
    'matches only as a whole word ("ass" not in "class"); one with them matches anywhere '
    "(Chinese has no spaces)."
)
REGEX_HELP = (
    "Run by RE2, in time linear in the text: \\d, \\w and \\s are Unicode classes as in "
    f"Python. {REFUSED_SYNTAX}. At most {MAX_PATTERN_CHARS:,} characters each."
)


@dataclass(frozen=True)
class Folded:
    """A folded text and, per folded character, the original characters it came from
    (``starts``/``ends`` are None when folding kept every character in place)."""

    text: str
    starts: Sequence[int] | None = None
    ends: Sequence[int] | None = None

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span of the non-empty folded span ``[start, end)``."""
        if self.starts is None:
            return start, end
        return self.starts[start], self.ends[end - 1]


def _joins_previous(char: str) -> bool:
    """Whether NFKC may compose ``char`` with the character before it (a combining mark,
    a Hangul vowel or final consonant jamo, a half-width kana voicing mark)."""
    code = ord(char)
    return (
        unicodedata.combining(char) != 0
        or 0x1160 <= code <= 0x11FF
        or 0xD7B0 <= code <= 0xD7FF
        or code in (0xFF9E, 0xFF9F)
    )


def fold(text: str, *, casefold: bool = True) -> Folded:
    """``text`` under NFKC (and casefold), with the map back to the original offsets.

    Characters are normalized a cluster at a time (a character and the marks that compose with
    it), which is what lets every folded character point back into ``text``.
    """
    if text.isascii():
        return Folded(text.lower() if casefold else text)
    if unicodedata.is_normalized("NFKC", text):
        folded = text.casefold() if casefold else text
        if len(folded) == len(text):
            return Folded(folded)
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    cluster = 0
    for i in range(1, len(text) + 1):
        if i < len(text) and _joins_previous(text[i]):
            continue
        piece = unicodedata.normalize("NFKC", text[cluster:i])
        if casefold:
            piece = piece.casefold()
        pieces.append(piece)
        starts.extend([cluster] * len(piece))
        ends.extend([i] * len(piece))
        cluster = i
    return Folded("".join(pieces), starts, ends)


def _trie(words: Iterable[str]) -> str:
    """One regex for ``words`` as a trie: each position tries the next characters of every
    word at once, so the cost hardly grows with the list. Longer words are tried before the
    words they extend, and a failed check after the trie backtracks to the shorter ones."""
    root: dict = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # a word ends here

    def render(node: dict) -> str:
        branches = [re.escape(char) + render(child) for char, child in sorted(node.items()) if char]
        if "" in node:
            branches.append("")  # last: longer words first
        if len(branches) == 1:
            return branches[0]
        return "(?:" + "|".join(branches) + ")"

    return render(root)


def _word_list_pattern(words: Sequence[str]) -> str:
    """Words (already folded) with a CJK character match anywhere; the others only where they
    do not continue a Latin word on either side. The CJK ones come first: only they can extend
    a word of the other kind, and longer words win."""
    cjk = [w for w in words if _HAS_CJK.search(w)]
    latin = [w for w in words if not _HAS_CJK.search(w)]
    alternatives = []
    if cjk:
        alternatives.append(_trie(cjk))
    if latin:
        alternatives.append(f"{_NOT_INSIDE_A_WORD}{_trie(latin)}{_NOT_INSIDE_A_WORD}")
    return "|".join(alternatives)


def clean_words(words: Sequence[str]) -> list[str]:
    """``words`` without surrounding spaces; ValueError (for a pydantic validator) on an empty
    one, which would match everywhere, or one over MAX_WORD_CHARS."""
    cleaned = [word.strip() for word in words]
    for i, word in enumerate(cleaned):
        if not word or len(word) > MAX_WORD_CHARS:
            raise ValueError(f"word {i} must have 1 to {MAX_WORD_CHARS} characters")
    return cleaned


def compile_patterns(
    patterns: Sequence[str], *, ignore_case: bool = True, field: str = "patterns"
) -> list[re2._Regexp]:
    """``patterns`` compiled for RE2 (forgeline.patterns: linear time, whatever the pattern or
    the text); InvalidPattern, a ValueError for a pydantic validator, naming the first bad one
    (``field[i]``), so a bad regex fails when the config is validated, not on a request."""
    return [
        compile_pattern(pattern, f"{field}[{i}]", ignore_case=ignore_case)
        for i, pattern in enumerate(patterns)
    ]


class TextMatcher:
    """A word list and regexes, compiled once; finds them in texts, thread-safely.

    Words match case- and width-insensitively (see ``fold``). Regexes run on the folded text:
    NFKC, and casefolded unless ``ignore_case`` is off (then they see NFKC text with its case).
    Each match's label is ``label`` when set, else the configured word or ``pattern_label``.
    """

    def __init__(
        self,
        words: Sequence[str] = (),
        patterns: Sequence[str] = (),
        *,
        ignore_case: bool = True,
        label: str = "",
        pattern_label: str = "regex",
    ) -> None:
        self._casefold = ignore_case
        # folded word -> the word as configured (the first, when two fold alike)
        self._words: dict[str, str] = {}
        for word in clean_words(words):
            key = fold(word, casefold=ignore_case).text
            if key:  # a word of ignorable characters only would match everywhere
                self._words.setdefault(key, word)
        # Python's re, for its lookaround: the pattern is made here of escaped words in a trie,
        # so each position costs at most a word's length, never a client's backtracking.
        self._word_regex = (
            re.compile(_word_list_pattern(list(self._words))) if self._words else None
        )
        self._patterns = compile_patterns(patterns, ignore_case=ignore_case)
        self._label = label
        self._pattern_label = label or pattern_label

    def find(self, texts: Sequence[str]) -> list[list[TextMatch]]:
        return [self.find_one(text) for text in texts]

    def find_one(self, text: str) -> list[TextMatch]:
        folded = fold(text, casefold=self._casefold)
        found: list[TextMatch] = []
        if self._word_regex is not None:
            for m in self._word_regex.finditer(folded.text):
                start, end = folded.span(*m.span())
                found.append(TextMatch(start, end, self._label or self._words[m.group()]))
        for pattern in self._patterns:
            for m in pattern.finditer(folded.text):
                if m.end() > m.start():  # an empty match marks nothing
                    start, end = folded.span(*m.span())
                    found.append(TextMatch(start, end, self._pattern_label))
        found.sort(key=lambda m: (m.start, m.end))
        return found
