"""forgeline.registry: two-phase plugin loading over real (temporary) distributions.

Each test writes a distribution the way pip installs one: ``<name>-<version>.dist-info`` with
METADATA and entry_points.txt, plus its modules, in a folder put on sys.path. importlib.metadata
finds it there exactly as it finds an installed package. Its plugins are given names no real
package uses, and registries are allow-listed to them where loading would otherwise import the
built-in plugins too.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from forgeline.contracts.cleaners import Cleaner
from forgeline.errors import FailedPrecondition, InvalidArgument
from forgeline.registry import PluginRegistry, config_schema, contract_problem

GOOD = '''
import pyarrow as pa
from pydantic import Field

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.cleaners import CleanContext, Cleaner, CleanResult


class {cls}(Cleaner):
    """Upper-cases the text column."""

    name = "{name}"

    class Config(PluginConfig):
        threshold: float = Field(0.5, ge=0, le=1, description="A number between 0 and 1.")
        mode: str = Field("upper", description="Which case.")

    def clean(self, table: pa.Table, ctx: CleanContext) -> CleanResult:
        return CleanResult(table)
'''

MakeDist = Callable[..., Path]


@pytest.fixture
def make_dist(tmp_path, monkeypatch) -> Iterator[MakeDist]:
    """make_dist(name, {entry name: "module:Class"}, {module: source}, kind="cleaners")."""
    modules: list[str] = []
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(
        dist: str,
        entries: dict[str, str],
        sources: dict[str, str],
        kind: str = "cleaners",
        version: str = "1.0",
    ) -> Path:
        info = tmp_path / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = "".join(f"{name} = {value}\n" for name, value in entries.items())
        (info / "entry_points.txt").write_text(f"[forgeline.{kind}]\n{lines}")
        for module, source in sources.items():
            (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
            modules.append(module)
        return info

    yield make
    for module in modules:
        sys.modules.pop(module, None)


def good(cls: str, name: str) -> str:
    return GOOD.format(cls=cls, name=name)


# --- discover ----------------------------------------------------------------------------------


def test_discover_lists_entry_points_sorted_without_importing(make_dist):
    make_dist(
        "fake-dist",
        {"zz_fake_late": "zz_fake_mod:Late", "aa_fake_early": "zz_fake_mod:Early"},
        {"zz_fake_mod": "raise RuntimeError('imported during discover')"},
    )
    registry = PluginRegistry()
    entries = [e for e in registry.discover("cleaners") if e.distribution == "fake-dist"]
    assert [(e.name, e.value, e.version, e.kind) for e in entries] == [
        ("aa_fake_early", "zz_fake_mod:Early", "1.0", "cleaners"),
        ("zz_fake_late", "zz_fake_mod:Late", "1.0", "cleaners"),
    ]
    names = [e.name for e in registry.discover("cleaners")]
    assert names == sorted(names)
    assert "zz_fake_mod" not in sys.modules
    assert registry.errors() == []


def test_a_plugin_is_imported_on_first_use(make_dist):
    make_dist(
        "fake-dist", {"fake_upper": "fake_lazy:Upper"}, {"fake_lazy": good("Upper", "fake_upper")}
    )
    registry = PluginRegistry(allow=["fake_upper"])
    assert [e.name for e in registry.discover("cleaners")] == ["fake_upper"]
    assert "fake_lazy" not in sys.modules
    cls = registry.get("cleaners", "fake_upper")
    assert cls.__module__ == "fake_lazy" and cls.name == "fake_upper"
    assert registry.get("cleaners", "fake_upper") is cls
    assert registry.load_kind("cleaners") == [cls]


# --- load ----------------------------------------------------------------------------------------


def test_a_plugin_that_fails_to_import_is_skipped_and_reported(make_dist):
    make_dist(
        "broken-dist",
        {"fake_broken": "fake_broken_mod:Broken", "fake_fine": "fake_fine_mod:Fine"},
        {
            "fake_broken_mod": "raise ImportError('needs libfoo.so')",
            "fake_fine_mod": good("Fine", "fake_fine"),
        },
    )
    registry = PluginRegistry(allow=["fake_broken", "fake_fine"])
    loaded = registry.load_kind("cleaners")
    assert [cls.name for cls in loaded] == ["fake_fine"]
    (error,) = registry.errors("cleaners")
    assert (error.kind, error.name, error.distribution) == (
        "cleaners",
        "fake_broken",
        "broken-dist",
    )
    assert error.error == "ImportError: needs libfoo.so"
    assert registry.errors("loaders") == []
    registry.check_required()  # not required: the service carries on

    with pytest.raises(FailedPrecondition) as caught:
        registry.get("cleaners", "fake_broken")
    assert caught.value.reason == "PLUGIN_BROKEN"
    assert "libfoo" in caught.value.message


WRONG_NAME = good("Named", "something_else")
UNDOCUMENTED = '''
from pydantic import Field
from forgeline.contracts.base import PluginConfig
from forgeline.contracts.cleaners import Cleaner, CleanResult


class Undocumented(Cleaner):
    """Has a config field nobody explained."""

    name = "fake_undocumented"

    class Config(PluginConfig):
        threshold: float = 0.5
        mode: str = Field("a", description="Documented.")

    def clean(self, table, ctx):
        return CleanResult(table)
'''
CUT = '''
from forgeline.contracts.cleaners import Cleaner, CleanResult


class Cut(Cleaner):
    """Drops the rows an input filter (blocklist, pii, classifier...) matches, or masks what"""

    name = "fake_cut"

    def clean(self, table, ctx):
        return CleanResult(table)
'''
NOT_A_CLEANER = """
class NotACleaner:
    name = "fake_plain"

    def clean(self, table, ctx):
        return table
"""


@pytest.mark.parametrize(
    ("entry", "source", "problem"),
    [
        ("fake_named", WRONG_NAME, "name is 'something_else' but its entry point is named"),
        ("fake_undocumented", UNDOCUMENTED, "fields without a description: ['threshold']"),
        ("fake_plain", NOT_A_CLEANER, "is not a subclass of forgeline.contracts.cleaners.Cleaner"),
        (
            "fake_cut",
            CUT,
            "description does not end a sentence (cut short?): it ends 'matches, or masks what'",
        ),
    ],
    ids=["wrong-name", "undocumented-field", "not-a-cleaner", "cut-description"],
)
def test_a_class_that_breaks_the_contract_is_refused(make_dist, entry, source, problem):
    module = f"fake_contract_{entry}"
    make_dist("contract-dist", {entry: f"{module}:{_class_in(source)}"}, {module: source})
    registry = PluginRegistry(allow=[entry])
    assert registry.load_kind("cleaners") == []
    (error,) = registry.errors()
    assert (error.name, error.distribution) == (entry, "contract-dist")
    assert problem in error.error


def _class_in(source: str) -> str:
    return next(
        line.split()[1].split("(")[0].rstrip(":")
        for line in source.splitlines()
        if line.startswith("class ")
    )


def test_contract_problem_names_each_fault():
    class Good(Cleaner):
        """Fine."""

        name = "good_one"

        def clean(self, table, ctx):
            return table

    class Abstract(Cleaner):
        name = "abstract_one"

    class BadConfig(Good):
        name = "bad_config"
        Config = dict  # not a PluginConfig

    class Upper(Good):
        name = "Upper"

    assert contract_problem("cleaners", "good_one", Good) is None
    assert "leaves abstract methods: ['clean']" in contract_problem(
        "cleaners", "abstract_one", Abstract
    )
    assert "must subclass forgeline.contracts.base.PluginConfig" in contract_problem(
        "cleaners", "bad_config", BadConfig
    )
    assert "short lowercase" in contract_problem("cleaners", "Upper", Upper)
    assert "not a subclass of forgeline.contracts.augmenters.Augmenter" in contract_problem(
        "augmenters", "good_one", Good
    )
    assert "unknown plugin kind 'widgets'" in contract_problem("widgets", "good_one", Good)
    assert "not a subclass" in contract_problem("cleaners", "good_one", lambda: None)


def test_the_description_is_the_docstrings_first_paragraph_with_its_lines_joined():
    class Wrapped(Cleaner):
        """Drops the rows an input filter (blocklist, pii, classifier...) matches, or masks what
        it found.

        A second paragraph says how, for the reader of the code only.
        """

        name = "wrapped"

        def clean(self, table, ctx):
            return table

    assert Wrapped.description() == (
        "Drops the rows an input filter (blocklist, pii, classifier...) matches, or masks what "
        "it found."
    )
    assert contract_problem("cleaners", "wrapped", Wrapped) is None


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        (None, "Described has no description"),
        (
            "Trains a smaller student on the teacher's softened predictions plus the hard labels",
            "does not end a sentence",
        ),
        ("Options:\n\n- one\n- two", "does not end a sentence"),
    ],
    ids=["none", "cut", "not-a-sentence"],
)
def test_a_description_that_is_not_a_whole_sentence_breaks_the_contract(doc, problem):
    class Described(Cleaner):
        name = "some_cleaner"

        def clean(self, table, ctx):
            return table

    Described.__doc__ = doc
    assert problem in contract_problem("cleaners", "some_cleaner", Described)
    for whole in ("Keeps rows (all of them).", "Is it a sentence?", 'Says "hi."'):
        Described.__doc__ = whole
        assert contract_problem("cleaners", "some_cleaner", Described) is None, whole


OLD_HOME = '''
from forgeline.registry import CleanContext, Cleaner, CleanResult, PluginConfig


class OldHome(Cleaner):
    """Imports its contract from forgeline.registry, as plugins written before issue 19 do."""

    name = "fake_old_home"

    def clean(self, table, ctx: CleanContext) -> CleanResult:
        return CleanResult(table)
'''


def test_a_plugin_importing_its_contract_from_the_old_home_still_loads(make_dist):
    make_dist(
        "old-dist", {"fake_old_home": "fake_old_home_mod:OldHome"}, {"fake_old_home_mod": OLD_HOME}
    )
    registry = PluginRegistry(allow=["fake_old_home"])
    (cls,) = registry.load_kind("cleaners")
    assert cls.name == "fake_old_home" and registry.errors() == []


def test_the_names_services_import_from_the_registry_are_those_of_their_new_homes():
    """services/ imports the contracts from forgeline.registry until a follow-up moves it to
    forgeline.contracts: each name must stay there, as the very object of its new home."""
    import importlib

    import forgeline.registry as registry

    homes = [
        importlib.import_module(module)
        for module in [
            "forgeline.redaction",
            "forgeline.searchspace",
            "forgeline.contracts.text_checks",
            *(f"forgeline.contracts.{kind}" for kind in registry.KIND_CONTRACTS),
        ]
    ]
    services_use = """AugmentContext Baseline BaselineContext BaselineResult CleanContext Cleaner
        CompressContext CompressionTarget Compressor DEFAULT_MASK DISTRIBUTIONS FairnessRows
        FinetuneContext FinetuneStrategy LoadSource Loader Mitigator Objective ReferencedDataset
        RegularizerContext ReplayPool RULE_ACTIONS SafetyContext Scheduler ScoredRows
        SearchContext SearchParameter Searcher TASKS TextCheck TextMatch Tracker TrackerRun
        TrainRun optuna_choice redact""".split()
    for name in services_use:
        assert name in registry.__all__, name
        assert any(getattr(home, name, None) is getattr(registry, name) for home in homes), name


def test_a_duplicate_name_from_a_second_distribution_is_reported(make_dist):
    make_dist(
        "dist-a", {"fake_dupe": "fake_dupe_a:Dupe"}, {"fake_dupe_a": good("Dupe", "fake_dupe")}
    )
    make_dist(
        "dist-b", {"fake_dupe": "fake_dupe_b:Dupe"}, {"fake_dupe_b": good("Dupe", "fake_dupe")}
    )
    registry = PluginRegistry(allow=["fake_dupe"])
    (cls,) = registry.load_kind("cleaners")
    assert cls.__module__ == "fake_dupe_a"
    (error,) = registry.errors()
    assert (error.name, error.distribution) == ("fake_dupe", "dist-b")
    assert "duplicate plugin name 'fake_dupe': already provided by dist-a==1.0" in error.error
    assert "fake_dupe_b" not in sys.modules
    assert registry.get("cleaners", "fake_dupe") is cls


# --- settings: allow, autoload, required ----------------------------------------------------------


@pytest.fixture
def two_plugins(make_dist) -> None:
    make_dist(
        "fake-dist",
        {"fake_one": "fake_two_mod:One", "fake_two": "fake_two_mod:Two"},
        {"fake_two_mod": good("One", "fake_one") + good("Two", "fake_two")},
    )


def names(registry: PluginRegistry, kind: str = "cleaners") -> list[str]:
    return [e.name for e in registry.discover(kind)]


def test_allow_limits_to_the_listed_plugins_by_name_or_kind_and_name(two_plugins):
    assert names(PluginRegistry(allow=["fake_one"])) == ["fake_one"]
    assert names(PluginRegistry(allow=["cleaners:fake_two"])) == ["fake_two"]
    assert names(PluginRegistry(allow=["augmenters:fake_two"])) == []
    everything = names(PluginRegistry())
    assert {"fake_one", "fake_two"} <= set(everything)


def test_autoload_off_keeps_forgeline_plugins_and_drops_third_party_ones(two_plugins):
    registry = PluginRegistry(autoload=False)
    entries = registry.discover("cleaners")
    assert "fake_one" not in [e.name for e in entries]
    assert {e.distribution for e in entries} <= {"forgeline"}
    builtin = [
        e.name for e in PluginRegistry().discover("cleaners") if e.distribution == "forgeline"
    ]
    assert [e.name for e in entries] == builtin
    assert names(PluginRegistry(autoload=False, required=["fake_two"])) == sorted(
        [*builtin, "fake_two"]
    )


def test_a_required_plugin_that_fails_stops_the_service(make_dist):
    make_dist(
        "broken-dist",
        {"fake_needed": "fake_needed_mod:Needed"},
        {"fake_needed_mod": "raise RuntimeError('boom')"},
    )
    for required in (["fake_needed"], ["cleaners:fake_needed"]):
        registry = PluginRegistry(autoload=False, allow=["fake_needed"], required=required)
        assert registry.load_kind("cleaners") == []
        with pytest.raises(FailedPrecondition) as caught:
            registry.check_required()
        assert caught.value.reason == "REQUIRED_PLUGIN_BROKEN"
        assert "cleaners:fake_needed (broken-dist)" in caught.value.message
        assert "RuntimeError: boom" in caught.value.message


# --- create ------------------------------------------------------------------------------------


def test_create_validates_the_config_and_names_every_bad_field(make_dist):
    make_dist(
        "fake-dist", {"fake_cfg": "fake_cfg_mod:Cfg"}, {"fake_cfg_mod": good("Cfg", "fake_cfg")}
    )
    registry = PluginRegistry(allow=["fake_cfg"])

    plugin = registry.create("cleaners", "fake_cfg", {"threshold": 0.9}, "cleaners[0]")
    assert (plugin.config.threshold, plugin.config.mode) == (0.9, "upper")
    assert registry.create("cleaners", "fake_cfg", None, "cleaners[0]").config.threshold == 0.5

    with pytest.raises(InvalidArgument) as caught:
        registry.create("cleaners", "fake_cfg", {"threshold": 7, "nope": 1}, "cleaners[0]")
    error = caught.value
    assert error.reason == "INVALID_PLUGIN_CONFIG"
    assert sorted(v.field for v in error.violations) == [
        "cleaners[0].config.nope",
        "cleaners[0].config.threshold",
    ]
    assert "cleaners[0].config.threshold" in error.message and "fake_cfg" in error.message


def test_create_of_an_unknown_plugin_names_the_field_and_the_known_ones(make_dist):
    make_dist(
        "fake-dist", {"fake_cfg": "fake_cfg_mod:Cfg"}, {"fake_cfg_mod": good("Cfg", "fake_cfg")}
    )
    registry = PluginRegistry(allow=["fake_cfg"])
    with pytest.raises(InvalidArgument) as caught:
        registry.create("cleaners", "dedup_exactt", {}, "cleaners[2]")
    assert caught.value.reason == "PLUGIN_NOT_FOUND"
    assert [v.field for v in caught.value.violations] == ["cleaners[2].name"]
    assert "unknown cleaners plugin 'dedup_exactt'; known: fake_cfg" in caught.value.message


def test_config_schema_documents_every_field(make_dist):
    make_dist(
        "fake-dist", {"fake_cfg": "fake_cfg_mod:Cfg"}, {"fake_cfg_mod": good("Cfg", "fake_cfg")}
    )
    schema = config_schema(PluginRegistry(allow=["fake_cfg"]).get("cleaners", "fake_cfg"))
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"threshold", "mode"}
    assert all(p["description"] for p in schema["properties"].values())


def test_a_required_plugin_that_is_not_installed_stops_the_service():
    for required in (["cleaners:not_installed"], ["not_installed"]):
        registry = PluginRegistry(required=required)
        registry.load_kind("cleaners")
        with pytest.raises(FailedPrecondition) as caught:
            registry.check_required()
        assert caught.value.reason == "REQUIRED_PLUGIN_MISSING"
        assert "not_installed" in caught.value.message
    present = PluginRegistry(required=["cleaners:dedup_exact", "normalize_text"])
    present.load_kind("cleaners")
    present.check_required()
