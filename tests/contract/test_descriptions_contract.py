"""Every built-in plugin's description is a whole sentence (issue 19).

The description users read in `forgeline plugins list`, `forgeline plugins show` and ListPlugins
is the first paragraph of the plugin's docstring. It used to be the docstring's first physical
line, which cut 11 built-in plugins in the middle of a sentence ("... or masks what").
"""

from __future__ import annotations

import inspect
import re

import pytest

from forgeline.registry import KIND_CONTRACTS, PluginRegistry, description_problem

REGISTRY = PluginRegistry()
BUILT_IN = [
    (kind, entry.name)
    for kind in sorted(KIND_CONTRACTS)
    for entry in REGISTRY.discover(kind)
    if entry.distribution == "forgeline"
]


def test_every_kind_has_built_in_plugins():
    assert {kind for kind, _ in BUILT_IN} == set(KIND_CONTRACTS)


@pytest.mark.parametrize(("kind", "name"), BUILT_IN, ids=[f"{k}:{n}" for k, n in BUILT_IN])
def test_the_description_is_the_whole_first_paragraph_and_ends_a_sentence(kind, name):
    cls = REGISTRY.get(kind, name)
    description = cls.description()
    assert description_problem(cls) is None
    assert re.search(r"[.!?][\"')\]]*$", description), description
    first_paragraph = re.split(r"\n\s*\n", inspect.cleandoc(cls.__doc__))[0]
    assert description == " ".join(first_paragraph.split())
