"""Every installed input filter, forgeline's own and third parties', against the safety check
contract: found through its entry point, built from its contract config through the registry,
prepared with a model lookup that holds a tiny classifier, then asked about awkward texts (empty,
Chinese, emoji, full-width, long)."""

from __future__ import annotations

import pytest

from forgeline.registry import PluginRegistry
from tests.contract import safety_harness as harness

KIND = "input_filters"
REGISTRY = PluginRegistry()
NAMES = [entry.name for entry in REGISTRY.discover(KIND)]


@pytest.fixture(scope="module")
def safety(tmp_path_factory):
    store = harness.model_store(tmp_path_factory.mktemp("artifacts"))
    yield harness.safety_context(store)
    store.close()


@pytest.fixture(params=NAMES)
def check(request, safety):
    return harness.prepared(REGISTRY, KIND, request.param, safety)


def test_there_are_checks_to_certify():
    assert {"blocklist", "pii", "classifier"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_it_fulfils_the_contract_and_documents_its_config(name):
    harness.assert_kernel_contract(KIND, REGISTRY.get(KIND, name))


def test_it_finds_well_formed_matches_in_any_text(check):
    harness.assert_finds_well_formed(check)


def test_it_is_safe_to_call_from_several_threads(check):
    harness.assert_thread_safe(check)
