"""A pipeline file, read and checked without asking any service.

    apiVersion: forgeline/v1
    kind: Pipeline
    metadata: {name: quickstart, description: ...}
    steps:
      - name: clean
        call: data.CleanDataset            # service (its entry-point name) . long-running method
        with:                              # the request, in the proto JSON mapping
          dataset_id: ${{ steps.ingest.dataset.artifact.id }}
          cleaners: [{name: dedup_exact}]
      - name: train
        call: training.TrainModel
        with: {...}
        gates: ["evaluation.accuracy >= 0.8"]
        cache: false                       # always run this step (default: reuse a cached result)
        after: [profile]                   # extra ordering beyond the references

A `${{ steps.NAME.PATH }}` reference reads a field of an earlier step's response; a string that is
only a reference takes the field's value (any type), a reference inside a longer string is
formatted into it. The steps form a DAG; independent steps may run at once.

Every problem is collected, each with the field it is about (``steps.train.gates[0]``), so a user
fixes a file in one pass. What needs a service's descriptors or plugins (does the method exist,
does the config fit the plugin's schema, does the gate's metric exist) is checked in
``gateway.catalog``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from forgeline.errors import FieldViolation, InvalidArgument

API_VERSION = "forgeline/v1"
KIND = "Pipeline"
TOP_KEYS = {"apiVersion", "kind", "metadata", "steps"}
STEP_KEYS = {"name", "call", "with", "after", "gates", "cache", "description"}
NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
CALL = re.compile(r"^([a-z][a-z0-9_]*)\.([A-Z][A-Za-z0-9]*)$")
REFERENCE = re.compile(r"\$\{\{\s*steps\.([^.\s}]+)\.([^\s}]+?)\s*\}\}")
GATE = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*(>=|<=|==|!=|>|<)\s*"
    r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)
OPERATORS = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a pipeline: the field (dotted, steps by name) and what is wrong."""

    field: str
    description: str

    def __str__(self) -> str:
        return f"{self.field}: {self.description}"


class PipelineInvalid(ValueError):
    """A pipeline with problems; carries all of them."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


def invalid(problems: list[Problem]) -> InvalidArgument:
    """The error that refuses a pipeline: every problem a field violation, the first one (and
    how many more) in the message."""
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return InvalidArgument(
        f"the pipeline is not valid: {first}{more}",
        reason="PIPELINE_INVALID",
        violations=[FieldViolation(p.field, p.description) for p in problems],
    )


# A misspelt name longer than this gets no suggestion: difflib's work grows with the product of
# the lengths, and a request may carry a megabyte where a name belongs.
SUGGEST_CHARS = 100
# How alike (difflib's ratio) a name must be to be suggested: a swapped or dropped letter
# ("trian", "dta") passes, a different word that shares letters ("tuning", "training") does not.
CLOSE = 0.75


def did_you_mean(word: object, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` with the known names closest to a misspelt ``word`` (case
    aside), or '' when none is close: said right after the name a problem quotes."""
    if not isinstance(word, str) or not word or len(word) > SUGGEST_CHARS:
        return ""
    by_lower: dict[str, str] = {}
    for name in known:
        by_lower.setdefault(str(name).lower(), str(name))
    close = [
        by_lower[c]
        for c in difflib.get_close_matches(word.lower(), list(by_lower), n=3, cutoff=CLOSE)
        if by_lower[c] != word
    ]
    return f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""


@dataclass(frozen=True)
class Gate:
    """`metric op threshold`, e.g. `evaluation.accuracy >= 0.9`."""

    expression: str
    metric: str
    op: str
    threshold: float

    @classmethod
    def parse(cls, text: str) -> Gate:
        match = GATE.match(text)
        if match is None:
            raise ValueError(
                f"{text!r} is not a gate; write METRIC OP NUMBER, e.g. 'evaluation.accuracy >= 0.9'"
                f" (OP one of {' '.join(OPERATORS)})"
            )
        metric, op, number = match.groups()
        return cls(expression=text.strip(), metric=metric, op=op, threshold=float(number))

    def passes(self, value: float) -> bool:
        return OPERATORS[self.op](value, self.threshold)

    def verdict(self, value: float) -> str:
        """One line a user reads: the value, and by how much it missed."""
        shown, gate = number(value), f"{self.op} {number(self.threshold)}"
        if self.passes(value):
            return f"{self.metric} = {shown} passes {gate}"
        side = "below" if value < self.threshold else "above"
        return (
            f"{self.metric} = {shown}, {number(abs(value - self.threshold))} {side} the gate {gate}"
        )


def number(value: float, grouped: bool = False) -> str:
    """A number as people read it: whole numbers in full (16500, not 1.65e+04; 16,500 when
    ``grouped``), others to four significant digits."""
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}" if grouped else str(int(value))
    return f"{value:.4g}"


@dataclass(frozen=True)
class Reference:
    """`${{ steps.STEP.PATH }}` at `where` (a dotted path inside the step's `with`)."""

    step: str
    path: tuple[str, ...]
    where: str
    whole: bool  # the string is only this reference: the value keeps its type


@dataclass
class Step:
    name: str
    service: str
    method: str
    request: dict[str, Any]
    after: list[str] = field(default_factory=list)
    gates: list[Gate] = field(default_factory=list)
    cache: bool = True
    description: str = ""
    references: list[Reference] = field(default_factory=list)

    @property
    def call(self) -> str:
        return f"{self.service}.{self.method}"

    @property
    def depends_on(self) -> list[str]:
        """Steps that must finish first, in first-mention order."""
        seen: dict[str, None] = {}
        for name in [r.step for r in self.references] + self.after:
            seen.setdefault(name)
        return list(seen)


@dataclass
class Pipeline:
    name: str
    description: str
    steps: list[Step]
    document: dict[str, Any]

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)

    def order(self, strict: bool = True) -> list[Step]:
        """The steps in file order, each after everything it depends on (stable Kahn). Steps
        caught in a cycle or waiting on an unknown step raise, or with ``strict=False`` come
        last in file order (to check each step of a pipeline that is already invalid)."""
        done: set[str] = set()
        ordered: list[Step] = []
        pending = list(self.steps)
        while pending:
            ready = [s for s in pending if set(s.depends_on) <= done]
            if not ready and not strict:
                return ordered + pending
            if not ready:  # parse() rejects cycles; this is a guard
                raise PipelineInvalid([Problem("steps", "the steps form a cycle")])
            for s in ready:
                ordered.append(s)
                done.add(s.name)
            pending = [s for s in pending if s.name not in done]
        return ordered


# --- reading -----------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last)."""


def _mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"the key {key!r} appears twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_document(text: str, source: str = "pipeline_yaml") -> dict[str, Any]:
    """The YAML mapping in ``text``; PipelineInvalid with one problem about ``source`` (the
    request field, or the file the CLI read) when it is not one."""
    try:
        document = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise PipelineInvalid([Problem(source, f"not valid YAML: {_yaml_error(exc)}")]) from None
    if not isinstance(document, dict):
        raise PipelineInvalid([Problem(source, "must be a YAML mapping")])
    return document


def _yaml_error(exc: yaml.YAMLError) -> str:
    """A YAML error on one line, positions counted from 1: PyYAML's own text names the input
    "<unicode string>" and quotes each position's line over several lines."""
    if not isinstance(exc, yaml.MarkedYAMLError):
        return str(exc)

    def at(mark) -> str:
        return f"line {mark.line + 1}, column {mark.column + 1}"

    problem = (exc.problem or "").replace("'<stream end>'", "the end of the file")
    text = f"{at(exc.problem_mark)}: {problem}" if exc.problem_mark else problem
    if exc.context:
        where = f" at {at(exc.context_mark)}" if exc.context_mark else ""
        text += f" ({exc.context}{where})"
    return text


def apply_overrides(document: dict[str, Any], overrides: list[str]) -> list[Problem]:
    """Applies `step.path=value` (value read as YAML) in place; returns the problems."""
    problems = []
    steps = {s.get("name"): s for s in document.get("steps") or [] if isinstance(s, dict)}
    for i, text in enumerate(overrides):
        where = f"overrides[{i}]"
        target, sep, raw = text.partition("=")
        parts = target.strip().split(".")
        if not sep or len(parts) < 2 or not all(parts):
            problems.append(Problem(where, f"{text!r} is not STEP.PATH=VALUE"))
            continue
        if parts[0] not in steps:
            names = [str(n) for n in steps]
            problems.append(
                Problem(
                    where,
                    f"no step {parts[0]!r}{did_you_mean(parts[0], names)}; "
                    f"steps: {', '.join(names)}",
                )
            )
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = steps[parts[0]]
        for key in parts[1:-1]:
            if not isinstance(node.get(key, {}), dict):
                problems.append(Problem(where, f"{key!r} in {target!r} is not a mapping"))
                break
            node = node.setdefault(key, {})
        else:
            node[parts[-1]] = value
    return problems


def parse(text: str, overrides: list[str] | None = None) -> Pipeline:
    """The pipeline in ``text`` with ``overrides`` applied; PipelineInvalid lists every problem
    found without a service."""
    pipeline, problems = parse_all(text, overrides)
    if problems:
        raise PipelineInvalid(problems)
    return pipeline


def parse_all(text: str, overrides: list[str] | None = None) -> tuple[Pipeline, list[Problem]]:
    """The pipeline with every step that could be read, and every problem found without a
    service (the gateway then checks those steps against the services too, so one answer names
    every problem). Only text that is not a YAML mapping raises."""
    document = load_document(text)
    problems = apply_overrides(document, list(overrides or []))

    if document.get("apiVersion") != API_VERSION:
        problems.append(
            Problem("apiVersion", f"must be {API_VERSION!r}, got {document.get('apiVersion')!r}")
        )
    if document.get("kind") != KIND:
        problems.append(Problem("kind", f"must be {KIND!r}, got {document.get('kind')!r}"))
    unknown = sorted(map(str, set(document) - TOP_KEYS))
    if unknown:
        problems.append(
            Problem(unknown[0], f"unknown top-level key(s): {_unknown(unknown, TOP_KEYS)}")
        )
    metadata = document.get("metadata")
    name, description = "", ""
    if not isinstance(metadata, dict):
        problems.append(Problem("metadata", "must be a mapping with a name"))
    else:
        name = metadata.get("name")
        description = str(metadata.get("description") or "")
        if not isinstance(name, str) or not NAME.match(name):
            problems.append(
                Problem("metadata.name", f"{name!r} must match {NAME.pattern} (lowercase, short)")
            )
            name = str(name or "")

    raw_steps = document.get("steps")
    steps: list[Step] = []
    if not isinstance(raw_steps, list) or not raw_steps:
        problems.append(Problem("steps", "must be a non-empty list of steps"))
        raw_steps = []
    for index, raw in enumerate(raw_steps):
        step = _step(raw, index, problems)
        if step is None:
            continue
        if any(s.name == step.name for s in steps):
            problems.append(Problem(f"steps[{index}].name", f"step {step.name!r} appears twice"))
            continue
        steps.append(step)

    names = [s.name for s in steps]
    for step in steps:
        for ref in step.references:
            if ref.step == step.name:
                problems.append(Problem(ref.where, "a step cannot read its own outputs"))
            elif ref.step not in names:
                problems.append(
                    Problem(
                        ref.where,
                        f"no step {ref.step!r}{did_you_mean(ref.step, names)} produces this; "
                        f"steps: {', '.join(names)}",
                    )
                )
        others = [n for n in names if n != step.name]
        for i, other in enumerate(step.after):
            if other not in others:
                problems.append(
                    Problem(
                        f"steps.{step.name}.after[{i}]",
                        f"no other step named {other!r}{did_you_mean(other, others)}",
                    )
                )
    cycle = _find_cycle(steps)
    if cycle:
        problems.append(Problem("steps", f"the steps form a cycle: {' -> '.join(cycle)}"))
    return Pipeline(name=name, description=description, steps=steps, document=document), problems


def _step(raw: Any, index: int, problems: list[Problem]) -> Step | None:
    if not isinstance(raw, dict):
        problems.append(Problem(f"steps[{index}]", "must be a mapping"))
        return None
    name = raw.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        problems.append(Problem(f"steps[{index}].name", f"{name!r} must match {NAME.pattern}"))
        return None
    at = f"steps.{name}"
    unknown = sorted(map(str, set(raw) - STEP_KEYS))
    if unknown:
        problems.append(
            Problem(
                f"{at}.{unknown[0]}",
                f"unknown key(s) {_unknown(unknown, STEP_KEYS)}; a step takes "
                f"{', '.join(sorted(STEP_KEYS))}",
            )
        )
    call = raw.get("call")
    match = CALL.match(call) if isinstance(call, str) else None
    if match is None:
        problems.append(
            Problem(f"{at}.call", f"{call!r} must be SERVICE.Method, e.g. 'data.CleanDataset'")
        )
    request = raw.get("with", {})
    if request is None:
        request = {}
    if not isinstance(request, dict):
        problems.append(Problem(f"{at}.with", "must be a mapping (the request's fields)"))
        request = {}
    after = raw.get("after", [])
    if isinstance(after, str):
        after = [after]
    if not isinstance(after, list) or not all(isinstance(a, str) for a in after):
        problems.append(Problem(f"{at}.after", "must be a list of step names"))
        after = []
    gates = []
    raw_gates = raw.get("gates", [])
    if isinstance(raw_gates, str):
        raw_gates = [raw_gates]
    if not isinstance(raw_gates, list):
        problems.append(Problem(f"{at}.gates", "must be a list like ['accuracy >= 0.9']"))
        raw_gates = []
    for i, text in enumerate(raw_gates):
        try:
            gates.append(Gate.parse(str(text)))
        except ValueError as exc:
            problems.append(Problem(f"{at}.gates[{i}]", str(exc)))
    cache = raw.get("cache", True)
    if not isinstance(cache, bool):
        problems.append(Problem(f"{at}.cache", f"must be true or false, got {cache!r}"))
    references: list[Reference] = []
    _collect_references(request, f"{at}.with", references, problems)
    # Returned even when something above was wrong, so its references are checked too; parse()
    # raises before an invalid step can be used.
    return Step(
        name=name,
        service=match.group(1) if match else "",
        method=match.group(2) if match else "",
        request=request,
        after=after,
        gates=gates,
        cache=cache,
        description=str(raw.get("description") or ""),
        references=references,
    )


def _unknown(keys: list[str], known: set[str]) -> str:
    """Unknown keys, each with the known key it may be a misspelling of."""
    return ", ".join(f"{key}{did_you_mean(key, known)}" for key in keys)


def _collect_references(value: Any, where: str, out: list[Reference], problems: list[Problem]):
    if isinstance(value, dict):
        for key, item in value.items():
            _collect_references(item, f"{where}.{key}", out, problems)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _collect_references(item, f"{where}[{i}]", out, problems)
    elif isinstance(value, str) and "${{" in value:
        found = list(REFERENCE.finditer(value))
        if not found or value.count("${{") != len(found):
            problems.append(
                Problem(where, f"{value!r}: write references as '${{{{ steps.STEP.FIELD }}}}'")
            )
            return
        whole = len(found) == 1 and found[0].group(0) == value.strip()
        for match in found:
            out.append(
                Reference(
                    step=match.group(1),
                    path=tuple(match.group(2).split(".")),
                    where=where,
                    whole=whole,
                )
            )


def _find_cycle(steps: list[Step]) -> list[str]:
    """One cycle among the steps' dependencies as [a, b, ..., a], or []."""
    graph = {s.name: s.depends_on for s in steps}
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return []

    for s in steps:
        if s.name not in state:
            found = visit(s.name)
            if found:
                return found
    return []


def resolve(value: Any, outputs: dict[str, dict[str, Any]]) -> Any:
    """``value`` with every reference replaced from ``outputs`` (step -> response as a dict)."""
    if isinstance(value, dict):
        return {k: resolve(v, outputs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, outputs) for v in value]
    if isinstance(value, str) and "${{" in value:
        found = list(REFERENCE.finditer(value))
        if len(found) == 1 and found[0].group(0) == value.strip():
            return lookup(outputs[found[0].group(1)], found[0].group(2).split("."))
        return REFERENCE.sub(
            lambda m: str(lookup(outputs[m.group(1)], m.group(2).split("."))), value
        )
    return value


def lookup(response: dict[str, Any], path: list[str] | tuple[str, ...]) -> Any:
    """A field of a response dict by snake_case or lowerCamel names, list items by index."""
    node: Any = response
    for part in path:
        if isinstance(node, list):
            node = node[int(part)]
            continue
        if not isinstance(node, dict):
            raise KeyError(".".join(path))
        if part in node:
            node = node[part]
        else:
            camel = re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), part)
            if camel not in node:
                raise KeyError(".".join(path))
            node = node[camel]
    return node
