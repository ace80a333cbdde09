"""Every installed input filter and output rule matcher, forgeline's own and third parties',
against the safety check contract the two kinds share: found through its entry point, built from
its contract config through the registry, prepared with a model lookup that holds a tiny
classifier, then asked about awkward texts (empty, Chinese, emoji, full-width, long)."""

from __future__ import annotations

import pytest

from forgeline.registry import PluginRegistry
from tests.contract import safety_harness as harness

REGISTRY = PluginRegistry()
# Each kind's built-in plugins (a third party's are certified beside them).
KINDS = {
    "input_filters": {"blocklist", "pii", "classifier"},
    "output_rules": {"regex", "keywords", "classifier"},
}
PLUGINS = [(kind, entry.name) for kind in KINDS for entry in REGISTRY.discover(kind)]


@pytest.fixture(scope="module")
def safety(tmp_path_factory):
    store = harness.model_store(tmp_path_factory.mktemp("artifacts"))
    yield harness.safety_context(store)
    store.close()


@pytest.fixture(params=PLUGINS, ids="{0[0]}:{0[1]}".format)
def check(request, safety):
    kind, name = request.param
    return harness.prepared(REGISTRY, kind, name, safety)


@pytest.mark.parametrize("kind", KINDS)
def test_there_are_checks_to_certify(kind):
    assert KINDS[kind] <= {name for k, name in PLUGINS if k == kind}


@pytest.mark.parametrize("plugin", PLUGINS, ids="{0[0]}:{0[1]}".format)
def test_it_fulfils_the_contract_and_documents_its_config(plugin):
    kind, name = plugin
    harness.assert_kernel_contract(kind, REGISTRY.get(kind, name))


def test_it_finds_well_formed_matches_in_any_text(check):
    harness.assert_finds_well_formed(check)


def test_it_is_safe_to_call_from_several_threads(check):
    harness.assert_thread_safe(check)
