"""The pytest plugin (entry point group ``pytest11``): the ``--forgeline-contracts`` option and
the parametrization of every suite's ``<kind>_plugin`` fixture over the plugins to certify."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from forgeline.contracts.text_checks import SafetyContext
from forgeline.registry import KIND_CONTRACTS, PluginRegistry
from forgeline.testing.selection import PLUGIN_FIXTURE_SUFFIX, plugins_to_certify

OPTION = "forgeline_contracts"
# One registry per session: discovery reads package metadata, which does not change during a run.
_REGISTRY_KEY = pytest.StashKey[PluginRegistry]()


def pytest_addoption(parser: pytest.Parser) -> None:
    help_text = (
        "certify only the plugins of this distribution (its name as pip knows it) with "
        "forgeline's contract suites; default: every discovered plugin"
    )
    parser.addoption("--forgeline-contracts", dest=OPTION, metavar="DISTRIBUTION", help=help_text)
    parser.addini(OPTION, help_text)


def selected_distribution(config: pytest.Config) -> str | None:
    """The distribution named on the command line, else in the ini options, else None (all)."""
    return config.getoption(OPTION) or config.getini(OPTION) or None


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_REGISTRY_KEY] = PluginRegistry()


@pytest.fixture
def forgeline_empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current directory: a plugin must write only into the folder it is given."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


@pytest.fixture(scope="session")
def forgeline_safety_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SafetyContext]:
    """The model lookup a service gives its safety checks, over an artifact store holding the
    tiny classifier of forgeline.testing.text_checks (built once per run: it takes seconds)."""
    from forgeline.testing import text_checks

    store = text_checks.model_store(tmp_path_factory.mktemp("forgeline-safety-artifacts"))
    yield text_checks.safety_context(store)
    store.close()


@pytest.fixture(scope="session")
def forgeline_tiny_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT review classifier trained with the training recipe in this process
    (forgeline.testing.classifiers; trained once per run: it takes seconds)."""
    from forgeline.testing import classifiers

    return classifiers.classifier(tmp_path_factory.mktemp("forgeline-tiny-classifier"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for kind in KIND_CONTRACTS:
        fixture = kind + PLUGIN_FIXTURE_SUFFIX
        if fixture not in metafunc.fixturenames:
            continue
        registry = metafunc.config.stash[_REGISTRY_KEY]
        entries = plugins_to_certify(registry, kind, selected_distribution(metafunc.config))
        metafunc.parametrize(
            fixture,
            [registry.get(kind, entry.name) for entry in entries],
            ids=[entry.name for entry in entries],
        )


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """A named distribution with no plugin of any kind is a typo or a package not installed:
    say so rather than pass with every contract skipped."""
    distribution = selected_distribution(config)
    if distribution is None:
        return
    registry = config.stash[_REGISTRY_KEY]
    if not any(plugins_to_certify(registry, kind, distribution) for kind in KIND_CONTRACTS):
        raise pytest.UsageError(
            f"--forgeline-contracts: no forgeline plugin of distribution {distribution!r} is "
            "installed (pip install it first; entry points are package metadata)"
        )
    # A kind the distribution has no plugin of leaves its suite an empty parameter set, which
    # pytest would report as a skip per test: those are not contracts of this package.
    keep, drop = [], []
    for item in items:
        (drop if _uncertified_kind(item) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _uncertified_kind(item: pytest.Item) -> bool:
    """Whether ``item`` asks for a ``<kind>_plugin`` that was parametrized with no plugin."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    return any(
        not isinstance(params.get(kind + PLUGIN_FIXTURE_SUFFIX), type)
        for kind in KIND_CONTRACTS
        if kind + PLUGIN_FIXTURE_SUFFIX in getattr(item, "fixturenames", ())
    )
