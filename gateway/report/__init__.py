"""A run's report: a JSON document with every metric, series and artifact of the run, and a
self-contained HTML page drawn from it (inline SVG plots, no script, no external resource).

The JSON twin is built from the run (its steps' responses, metrics and gates) and the events its
steps streamed (document.py); the page is rendered from the JSON alone (page.py), so a report can
be re-rendered later. Plots come from *sections* (sections/): a section looks for a shape in the
document (an Evaluation with a confusion matrix, a cleaning report with rows in and out per
cleaner, metric series per training step) wherever a step's response holds it, so a new service's
results join the report by adding a section, with no change to the orchestrator. plots.py draws
the figures in a style of its own, leaving matplotlib's global settings as they were.

The page opens with what a reader wants first (overview.py): a summary card (the run's name,
state, start and duration, the final evaluation's scores against the baseline, compression and
every gate), then the configuration (each step's model, data and hyper-parameters, and the
library versions); every evaluation names the split it was scored on.
"""

from forgeline.gateway.report.document import document
from forgeline.gateway.report.page import render
from forgeline.gateway.report.publish import REPORT_HTML, REPORT_JSON, publish, write
from forgeline.gateway.report.sections import (
    SECTIONS,
    section_cleaning,
    section_compression,
    section_continual,
    section_curves,
    section_evaluations,
    section_fairness,
    section_generation,
    section_profile,
    section_searches,
)

__all__ = [
    "REPORT_HTML",
    "REPORT_JSON",
    "SECTIONS",
    "document",
    "publish",
    "render",
    "section_cleaning",
    "section_compression",
    "section_continual",
    "section_curves",
    "section_evaluations",
    "section_fairness",
    "section_generation",
    "section_profile",
    "section_searches",
    "write",
]
