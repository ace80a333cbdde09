"""The input_filters contract (the safety service): an InputFilter screens what users send before
a model sees it. It is a TextCheck (forgeline.contracts.text_checks), shared with output rules."""

from __future__ import annotations

from forgeline.contracts.text_checks import RULE_ACTIONS, SafetyContext, TextCheck, TextMatch

__all__ = ["RULE_ACTIONS", "InputFilter", "SafetyContext", "TextCheck", "TextMatch"]


class InputFilter(TextCheck):
    """Screens what users send before a model sees it (a blocklist, PII, a classifier)."""

    kind = "input_filters"
