"""The output_rules contract (the safety service): an OutputMatcher is the condition of an output
rule. It is a TextCheck (forgeline.contracts.text_checks), shared with input filters."""

from __future__ import annotations

from forgeline.contracts.text_checks import RULE_ACTIONS, SafetyContext, TextCheck, TextMatch

__all__ = ["RULE_ACTIONS", "OutputMatcher", "SafetyContext", "TextCheck", "TextMatch"]


class OutputMatcher(TextCheck):
    """The condition of an output rule: what in a model's answer the rule acts on."""

    kind = "output_rules"
