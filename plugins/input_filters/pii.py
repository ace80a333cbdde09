"""Personal data in text: emails, phone numbers, ID numbers, payment card numbers, IP addresses.

Precision comes first (masking an order number annoys users): numbers must have the shape of
the thing and pass its checksum (Luhn for cards, ISO 7064 MOD 11-2 and a real birth date for
Chinese resident IDs, the issued ranges for US SSNs), and digits run together with other digits
or letters are never a match. Texts are matched after NFKC, so full-width digits count.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date
from typing import Literal

from pydantic import Field

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.input_filters import InputFilter, TextMatch
from forgeline.plugins.input_filters.text import fold

Kind = Literal["email", "phone", "id_number", "card_number", "ip_address"]
KINDS: tuple[Kind, ...] = ("email", "phone", "id_number", "card_number", "ip_address")
# Where two finds overlap, the one of the kind listed first is kept (an 18-digit ID that happens
# to pass Luhn is an ID; the digits of a card are not also a phone number).
PRIORITY: tuple[Kind, ...] = ("email", "id_number", "card_number", "phone", "ip_address")

# Digits glued to letters or other digits are part of something else (an order or a SKU).
_START = r"(?<![0-9A-Za-z])"
_END = r"(?![0-9A-Za-z])"
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def _compile(pattern: str) -> re.Pattern:
    # ASCII digits only: NFKC already made full-width digits ASCII, and \d would take any
    # script's digits.
    return re.compile(pattern, re.ASCII)


def luhn_valid(digits: str) -> bool:
    """Whether a card number's last digit is its Luhn check digit."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = int(char)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(text: str) -> bool:
    digits = re.sub(r"[ -]", "", text)
    # Issuers' numbers start with 2-6 (Mastercard, Amex, Visa, Discover, UnionPay, JCB...).
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_valid(digits)


def _chinese_id(text: str) -> bool:
    try:
        born = date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:  # 19990231
        return False
    total = sum(int(c) * w for c, w in zip(text[:17], _CN_ID_WEIGHTS, strict=True))
    return (
        date(1900, 1, 1) <= born <= date.today() and "10X98765432"[total % 11] == text[17].upper()
    )


def _phone(text: str) -> bool:
    return 8 <= sum(c.isdigit() for c in text) <= 15


Check = Callable[[str], bool] | None
# Per kind: patterns and the check a match must pass (None: the pattern says it all).
_DETECTORS: dict[Kind, list[tuple[re.Pattern, Check]]] = {
    "email": [
        (
            _compile(
                r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*"
                r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}(?![A-Za-z0-9-])"
            ),
            None,
        )
    ],
    "phone": [
        # Chinese mobile: 1[3-9] and 9 digits, optionally +86 / 0086 and 3-4-4 groups.
        (_compile(_START + r"(?:(?:\+|00)86[ -]?)?1[3-9]\d([ -]?)\d{4}\1\d{4}" + _END), None),
        # NANP: (415) 555-0132, 415-555-0132, +1 415.555.0132; a separator is required.
        (
            _compile(
                r"(?<![0-9A-Za-z+])(?:\+?1[ .-]?)?(?:\([2-9]\d\d\)[ .-]?|[2-9]\d\d[ .-])"
                r"[2-9]\d\d[ .-]\d{4}" + _END
            ),
            None,
        ),
        # International with a + and a country code: +44 20 7946 0958, +49 (30) 1234567.
        (_compile(r"(?<![0-9A-Za-z+])\+[1-9]\d{0,2}(?:[ .-]?\(?\d{1,5}\)?){1,6}" + _END), _phone),
    ],
    "id_number": [
        # Chinese resident ID: region, birth date, sequence, check character.
        (
            _compile(
                _START + r"[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
                r"\d{3}[\dXx]" + _END
            ),
            _chinese_id,
        ),
        # US SSN: never area 000, 666 or 9xx, group 00 or serial 0000.
        (
            _compile(
                r"(?<![0-9A-Za-z-])(?!000|666|9)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![0-9A-Za-z]|-\d)"
            ),
            None,
        ),
    ],
    "card_number": [
        (
            _compile(
                r"(?<![0-9A-Za-z-])(?:\d{13,19}"  # run together
                r"|\d{4}([ -])\d{4}\1\d{4}\1\d{4}(?:\1\d{3})?"  # 4-4-4-4(-3)
                r"|\d{4}([ -])\d{6}\2\d{4,5})" + _END  # 4-6-5 (Amex), 4-6-4 (Diners)
            ),
            _card,
        )
    ],
    "ip_address": [
        (
            _compile(
                r"(?<![0-9A-Za-z.])" + rf"{_OCTET}(?:\.{_OCTET}){{3}}" + r"(?![0-9A-Za-z]|\.\d)"
            ),
            None,
        )
    ],
}


class Pii(InputFilter):
    """Finds emails, phone numbers, ID numbers, payment card numbers and IP addresses."""

    name = "pii"
    default_action = "redact"

    class Config(PluginConfig):
        kinds: list[Kind] = Field(
            default_factory=lambda: list(KINDS),
            min_length=1,
            description="What to find: email, phone (Chinese mobile, NANP, + international), "
            "id_number (Chinese resident ID, US SSN), card_number (Luhn-valid), ip_address "
            "(IPv4). Each match is labelled with its kind.",
        )

    def __init__(self, config: Config | None = None) -> None:
        super().__init__(config)
        self._detectors = [
            (kind, pattern, check)
            for kind in PRIORITY
            if kind in self.config.kinds
            for pattern, check in _DETECTORS[kind]
        ]

    def find(self, texts: Sequence[str]) -> list[list[TextMatch]]:
        return [self._find_one(text) for text in texts]

    def _find_one(self, text: str) -> list[TextMatch]:
        folded = fold(text, casefold=False)
        taken: list[tuple[int, int]] = []
        found: list[TextMatch] = []
        for kind, pattern, check in self._detectors:  # in priority order
            for m in pattern.finditer(folded.text):
                start, end = m.span()
                if any(start < e and s < end for s, e in taken):
                    continue
                if check is None or check(m.group()):
                    taken.append((start, end))
                    found.append(TextMatch(*folded.span(start, end), kind))
        found.sort(key=lambda m: (m.start, m.end))
        return found
