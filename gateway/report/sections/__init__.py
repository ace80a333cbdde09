"""The page's sections, one per result shape: each finds its shape wherever a step's response
holds it and draws it ("" when the run has none), in the order of SECTIONS."""

from collections.abc import Callable

from forgeline.gateway.report.sections.cleaning import section_cleaning
from forgeline.gateway.report.sections.compression import section_compression
from forgeline.gateway.report.sections.continual import section_continual
from forgeline.gateway.report.sections.curves import section_curves
from forgeline.gateway.report.sections.evaluation import section_evaluations
from forgeline.gateway.report.sections.fairness import section_fairness
from forgeline.gateway.report.sections.generation import section_generation
from forgeline.gateway.report.sections.profile import section_profile
from forgeline.gateway.report.sections.search import section_searches

# A later service adds its section here. (section_generation is drawn by section_evaluations.)
SECTIONS: list[Callable[[dict], str]] = [
    section_profile,
    section_evaluations,
    section_curves,
    section_cleaning,
    section_searches,
    section_compression,
    section_continual,
    section_fairness,
]

__all__ = [
    "SECTIONS",
    "section_cleaning",
    "section_compression",
    "section_continual",
    "section_curves",
    "section_evaluations",
    "section_fairness",
    "section_generation",
    "section_profile",
    "section_searches",
]
