"""The input filter contract, over every input filter to certify (fixture
``input_filters_plugin``).

Running this suite certifies an input filter: it is found through its entry point, built from its
contract config, prepared with a model lookup that holds a tiny classifier (model artifact
``contract-model``, classes "ham" and "spam"), then asked about awkward texts (empty, Chinese,
emoji, full-width, PII-looking, long). A filter whose defaults cannot run overrides the
``contract_config`` classmethod. Output rules share this contract (suite ``output_rules``).
"""

from __future__ import annotations

from forgeline.testing import text_checks

__all__ = [
    "test_fulfils_the_contract_and_documents_its_config",
    "test_finds_well_formed_matches_in_any_text",
    "test_is_safe_to_call_from_several_threads",
]


def test_fulfils_the_contract_and_documents_its_config(input_filters_plugin):
    text_checks.assert_kernel_contract("input_filters", input_filters_plugin)


def test_finds_well_formed_matches_in_any_text(input_filters_plugin, forgeline_safety_context):
    check = text_checks.prepared(input_filters_plugin, forgeline_safety_context)
    text_checks.assert_finds_well_formed(check)


def test_is_safe_to_call_from_several_threads(input_filters_plugin, forgeline_safety_context):
    check = text_checks.prepared(input_filters_plugin, forgeline_safety_context)
    text_checks.assert_thread_safe(check)
