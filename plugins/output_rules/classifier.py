"""A platform-trained text classifier as the condition of an output rule."""

from __future__ import annotations

from forgeline.contracts.output_rules import OutputMatcher
from forgeline.plugins.input_filters.classifier import ClassifierCheck


class ClassifierRule(ClassifierCheck, OutputMatcher):
    """Acts on answers a platform-trained classifier (toxicity, off-topic...) flags."""

    name = "classifier"
