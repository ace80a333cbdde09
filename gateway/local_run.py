"""What a stack the CLI starts for one pipeline needs: the services its steps call, and its paths
resolved where the user wrote them.

A service resolves the paths a request carries against its own first data root. When the CLI
starts the stack itself (`forgeline run` / `validate` with no gateway answering), the user means
a path as they wrote it: a relative path in the pipeline file is relative to that file's folder
(so a pipeline and the data beside it run the same from any directory), one in a `--set`
override is relative to the current directory, where it was typed. local_run() rewrites both
into absolute paths and lists every path named, which the stack then takes as data roots.

The path fields are those the services hand to forgeline.paths.PathValidator (PATH_FIELDS). A
step's request type comes from the generated module of its service (one
`<service>_service.proto` per service, DESIGN); a third party's service is left as written.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from forgeline.gateway.spec import CALL, REFERENCE, PipelineInvalid, load_document

# (message, field) pairs a service resolves as a path inside its data roots.
PATH_FIELDS = frozenset(
    {("forgeline.v1.IngestDatasetRequest", "source"), ("forgeline.v1.ModelSource", "path")}
)
# Every service sends its audit events to this one: a stack without it holds them back.
AUDIT_SERVICE = "safety"


@dataclass
class LocalRun:
    """The pipeline as a stack started for it should receive it."""

    text: str
    overrides: list[str]
    # Every path the pipeline names, absolute: the data roots the stack adds to its own.
    paths: list[Path] = field(default_factory=list)
    # Where a relative path was written: "steps.ingest.with.source", "overrides[0].source".
    relative: list[str] = field(default_factory=list)
    # The services its steps call (plus the audit log's); None: unknown, start every one.
    services: list[str] | None = None


def local_run(
    text: str, overrides: list[str], pipeline_dir: Path, cwd: Path, installed: list[str]
) -> LocalRun:
    """``text`` and ``overrides`` with every path field made absolute (see the module's first
    lines). A file that cannot be read as a pipeline comes back as it is: the gateway names
    its problems."""
    try:
        document = load_document(text)
    except PipelineInvalid:
        return LocalRun(text, list(overrides))
    found = _Found()
    requests: dict[str, Descriptor | None] = {}
    calls: set[str] = set()
    # A field an override sets is the override's: the file's value there is not a path to read.
    skip = {f"steps.{o.partition('=')[0].strip()}" for o in overrides}
    steps = document.get("steps")
    for step in steps if isinstance(steps, list) else []:
        if not isinstance(step, dict) or not isinstance(step.get("name"), str):
            continue
        call = step.get("call")
        match = CALL.match(call) if isinstance(call, str) else None
        if match:
            calls.add(match.group(1))
        request = requests[step["name"]] = _request_type(match)
        if request is not None and isinstance(step.get("with"), dict):
            at = f"steps.{step['name']}.with"
            _message(step["with"], request, pipeline_dir, at, found, skip)
    rewritten = found.changed
    local_overrides = [
        _override(override, i, requests, cwd, found) for i, override in enumerate(overrides)
    ]
    services = None
    if calls:
        services = sorted((calls | {AUDIT_SERVICE}) & set(installed))
    return LocalRun(
        yaml.safe_dump(document, sort_keys=False, allow_unicode=True) if rewritten else text,
        local_overrides,
        list(dict.fromkeys(found.paths)),
        found.relative,
        services,
    )


@dataclass
class _Found:
    paths: list[Path] = field(default_factory=list)
    relative: list[str] = field(default_factory=list)
    changed: bool = False

    def resolve(self, value: Any, base: Path, at: str) -> Any:
        """``value`` as an absolute path (``base`` for a relative one); left alone when it is
        not a path of this machine: a URL, a reference to an earlier step, an empty value, or
        something the service will refuse with a better message."""
        if (
            not isinstance(value, str)
            or not value.strip()
            or "://" in value
            or REFERENCE.search(value)
            or "\x00" in value
        ):
            return value
        try:
            path = Path(value).expanduser()
        except RuntimeError:  # ~user of no such user
            return value
        if not path.is_absolute():
            self.relative.append(at)
            path = base / path
        path = path.resolve()
        self.paths.append(path)
        self.changed = self.changed or str(path) != value
        return str(path)


def _request_type(call) -> Descriptor | None:
    """The request message of ``service.Method`` when the service is one of forgeline's."""
    if call is None:
        return None
    service, method = call.groups()
    try:
        module = importlib.import_module(f"forgeline.v1.{service}_service_pb2")
    except ImportError:
        return None
    for described in module.DESCRIPTOR.services_by_name.values():
        if method in described.methods_by_name:
            return described.methods_by_name[method].input_type
    return None


def _message(value: dict, descriptor: Descriptor, base: Path, at: str, found, skip) -> None:
    """Resolves, in place, the path fields of ``value`` (a request in the proto JSON mapping)
    and of the messages inside it; a field under ``skip`` (set by an override) is left out."""
    for key, item in list(value.items()):
        fd = descriptor.fields_by_name.get(key) or next(
            (f for f in descriptor.fields if f.json_name == key), None
        )
        where = f"{at}.{key}"
        if fd is None or where in skip:
            continue
        if (descriptor.full_name, fd.name) in PATH_FIELDS:
            value[key] = found.resolve(item, base, where)
        elif fd.type == FieldDescriptor.TYPE_MESSAGE and not fd.message_type.GetOptions().map_entry:
            items = item if fd.is_repeated and isinstance(item, list) else [item]
            for i, one in enumerate(items):
                if isinstance(one, dict):
                    inner = f"{where}[{i}]" if fd.is_repeated else where
                    _message(one, fd.message_type, base, inner, found, skip)


def _override(text: str, index: int, requests, cwd: Path, found: _Found) -> str:
    """``STEP.with.PATH=VALUE`` with a path field in VALUE made absolute against ``cwd``."""
    target, sep, raw = text.partition("=")
    parts = target.strip().split(".")
    request = requests.get(parts[0])
    if not sep or len(parts) < 3 or parts[1] != "with" or request is None or not all(parts):
        return text
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        return text
    nested: dict[str, Any] = {parts[-1]: value}
    for key in reversed(parts[2:-1]):
        nested = {key: nested}
    before = len(found.paths)
    _message(nested, request, cwd, f"overrides[{index}]", found, set())
    if len(found.paths) == before:
        return text
    for key in parts[2:-1]:
        nested = nested[key]
    return f"{target}={json.dumps(nested[parts[-1]], ensure_ascii=False)}"
