"""The two-phase plugin registry: finds plugins by entry point, imports them on first use, checks
each against its kind's contract and validates the configs clients send.

(This module is forgeline.registry, not forgeline.plugins: that name is the built-in plugins
folder, plugins/ = forgeline.plugins, per the layout rule.) What a plugin of each kind is lives in
forgeline.contracts, one module per kind; the only registration is an entry point in the group
``forgeline.<kind>``, and forgeline's own plugins are declared the same way, so a third-party
plugin is a peer.

Loading has two phases (as in flake8 and pytest): ``discover`` lists entry points without
importing anything; ``load`` imports on first use, checks the contract and rejects duplicates. A
plugin that fails to import is logged with its package and skipped unless settings require it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from pydantic import ValidationError

# The contracts moved to forgeline.contracts (issue 19). The registry needs every kind's base
# class to check plugins; the other names are re-exported so that the services, third-party
# plugins and scripts that import them from here keep working. The services move to
# forgeline.contracts.<kind> in a follow-up; new code imports from there.
from forgeline.contracts.augmenters import AugmentContext, Augmenter
from forgeline.contracts.base import Plugin, PluginConfig
from forgeline.contracts.baselines import Baseline, BaselineContext, BaselineResult
from forgeline.contracts.cleaners import CleanContext, Cleaner, CleanResult, ReferencedDataset
from forgeline.contracts.compressors import (
    CompressContext,
    CompressionTarget,
    Compressor,
    CompressResult,
    TrainRun,
)
from forgeline.contracts.finetune import TASKS, FinetuneContext, FinetuneStrategy
from forgeline.contracts.generation_metrics import GenerationMetric
from forgeline.contracts.input_filters import InputFilter
from forgeline.contracts.loaders import Loader, LoadSource
from forgeline.contracts.long_inputs import LongInputStrategy
from forgeline.contracts.mitigators import FairnessRows, MitigationResult, Mitigator
from forgeline.contracts.output_rules import OutputMatcher
from forgeline.contracts.regularizers import Regularizer, RegularizerContext
from forgeline.contracts.samplers import ReplayPool, Sampler
from forgeline.contracts.schedulers import Scheduler
from forgeline.contracts.searchers import (
    DISTRIBUTIONS,
    Objective,
    SearchContext,
    Searcher,
    SearchParameter,
    SearchPlan,
)
from forgeline.contracts.selectors import ScoredRows, Selector
from forgeline.contracts.text_checks import RULE_ACTIONS, SafetyContext, TextCheck, TextMatch
from forgeline.contracts.trackers import Tracker, TrackerRun
from forgeline.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Violations,
)
from forgeline.logging import get_logger
from forgeline.redaction import DEFAULT_MASK, redact
from forgeline.searchspace import optuna_choice

__all__ = [
    # the registry's own
    "GROUP_PREFIX",
    "KIND_CONTRACTS",
    "LoadError",
    "PluginChoice",
    "PluginEntry",
    "PluginRegistry",
    "config_schema",
    "contract_problem",
    "description_problem",
    # re-exported from their new homes (forgeline.contracts.<kind>, forgeline.redaction,
    # forgeline.searchspace) for the code that still imports them from here
    "DEFAULT_MASK",
    "DISTRIBUTIONS",
    "RULE_ACTIONS",
    "TASKS",
    "AugmentContext",
    "Augmenter",
    "Baseline",
    "BaselineContext",
    "BaselineResult",
    "CleanContext",
    "CleanResult",
    "Cleaner",
    "CompressContext",
    "CompressResult",
    "CompressionTarget",
    "Compressor",
    "FairnessRows",
    "FinetuneContext",
    "FinetuneStrategy",
    "InputFilter",
    "LoadSource",
    "Loader",
    "MitigationResult",
    "Mitigator",
    "Objective",
    "OutputMatcher",
    "Plugin",
    "PluginConfig",
    "ReferencedDataset",
    "Regularizer",
    "RegularizerContext",
    "ReplayPool",
    "SafetyContext",
    "Sampler",
    "Scheduler",
    "ScoredRows",
    "SearchContext",
    "SearchParameter",
    "SearchPlan",
    "Searcher",
    "Selector",
    "TextCheck",
    "TextMatch",
    "Tracker",
    "TrackerRun",
    "TrainRun",
    "optuna_choice",
    "redact",
]

GROUP_PREFIX = "forgeline."
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
# A description ends a sentence: a full stop, question or exclamation mark, perhaps inside a
# closing bracket or quote. One that ends otherwise was cut, or is not a sentence.
_SENTENCE_END = re.compile(r"[.!?][\"'\u2019\u201d)\]]*$")
log = get_logger(__name__)

KIND_CONTRACTS: dict[str, type[Plugin]] = {
    "loaders": Loader,
    "cleaners": Cleaner,
    "augmenters": Augmenter,
    "finetune": FinetuneStrategy,
    "trackers": Tracker,
    "baselines": Baseline,
    "searchers": Searcher,
    "schedulers": Scheduler,
    "compressors": Compressor,
    "samplers": Sampler,
    "regularizers": Regularizer,
    "selectors": Selector,
    "input_filters": InputFilter,
    "output_rules": OutputMatcher,
    "mitigators": Mitigator,
    "generation_metrics": GenerationMetric,
    "long_inputs": LongInputStrategy,
}


# --- registry ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PluginEntry:
    """A discovered entry point, not yet imported."""

    kind: str
    name: str
    value: str
    distribution: str
    version: str


@dataclass(frozen=True)
class LoadError:
    kind: str
    name: str
    distribution: str
    error: str


@dataclass(frozen=True)
class PluginChoice:
    """A plugin named by a client, with its config (already a plain dict)."""

    name: str
    config: dict[str, Any] = field(default_factory=dict)


class PluginRegistry:
    """Finds plugins by entry point, imports them on first use, validates their configs."""

    def __init__(
        self,
        *,
        allow: Iterable[str] = (),
        required: Iterable[str] = (),
        autoload: bool = True,
    ) -> None:
        # allow / required items are "kind:name" or a bare "name" (any kind).
        self._allow = set(allow)
        self._required = set(required)
        self._autoload = autoload
        self._loaded: dict[tuple[str, str], type[Plugin]] = {}
        self._errors: dict[tuple[str, str, str], LoadError] = {}
        # Grows whenever what the registry holds changes (a plugin imported, a new load error):
        # PluginService rebuilds its cached listing only then.
        self.version = 0

    # phase 1 --------------------------------------------------------------------------------
    def discover(self, kind: str) -> list[PluginEntry]:
        """Entry points of ``kind`` that settings permit, sorted, without importing any."""
        entries = []
        for ep in metadata.entry_points(group=GROUP_PREFIX + kind):
            dist = ep.dist
            entry = PluginEntry(
                kind=kind,
                name=ep.name,
                value=ep.value,
                distribution=dist.metadata["Name"] if dist else "unknown",
                version=dist.version if dist else "0",
            )
            if self._permitted(entry):
                entries.append(entry)
        entries.sort(key=lambda e: (e.name, e.distribution != "forgeline", e.distribution))
        return entries

    def _permitted(self, entry: PluginEntry) -> bool:
        if self._matches(self._allow, entry) or self._matches(self._required, entry):
            return True
        if self._allow:
            return False
        return self._autoload or entry.distribution == "forgeline"

    @staticmethod
    def _matches(names: set[str], entry: PluginEntry) -> bool:
        return entry.name in names or f"{entry.kind}:{entry.name}" in names

    # phase 2 --------------------------------------------------------------------------------
    def load_kind(self, kind: str) -> list[type[Plugin]]:
        """Imports every permitted plugin of ``kind``; broken ones are recorded and skipped."""
        seen: dict[str, PluginEntry] = {}
        for entry in self.discover(kind):
            if entry.name in seen:
                first = seen[entry.name]
                self._fail(
                    entry,
                    f"duplicate plugin name {entry.name!r}: already provided by "
                    f"{first.distribution}=={first.version} ({first.value})",
                )
                continue
            seen[entry.name] = entry
            if (kind, entry.name) not in self._loaded:
                self._import(entry)
        return [cls for (k, _), cls in sorted(self._loaded.items()) if k == kind]

    def get(self, kind: str, name: str) -> type[Plugin]:
        """The plugin class, importing it on first use. NotFound lists the known names."""
        if (kind, name) in self._loaded:
            return self._loaded[(kind, name)]
        entries = [e for e in self.discover(kind) if e.name == name]
        if entries:
            cls = self._import(entries[0])
            if cls is not None:
                return cls
            error = self._errors[(kind, name, entries[0].distribution)].error
            raise FailedPrecondition(
                f"{kind} plugin {name!r} is installed but failed to load: {error}",
                reason="PLUGIN_BROKEN",
                metadata={"kind": kind, "plugin": name},
            )
        known = ", ".join(e.name for e in self.discover(kind)) or "none"
        raise NotFound(
            f"unknown {kind} plugin {name!r}; known: {known}",
            reason="PLUGIN_NOT_FOUND",
            metadata={"kind": kind, "plugin": name, "known": known},
        )

    def create(
        self, kind: str, name: str, config: Mapping[str, Any] | None, field_path: str
    ) -> Plugin:
        """An instance with a validated config; every bad config field is named under field_path."""
        try:
            cls = self.get(kind, name)
        except NotFound as exc:
            raise InvalidArgument.for_field(
                f"{field_path}.name", exc.message, reason="PLUGIN_NOT_FOUND"
            ) from exc
        try:
            cfg = cls.Config.model_validate(dict(config or {}))
        except ValidationError as exc:
            violations = [
                FieldViolation(
                    ".".join([f"{field_path}.config", *map(str, err["loc"])]), err["msg"]
                )
                for err in exc.errors()
            ]
            raise InvalidArgument(
                f"invalid config for {kind} plugin {name!r}: "
                + "; ".join(f"{v.field}: {v.description}" for v in violations),
                reason="INVALID_PLUGIN_CONFIG",
                violations=violations,
            ) from exc
        return cls(cfg)

    def create_all(self, kind: str, choices: list[PluginChoice], field_path: str) -> list[Plugin]:
        """Instances for every choice; the violations of all of them are reported at once."""
        problems = Violations()
        plugins = []
        for i, choice in enumerate(choices):
            try:
                plugins.append(self.create(kind, choice.name, choice.config, f"{field_path}[{i}]"))
            except InvalidArgument as exc:
                problems.extend(exc.violations or [])
        problems.raise_if_any()
        return plugins

    def errors(self, kind: str | None = None) -> list[LoadError]:
        return [e for e in self._errors.values() if kind is None or e.kind == kind]

    def check_required(self) -> None:
        """Raises when a plugin that settings list as required is broken or missing."""
        for error in self._errors.values():
            if f"{error.kind}:{error.name}" in self._required or error.name in self._required:
                raise FailedPrecondition(
                    f"required plugin {error.kind}:{error.name} ({error.distribution}) "
                    f"failed to load: {error.error}",
                    reason="REQUIRED_PLUGIN_BROKEN",
                )
        loaded = {name for _, name in self._loaded} | {f"{k}:{n}" for k, n in self._loaded}
        for item in sorted(self._required):
            kind, _, name = item.rpartition(":")
            if kind and (kind, name) not in self._loaded:
                try:
                    self.get(kind, name)
                except (NotFound, FailedPrecondition) as exc:
                    raise FailedPrecondition(
                        f"required plugin {item} is not available: {exc.message}",
                        reason="REQUIRED_PLUGIN_MISSING",
                    ) from exc
            elif not kind and item not in loaded:
                raise FailedPrecondition(
                    f"required plugin {item!r} is not installed (or its kind was never loaded)",
                    reason="REQUIRED_PLUGIN_MISSING",
                )

    def _import(self, entry: PluginEntry) -> type[Plugin] | None:
        try:
            ep = metadata.EntryPoint(entry.name, entry.value, GROUP_PREFIX + entry.kind)
            cls = ep.load()
            problem = contract_problem(entry.kind, entry.name, cls)
        except Exception as exc:  # a broken third-party package must not take the service down
            problem = f"{type(exc).__name__}: {exc}"
        if problem:
            self._fail(entry, problem)
            return None
        self._loaded[(entry.kind, entry.name)] = cls
        self.version += 1
        return cls

    def _fail(self, entry: PluginEntry, error: str) -> None:
        log.warning(
            "plugin_load_failed",
            kind=entry.kind,
            plugin=entry.name,
            package=f"{entry.distribution}=={entry.version}",
            error=error,
        )
        key = (entry.kind, entry.name, entry.distribution)
        failure = LoadError(entry.kind, entry.name, entry.distribution, error)
        if self._errors.get(key) != failure:
            self._errors[key] = failure
            self.version += 1


def contract_problem(kind: str, name: str, cls: object) -> str | None:
    """Why ``cls`` does not fulfil the contract of ``kind`` under ``name``; None when it does."""
    base = KIND_CONTRACTS.get(kind)
    if base is None:
        return f"unknown plugin kind {kind!r}; known kinds: {', '.join(sorted(KIND_CONTRACTS))}"
    if not (isinstance(cls, type) and issubclass(cls, base)):
        return f"{cls!r} is not a subclass of {base.__module__}.{base.__name__}"
    if getattr(cls, "__abstractmethods__", None):
        return f"{cls.__name__} leaves abstract methods: {sorted(cls.__abstractmethods__)}"
    if cls.name != name:
        return f"{cls.__name__}.name is {cls.name!r} but its entry point is named {name!r}"
    if not _NAME_RE.match(name):
        return f"plugin name {name!r} must be short lowercase letters, digits and underscores"
    config = cls.Config
    if not (isinstance(config, type) and issubclass(config, PluginConfig)):
        return f"{cls.__name__}.Config must subclass {PluginConfig.__module__}.PluginConfig"
    undocumented = [f for f, info in config.model_fields.items() if not info.description]
    if undocumented:
        return f"{cls.__name__}.Config fields without a description: {undocumented}"
    return description_problem(cls) or cls.kind_problem()


def description_problem(cls: type[Plugin]) -> str | None:
    """Why ``cls.description()`` (its docstring's first paragraph, which users read in
    `forgeline plugins list`) is not a whole sentence; None when it is."""
    description = cls.description()
    if not description:
        return f"{cls.__name__} has no description: the first paragraph of its docstring"
    if not _SENTENCE_END.search(description):
        return (
            f"{cls.__name__}'s description does not end a sentence (cut short?): "
            f"it ends {' '.join(description.split()[-4:])!r}; the first paragraph of its "
            "docstring is the description"
        )
    return None


def config_schema(cls: type[Plugin]) -> dict[str, Any]:
    """The JSON Schema of a plugin's config."""
    return cls.Config.model_json_schema()
