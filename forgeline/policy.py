"""Safety policies: the rules around a model, validated once, run on every request.

A policy is two lists of rules. An input filter rule pairs an ``input_filters`` plugin with an
action; an output rule pairs an ``output_rules`` matcher with an action. Plugins only find
things (``TextCheck.find``); actions are applied here:

- ``block`` refuses the text and ends the check: the first blocking rule to match is reported;
- ``redact`` masks every matched span (``replacement`` is the mask, "[{label}]" by default);
- ``replace`` puts ``replacement`` in place of the whole text;
- ``flag`` lets the text through and reports the rule.

Rules run from the highest ``priority`` down (equal priorities keep their order); each rule sees
the text as the rules before it left it, so a redaction hides a span from later rules, and the
spans a firing reports index that text. A policy's source is YAML text or a dict of the
``SafetyPolicy`` message's shape; a bad rule is refused with its place, its name and the field
(``policy.output_rules[2].action: rule 'no-diagnosis': unknown action ...``), every problem at
once.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from forgeline.errors import FieldViolation, InvalidArgument, Violations
from forgeline.registry import (
    DEFAULT_MASK,
    RULE_ACTIONS,
    PluginRegistry,
    SafetyContext,
    TextCheck,
    TextMatch,
    redact,
)

ALLOW, BLOCK, MODIFY = "allow", "block", "modify"
INPUT, OUTPUT = "input_filters", "output_rules"
# The field naming each list's plugin, and whether a rule must be named.
STAGES = {INPUT: ("filter", False), OUTPUT: ("match", True)}
RULE_FIELDS = {"name", "action", "priority", "replacement", "message"}
MAX_RULES = 100
MAX_YAML_BYTES = 256 * 1024
MAX_MESSAGE_CHARS = 1000
PRIORITY_RANGE = (-1000, 1000)


@dataclass(frozen=True)
class Rule:
    """One rule as it runs: ``check`` is the prepared plugin."""

    stage: str
    name: str
    plugin: str
    config: dict[str, Any]
    action: str
    priority: int
    replacement: str
    message: str
    check: TextCheck = field(compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            STAGES[self.stage][0]: {"name": self.plugin, "config": self.config},
            "action": self.action,
            "priority": self.priority,
            "replacement": self.replacement,
            "message": self.message,
        }


@dataclass(frozen=True)
class Firing:
    """A rule that matched one text."""

    rule: str
    plugin: str
    action: str
    matches: tuple[TextMatch, ...]


@dataclass(frozen=True)
class Verdict:
    """The outcome for one text: the decision, the text after every redaction and replacement
    ("" when blocked), the blocking rule and its message, every firing in order, and whether a
    flag rule matched."""

    decision: str
    text: str
    blocked_by: str = ""
    message: str = ""
    firings: tuple[Firing, ...] = ()
    flagged: bool = False

    @property
    def blocked(self) -> bool:
        return self.decision == BLOCK


class Policy:
    """Prepared rules, in running order; immutable, shared by every thread."""

    def __init__(self, input_rules: list[Rule], output_rules: list[Rule]) -> None:
        self.input_rules = tuple(input_rules)
        self.output_rules = tuple(output_rules)
        self.sha256 = hashlib.sha256(canonical(self.as_dict()).encode()).hexdigest()

    @property
    def empty(self) -> bool:
        return not (self.input_rules or self.output_rules)

    def as_dict(self) -> dict[str, Any]:
        return {
            INPUT: [r.as_dict() for r in self.input_rules],
            OUTPUT: [r.as_dict() for r in self.output_rules],
        }

    def check_input(self, texts: Sequence[str]) -> list[Verdict]:
        return run_rules(self.input_rules, texts)

    def check_output(self, texts: Sequence[str]) -> list[Verdict]:
        return run_rules(self.output_rules, texts)


def run_rules(rules: Sequence[Rule], texts: Sequence[str]) -> list[Verdict]:
    """Every text through ``rules`` in order; each plugin sees the still-open texts at once."""
    current = list(texts)
    firings: list[list[Firing]] = [[] for _ in texts]
    blocker: list[Rule | None] = [None] * len(texts)
    flagged = [False] * len(texts)
    for rule in rules:
        open_ = [i for i, b in enumerate(blocker) if b is None]
        if not open_:
            break
        found = rule.check.find([current[i] for i in open_])
        for i, matches in zip(open_, found, strict=True):
            if not matches:
                continue
            firings[i].append(Firing(rule.name, rule.plugin, rule.action, tuple(matches)))
            if rule.action == "block":
                blocker[i] = rule
            elif rule.action == "redact":
                current[i] = redact(current[i], matches, rule.replacement or DEFAULT_MASK)
            elif rule.action == "replace":
                current[i] = rule.replacement
            else:
                flagged[i] = True
    verdicts = []
    for i, original in enumerate(texts):
        rule = blocker[i]
        if rule is not None:
            message = rule.message or f"blocked by {rule.name}"
            verdicts.append(Verdict(BLOCK, "", rule.name, message, tuple(firings[i]), flagged[i]))
        else:
            decision = MODIFY if current[i] != original else ALLOW
            verdicts.append(Verdict(decision, current[i], "", "", tuple(firings[i]), flagged[i]))
    return verdicts


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class PolicyLoader:
    """Validates policy sources into prepared Policies, caching the last few by content (a
    classifier check loads its model once, not per request)."""

    def __init__(self, registry: PluginRegistry, safety: SafetyContext, cache_size: int = 64):
        self._registry, self._safety = registry, safety
        self._cache: OrderedDict[str, Policy] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def load(self, source: Mapping[str, Any] | str | None, field: str = "policy") -> Policy:
        """A Policy from YAML text, a dict, or None (no rules). InvalidArgument names every bad
        rule and field under ``field``."""
        key = hashlib.sha256(canonical(source).encode()).hexdigest()
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        policy = self._build(self._parse(source, field), field)
        with self._lock:
            self._cache[key] = policy
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return policy

    @staticmethod
    def _parse(source: Mapping[str, Any] | str | None, field: str) -> dict[str, Any]:
        if source is None:
            return {}
        if isinstance(source, str):
            if len(source.encode()) > MAX_YAML_BYTES:
                raise InvalidArgument.for_field(
                    f"{field}.yaml", f"over the limit of {MAX_YAML_BYTES} bytes"
                )
            try:
                loaded = yaml.safe_load(source)
            except yaml.YAMLError as exc:
                raise InvalidArgument.for_field(f"{field}.yaml", f"not valid YAML: {exc}") from exc
            if loaded is None:
                return {}
            if not isinstance(loaded, dict):
                raise InvalidArgument.for_field(
                    f"{field}.yaml", f"must be a mapping with {INPUT} and/or {OUTPUT}"
                )
            return loaded
        return dict(source)

    def _build(self, spec: dict[str, Any], field: str) -> Policy:
        problems = Violations()
        for key in spec:
            if key not in STAGES:
                problems.add(f"{field}.{key}", f"unknown key; a policy has {INPUT}, {OUTPUT}")
        lists = {}
        for stage in STAGES:
            items = spec.get(stage) or []
            if not isinstance(items, list):
                problems.add(f"{field}.{stage}", "must be a list of rules")
                items = []
            if len(items) > MAX_RULES:
                problems.add(f"{field}.{stage}", f"{len(items)} rules; at most {MAX_RULES}")
                items = []
            lists[stage] = [
                rule
                for i, item in enumerate(items)
                if (rule := self._rule(stage, item, f"{field}.{stage}[{i}]", problems))
            ]
            self._unique_names(lists[stage], f"{field}.{stage}", problems)
        problems.raise_if_any("INVALID_POLICY")
        for rules in lists.values():
            rules.sort(key=lambda r: -r.priority)  # stable: equal priorities keep their order
        return Policy(lists[INPUT], lists[OUTPUT])

    def _rule(self, stage: str, item: Any, where: str, problems: Violations) -> Rule | None:
        """The prepared rule at ``where``, or None after adding its problems (each names the
        field, and the rule by its name when it has one)."""
        plugin_field, name_required = STAGES[stage]
        if not isinstance(item, Mapping):
            problems.add(where, "a rule must be a mapping")
            return None
        name = item.get("name") or ""
        named = f"rule {name!r}: " if isinstance(name, str) and name else ""
        before = len(problems.items)

        def bad(path: str, description: str) -> None:
            problems.add(f"{where}.{path}" if path else where, named + description)

        fields = RULE_FIELDS | {plugin_field}
        for key in item:
            if key not in fields:
                bad(str(key), f"unknown field; a rule has {', '.join(sorted(fields))}")
        if not isinstance(name, str) or (name_required and not name):
            bad("name", "every output rule needs a name (a string)")
        spec = item.get(plugin_field)
        if isinstance(spec, str):
            spec = {"name": spec}
        if not isinstance(spec, Mapping) or not spec.get("name"):
            bad(plugin_field, "name the plugin: {name: ..., config: {...}}")
            return None
        check = None
        try:
            check = self._registry.create(
                stage, str(spec["name"]), spec.get("config") or {}, f"{where}.{plugin_field}"
            )
        except InvalidArgument as exc:
            problems.extend(
                [FieldViolation(v.field, named + v.description) for v in exc.violations]
                or [FieldViolation(f"{where}.{plugin_field}", named + exc.message)]
            )
        action = _action(item.get("action"))
        if action is not None and action not in RULE_ACTIONS:
            bad(
                "action",
                f"unknown action {item.get('action')!r}; use one of {', '.join(RULE_ACTIONS)}",
            )
        priority = item.get("priority") or 0
        low, high = PRIORITY_RANGE
        if isinstance(priority, bool) or not isinstance(priority, int | float) or priority % 1:
            bad("priority", "must be an integer")
        elif not low <= priority <= high:
            bad("priority", f"must be in [{low}, {high}]")
        replacement, message = item.get("replacement") or "", item.get("message") or ""
        for key, value in (("replacement", replacement), ("message", message)):
            if not isinstance(value, str):
                bad(key, "must be a string")
            elif len(value) > MAX_MESSAGE_CHARS:
                bad(key, f"at most {MAX_MESSAGE_CHARS} characters")
        if check is None or len(problems.items) > before:
            return None
        action = action or check.default_action
        if action == "replace" and not replacement:
            bad("replacement", "a replace rule needs the text to put in place")
            return None
        try:
            check.prepare(self._safety)
        except InvalidArgument as exc:
            prefix = f"{where}.{plugin_field}."
            problems.extend(
                [FieldViolation(prefix + v.field, named + v.description) for v in exc.violations]
                or [FieldViolation(f"{where}.{plugin_field}", named + exc.message)]
            )
            return None
        return Rule(
            stage=stage,
            name=name or check.name,
            plugin=check.name,
            config=check.config.model_dump(mode="json"),
            action=action,
            priority=int(priority),
            replacement=replacement,
            message=message,
            check=check,
        )

    @staticmethod
    def _unique_names(rules: list[Rule], where: str, problems: Violations) -> None:
        seen: set[str] = set()
        for rule in rules:
            if rule.name in seen:
                problems.add(
                    where, f"two rules are named {rule.name!r}: give each a name of its own"
                )
            seen.add(rule.name)


def _action(value: Any) -> str | None:
    """A rule's action as written: "block", "BLOCK" or the enum name "RULE_ACTION_BLOCK"
    (None when absent: the plugin's default)."""
    if value is None or value == "" or value == "RULE_ACTION_UNSPECIFIED":
        return None
    text = str(value).lower()
    return text.removeprefix("rule_action_")
