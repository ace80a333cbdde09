"""Regular expressions that clients send (blocklist regexes, regex output rules...), compiled
for RE2, a linear-time engine: a backtracking engine takes hours on ``(a+)+$`` against
``"a" * 40 + "!"`` and holds the GIL the whole time, which froze whole services.

Patterns are written in Python's syntax and keep its meaning where RE2 can express it: ``\\d``,
``\\w`` and ``\\s`` are Unicode classes as in Python (RE2's own are ASCII), ``\\Z``, ``\\uXXXX``,
``\\N{NAME}``, ``{,n}`` and ``(?#...)`` are translated. What only a backtracking engine can do is
refused, naming the syntax (``REFUSED_SYNTAX``); ``\\b`` and ``\\B`` stay ASCII word boundaries
(RE2 has no other).
"""

from __future__ import annotations

import unicodedata

import re2

from forgeline.errors import InvalidArgument, excerpt

MAX_PATTERN_CHARS = 4096
# RE2's memory budget per pattern (its compiled program and DFA cache): a pattern that needs
# more, such as a huge counted repetition, is refused when compiled, not at match time.
MAX_PATTERN_MEMORY = 8 << 20
REFUSED_SYNTAX = (
    "RE2 refuses backreferences (\\1, (?P=name)), lookahead and lookbehind ((?=, (?!, (?<=, "
    "(?<!), atomic groups (?>...), possessive quantifiers (a*+), conditionals and verbose mode "
    "(?x); \\b is an ASCII word boundary"
)

# Python's classes for str patterns, which RE2 spells differently: \w is str.isalnum() or "_",
# \d a decimal digit, \s str.isspace() (tests/security/test_regex_engine.py checks the list).
_WORD = r"\p{L}\p{N}_"
_DIGIT = r"\p{Nd}"
_SPACE = (
    r"\t-\r\x1c-\x20\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}"
    r"\x{3000}"
)
_CLASSES = {"w": _WORD, "d": _DIGIT, "s": _SPACE}
_GROUPS_REFUSED = (  # after "(?"; longest first
    ("<=", "lookbehind (?<=...)"),
    ("<!", "lookbehind (?<!...)"),
    ("=", "lookahead (?=...)"),
    ("!", "lookahead (?!...)"),
    ("P=", "a backreference (?P=name)"),
    (">", "an atomic group (?>...)"),
    ("(", "a conditional (?(...)...)"),
)


class InvalidPattern(InvalidArgument, ValueError):
    """A refused pattern. Also a ValueError, so a pydantic validator that compiles a config's
    patterns reports it against the config field, beside the config's other problems."""


def compile_pattern(
    pattern: str, field: str = "pattern", *, ignore_case: bool = False
) -> re2._Regexp:
    """``pattern`` (Python syntax) compiled by RE2; InvalidPattern naming ``field`` and the
    refused syntax or RE2's reason. Case-insensitive matching is RE2's Unicode case folding."""
    if not isinstance(pattern, str):
        raise InvalidPattern.for_field(field, "must be text")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise InvalidPattern.for_field(
            field, f"is {len(pattern):,} characters; the limit is {MAX_PATTERN_CHARS:,}"
        )
    options = re2.Options()
    options.log_errors = False  # RE2 would write every refused pattern to stderr
    options.case_sensitive = not ignore_case
    options.max_mem = MAX_PATTERN_MEMORY
    try:
        return re2.compile(_translate(pattern, field), options)
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args else str(exc)
        raise _malformed(field, pattern, reason) from None


def _malformed(field: str, pattern: str, reason: str) -> InvalidPattern:
    if len(reason) > 120:  # RE2 quotes the rest of the pattern from where it failed
        reason = reason[:120] + "..."
    return InvalidPattern.for_field(
        field,
        f"{excerpt(pattern)} is not a valid regular expression: {reason}. {REFUSED_SYNTAX}",
    )


def _translate(pattern: str, field: str) -> str:
    """``pattern`` in RE2's spelling; InvalidPattern at the first construct RE2 cannot run."""

    def refuse(what: str, at: int) -> InvalidPattern:
        return InvalidPattern.for_field(
            field,
            f"{excerpt(pattern)}: {what} (at character {at}) is not supported: patterns run "
            f"on RE2, which matches in linear time. {REFUSED_SYNTAX}",
        )

    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    class_start = 0  # where a class's members begin: a "]" there is a member
    after_quantifier = False
    while i < n:
        char = pattern[i]
        quantifier = False
        if char == "\\" and i + 1 < n:
            escape = pattern[i + 1]
            if escape == "Q":  # RE2's literal text, \Q...\E: copied as it is
                end = pattern.find("\\E", i + 2)
                end = n if end < 0 else end + 2
                out.append(pattern[i:end])
                i = end
                continue
            i += 2
            if escape in "123456789" and not in_class:
                raise refuse(f"a backreference \\{escape}", i - 2)
            if escape in _CLASSES:
                members = _CLASSES[escape]
                out.append(members if in_class else f"[{members}]")
            elif escape in "WS":
                if in_class:
                    raise refuse(f"\\{escape} inside [...]", i - 2)
                out.append(f"[^{_CLASSES[escape.lower()]}]")
            elif escape == "D":
                out.append(r"\P{Nd}")
            elif escape == "Z":
                out.append(r"\z")
            elif escape in "uU":
                width = 4 if escape == "u" else 8
                digits = pattern[i : i + width]
                if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise _malformed(
                        field, pattern, f"incomplete \\{escape} escape at character {i - 2}"
                    )
                out.append(f"\\x{{{digits}}}")
                i += width
            elif escape == "N" and pattern.startswith("{", i):
                end = pattern.find("}", i)
                try:
                    named = unicodedata.lookup(pattern[i + 1 : end]) if end > 0 else ""
                except KeyError:
                    named = ""
                if not named:
                    raise _malformed(field, pattern, f"unknown character name at character {i - 2}")
                out.append(f"\\x{{{ord(named):x}}}")
                i = end + 1
            else:
                out.append("\\" + escape)
            after_quantifier = False
            continue
        if in_class:
            if char == "[" and pattern.startswith("[:", i) and (end := pattern.find(":]", i)) > 0:
                out.append(pattern[i : end + 2])  # a POSIX class, [:alpha:]
                i = end + 2
                continue
            if char == "]" and i > class_start:
                in_class = False
            out.append(char)
            i += 1
            continue
        if char == "[":
            in_class = True
            class_start = i + 2 if pattern.startswith("^", i + 1) else i + 1
            out.append(pattern[i:class_start])
            i = class_start
            after_quantifier = False
            continue
        if char == "(" and pattern.startswith("(?", i):
            rest = pattern[i + 2 : i + 4]
            for start, what in _GROUPS_REFUSED:
                if rest.startswith(start):
                    raise refuse(what, i)
            if rest.startswith("#"):  # a comment: it ends at the first ")"
                end = pattern.find(")", i)
                i = n if end < 0 else end + 1
                continue
            out.append("(?")
            i += 2
            after_quantifier = False
            continue
        if char in "*+?":
            if after_quantifier and char == "+":
                raise refuse("a possessive quantifier", i)
            quantifier = not (after_quantifier and char == "?")  # "*?" is lazy, one quantifier
        elif char == "{" and (counted := _counted(pattern, i)) is not None:
            out.append(counted[0])
            i = counted[1]
            after_quantifier = True
            continue
        out.append(char)
        i += 1
        after_quantifier = quantifier
    return "".join(out)


def _counted(pattern: str, i: int) -> tuple[str, int] | None:
    """The counted repetition at ``pattern[i]`` ("{") in RE2's spelling and where it ends, or
    None where Python reads the brace as text. Python's ``{,n}`` is ``{0,n}`` for RE2."""
    end = pattern.find("}", i)
    if end < 0:
        return None
    low, comma, high = pattern[i + 1 : end].partition(",")
    if not (low or high) or any(part and not _ascii_number(part) for part in (low, high)):
        return None
    return "{" + (low or "0") + comma + high + "}", end + 1


def _ascii_number(text: str) -> bool:
    return text.isascii() and text.isdigit()
