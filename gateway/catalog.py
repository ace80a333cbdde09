"""What the services offer, from their own descriptors: the checks of a pipeline that need them.

A service is known to the gateway by its name and address only. Its methods, request and response
messages come from its protobuf descriptors (fetched over server reflection, or the generated
modules for built-in services), its plugins and their config schemas from its PluginService. Two
annotations make the descriptors enough: `google.longrunning.operation_info` names the response
message of a long-running method, and `(forgeline.v1.plugin_kind)` marks a PluginSpec field with
the plugin kind it takes. So a new service joins pipelines by its address, with no gateway change.

check() finds, for every step at once: an unknown service or method (listing the known ones), a
request field the message lacks, a value of the wrong type, an unknown plugin (listing the known
ones of that kind) or a config its JSON Schema refuses, a reference to a field the producing step's
response does not have (or of a type the field cannot take), a gate on a metric the step does not
emit. A misspelt name gets the known names closest to it ("did you mean").

validate() is the whole check of a pipeline file, given where each service's catalog comes from:
the gateway discovers the running services (discover()); `forgeline validate --offline` builds
them on this machine (local_catalog(): the generated descriptors and the plugins installed here).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from google.longrunning import operations_proto_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor, ServiceDescriptor

from forgeline.errors import Unavailable
from forgeline.gateway.spec import REFERENCE, Pipeline, Problem, Step, did_you_mean, parse_all
from forgeline.v1 import options_pb2

OPERATION = "google.longrunning.Operation"
STRUCT_TYPES = {
    "google.protobuf.Struct": dict,
    "google.protobuf.ListValue": list,
    "google.protobuf.Value": object,
}
PLUGIN_SPEC = "forgeline.v1.PluginSpec"
INTEGERS = {
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED32,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED32,
    FieldDescriptor.TYPE_SFIXED64,
}
FLOATS = {FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT}
NUMBERS = INTEGERS | FLOATS
# Numbers in a response that are not measurements, left out of the metrics a gate is offered
# (a gate may still name them by their full path): the insides of well-known types (a
# Timestamp's seconds and nanos) and identifiers (an artifact's version, a trial's number, the
# audit log's sequence number, a numeric id).
WELL_KNOWN_PACKAGE = "google.protobuf."
IDENTIFIERS = {"version", "number", "sequence"}
IDENTIFIER_SUFFIXES = ("_sequence", "_id")


@dataclass
class ServiceCatalog:
    """One service as the gateway sees it."""

    name: str
    address: str
    service: ServiceDescriptor
    # kind -> plugin name -> JSON Schema of its config
    plugins: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def long_running(self) -> list[str]:
        return sorted(m.name for m in self.service.methods if _is_operation(m.output_type))

    def response_type(self, method: str) -> Descriptor:
        """The response message of a long-running method (from its operation_info)."""
        descriptor = self.service.methods_by_name[method]
        info = descriptor.GetOptions().Extensions[operations_proto_pb2.operation_info]
        name = info.response_type
        if "." not in name:
            name = f"{self.service.file.package}.{name}"
        return self.service.file.pool.FindMessageTypeByName(name)


@dataclass
class Checked:
    """What check() learned besides the problems: each step's method and resolved gate metrics."""

    methods: dict[str, str] = field(default_factory=dict)  # step -> "pkg.Service/Method"
    gate_metrics: dict[tuple[str, str], str] = field(default_factory=dict)  # (step, gate) -> path


def check(pipeline: Pipeline, services: dict[str, ServiceCatalog]) -> tuple[list[Problem], Checked]:
    problems: list[Problem] = []
    checked = Checked()
    responses: dict[str, Descriptor] = {}
    for step in pipeline.order(strict=False):
        at = f"steps.{step.name}"
        catalog = services.get(step.service)
        if catalog is None:
            problems.append(Problem(f"{at}.call", no_service(step.service, sorted(services))))
            continue
        method = catalog.service.methods_by_name.get(step.method)
        if method is None or not _is_operation(method.output_type):
            methods = catalog.long_running()
            problems.append(
                Problem(
                    f"{at}.call",
                    f"{step.service} has no long-running method {step.method!r}"
                    f"{did_you_mean(step.method, methods)}; it has {', '.join(methods)}",
                )
            )
            continue
        checked.methods[step.name] = f"{catalog.service.full_name}/{method.name}"
        responses[step.name] = catalog.response_type(step.method)
        _check_message(
            step.request, method.input_type, f"{at}.with", step, catalog, responses, problems
        )
        for i, gate in enumerate(step.gates):
            path, error = metric_path(responses[step.name], gate.metric)
            if error:
                problems.append(Problem(f"{at}.gates[{i}]", error))
            else:
                checked.gate_metrics[(step.name, gate.expression)] = path
    return problems, checked


def no_service(name: str, known: list[str]) -> str:
    return f"no service {name!r}{did_you_mean(name, known)}; known: {', '.join(known) or 'none'}"


@dataclass
class Validation:
    """A pipeline file checked as far as the catalogs at hand allow."""

    pipeline: Pipeline
    checked: Checked
    problems: list[Problem]
    # Services that steps call and no catalog was at hand for: their steps' requests,
    # references and gates were not checked.
    unchecked: list[str] = field(default_factory=list)


def validate(
    text: str,
    overrides: list[str],
    known: list[str],
    catalog_of: Callable[[str], ServiceCatalog | None],
) -> Validation:
    """Every problem of the pipeline in ``text``: its shape (spec.parse_all), then each step
    against the catalog of its service. ``known`` are the services a step may call;
    ``catalog_of(name)`` gives one's catalog, None when it cannot be had here (the steps are
    left unchecked), or raises Unavailable (a problem naming the service's address). Raises
    PipelineInvalid only for text that is not a YAML mapping."""
    pipeline, problems = parse_all(text, overrides)
    catalogs: dict[str, ServiceCatalog] = {}
    unchecked: list[str] = []
    # A step whose call is not SERVICE.Method has no service: spec reported it.
    for service in dict.fromkeys(s.service for s in pipeline.steps if s.service):
        if service not in known:
            for step in (s for s in pipeline.steps if s.service == service):
                problems.append(Problem(f"steps.{step.name}.call", no_service(service, known)))
            continue
        try:
            catalog = catalog_of(service)
        except Unavailable as exc:
            first = next(s for s in pipeline.steps if s.service == service)
            problems.append(Problem(f"steps.{first.name}.call", str(exc)))
            continue
        if catalog is None:
            unchecked.append(service)
        else:
            catalogs[service] = catalog
    # A step on an unknown, unreachable or unchecked service was handled above; check() would
    # only add "no service" for it.
    elsewhere = {s.name for s in pipeline.steps if s.service not in catalogs}
    found, checked = check(pipeline, catalogs)
    problems += [
        p
        for p in found
        if not (p.field.split(".")[1] in elsewhere and p.field.endswith(".call"))
        and p not in problems
    ]
    return Validation(pipeline, checked, problems, unchecked)


# --- requests ----------------------------------------------------------------------------------


def _check_message(value, descriptor: Descriptor, where, step, catalog, responses, problems):
    if _reference(value, where, step, responses, problems, descriptor=descriptor):
        return
    if not isinstance(value, dict):
        problems.append(Problem(where, f"must be a mapping ({descriptor.name})"))
        return
    for key, item in value.items():
        fd = descriptor.fields_by_name.get(key) or _by_json_name(descriptor, key)
        if fd is None:
            problems.append(Problem(f"{where}.{key}", _no_field(descriptor, key)))
            continue
        _check_field(item, fd, f"{where}.{key}", step, catalog, responses, problems)


def _check_field(value, fd: FieldDescriptor, where, step, catalog, responses, problems):
    if _is_map(fd):
        if _reference(value, where, step, responses, problems, field=fd):
            return
        if not isinstance(value, dict):
            problems.append(Problem(where, "must be a mapping"))
            return
        value_fd = fd.message_type.fields_by_name["value"]
        for key, item in value.items():
            _check_single(item, value_fd, f"{where}.{key}", step, catalog, responses, problems)
        return
    if fd.is_repeated:
        if _reference(value, where, step, responses, problems, field=fd):
            return
        if not isinstance(value, list):
            problems.append(Problem(where, "must be a list"))
            return
        for i, item in enumerate(value):
            _check_single(item, fd, f"{where}[{i}]", step, catalog, responses, problems)
        return
    _check_single(value, fd, where, step, catalog, responses, problems)


def _check_single(value, fd: FieldDescriptor, where, step, catalog, responses, problems):
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        full = fd.message_type.full_name
        if full in STRUCT_TYPES:
            expected = STRUCT_TYPES[full]
            if expected is not object and not isinstance(value, expected) and not _is_ref(value):
                problems.append(Problem(where, f"must be a {expected.__name__}"))
            return
        if full == PLUGIN_SPEC and isinstance(value, dict):
            kind = fd.GetOptions().Extensions[options_pb2.plugin_kind]
            if kind:
                _check_plugin(value, kind, where, catalog, problems)
        _check_message(value, fd.message_type, where, step, catalog, responses, problems)
        return
    if _reference(value, where, step, responses, problems, field=fd):
        return
    problem = _scalar_problem(value, fd)
    if problem:
        problems.append(Problem(where, problem))


def _scalar_problem(value, fd: FieldDescriptor) -> str:
    if fd.type == FieldDescriptor.TYPE_STRING:
        return "" if isinstance(value, str) else f"must be a string, got {value!r}"
    if fd.type == FieldDescriptor.TYPE_BOOL:
        return "" if isinstance(value, bool) else f"must be true or false, got {value!r}"
    if fd.type in INTEGERS:
        ok = isinstance(value, int) and not isinstance(value, bool)
        ok = ok or (isinstance(value, str) and value.lstrip("-").isdigit())
        return "" if ok else f"must be an integer, got {value!r}"
    if fd.type in FLOATS:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return "" if ok else f"must be a number, got {value!r}"
    if fd.type == FieldDescriptor.TYPE_ENUM:
        names = [v.name for v in fd.enum_type.values]
        if value in names or (isinstance(value, int) and value in fd.enum_type.values_by_number):
            return ""
        return f"{value!r}{did_you_mean(value, names)} is not one of {', '.join(names)}"
    return ""


def _check_plugin(value: dict, kind: str, where: str, catalog: ServiceCatalog, problems):
    name = value.get("name")
    known = catalog.plugins.get(kind, {})
    if not isinstance(name, str) or not name:
        problems.append(Problem(f"{where}.name", f"names a {kind} plugin: {', '.join(known)}"))
        return
    if name not in known:
        problems.append(
            Problem(
                f"{where}.name",
                f"no {kind} plugin {name!r}{did_you_mean(name, known)} on {catalog.name}; "
                f"known: {', '.join(sorted(known)) or 'none'}",
            )
        )
        return
    config = value.get("config") or {}
    if not isinstance(config, dict) or _contains_reference(config):
        return  # a type problem is reported by the message check; references resolve later
    import jsonschema

    validator = jsonschema.Draft202012Validator(known[name])
    for error in sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path)):
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        problems.append(Problem(f"{where}.config{path}", error.message))


# --- references and metrics ---------------------------------------------------------------------


def _reference(
    value, where, step: Step, responses, problems, *, descriptor=None, field=None
) -> bool:
    """True when ``value`` is a string holding references (checked here, types included)."""
    if not _is_ref(value):
        return False
    matches = list(REFERENCE.finditer(value))
    whole = len(matches) == 1 and matches[0].group(0) == value.strip()
    for match in matches:
        producer, path = match.group(1), match.group(2).split(".")
        if producer not in responses:
            continue  # spec.parse reported an unknown producer; a failed producer was reported
        source, error = resolve_path(responses[producer], path)
        if error:
            problems.append(Problem(where, f"{producer}'s response: {error}"))
            continue
        if whole:
            mismatch = _type_mismatch(source, descriptor, field)
            if mismatch:
                problems.append(Problem(where, f"steps.{producer}.{'.'.join(path)} {mismatch}"))
        elif source is not None and source.type == FieldDescriptor.TYPE_MESSAGE:
            problems.append(Problem(where, f"cannot format the message {'.'.join(path)} into text"))
    if not whole and (
        descriptor is not None or (field and field.type != FieldDescriptor.TYPE_STRING)
    ):
        problems.append(Problem(where, "a reference inside a longer text makes a string"))
    return True


def _type_mismatch(
    source: FieldDescriptor | None, descriptor, target: FieldDescriptor | None
) -> str:
    if source is None:  # a map value or list item reached by key/index: its field's element type
        return ""
    if descriptor is not None:  # the target is a whole message
        if source.type != FieldDescriptor.TYPE_MESSAGE:
            return f"is a scalar, not a {descriptor.name}"
        if source.message_type.full_name != descriptor.full_name:
            return f"is a {source.message_type.name}, not a {descriptor.name}"
        return ""
    if target is None:
        return ""
    if source.type == FieldDescriptor.TYPE_MESSAGE or target.type == FieldDescriptor.TYPE_MESSAGE:
        same = (
            source.type == target.type == FieldDescriptor.TYPE_MESSAGE
            and source.message_type.full_name == target.message_type.full_name
        )
        return "" if same else "does not have the type this field takes"
    if target.type == FieldDescriptor.TYPE_STRING:
        return ""  # any scalar formats into a string
    if target.type in NUMBERS and source.type in NUMBERS:
        return "" if target.type in FLOATS or source.type in INTEGERS else "is not an integer"
    if source.type != target.type:
        return "does not have the type this field takes"
    return ""


def resolve_path(descriptor: Descriptor, path: list[str]) -> tuple[FieldDescriptor | None, str]:
    """The field a dotted path names in a message type; list indexes and map keys pass through."""
    current: Descriptor | None = descriptor
    fd: FieldDescriptor | None = None
    i = 0
    while i < len(path):
        part = path[i]
        if current is None:
            return None, f"{'.'.join(path[:i])} is not a message; {part!r} cannot follow it"
        fd = current.fields_by_name.get(part) or _by_json_name(current, part)
        if fd is None:
            return None, _no_field(current, part)
        i += 1
        if _is_map(fd) or fd.is_repeated:
            element = fd.message_type.fields_by_name["value"] if _is_map(fd) else fd
            if i < len(path):  # a key or an index
                if not _is_map(fd) and not path[i].isdigit():
                    return None, f"{fd.name} is a list; index it by number, not {path[i]!r}"
                i += 1
                fd = element if _is_map(fd) else None
                if fd is None:  # list item: continue into its message type if any
                    current = element.message_type if element.type == element.TYPE_MESSAGE else None
                    if i == len(path):
                        return None, ""
                    continue
        current = fd.message_type if fd.type == FieldDescriptor.TYPE_MESSAGE else None
    return fd, ""


def metric_path(response: Descriptor, metric: str) -> tuple[str, str]:
    """(the response path a gate reads, error). A dotted path must name a number (a key of a
    numeric map counts); a bare name may stand for the one numeric field of that name."""
    parts = metric.split(".")
    fd, error = resolve_path(response, parts)
    if not error and fd is not None:
        if fd.type in NUMBERS and not fd.is_repeated:
            return metric, ""
        if not error:
            return "", f"{metric} is not a number in {response.name}"
    paths = numeric_paths(response)
    if len(parts) == 1:
        found = sorted(p for p in paths if p.split(".")[-1] == metric)
        if len(found) == 1:
            return found[0], ""
        if len(found) > 1:
            return "", f"{metric!r} is ambiguous in {response.name}: {', '.join(found)}"
    # A bare name that stands for one path is as good a suggestion as the path.
    names = paths + [p.split(".")[-1] for p in paths if "." in p]
    return "", (
        f"{response.name} has no metric {metric!r}{did_you_mean(metric, names)}; "
        f"it has {', '.join(paths)}"
    )


def numeric_paths(descriptor: Descriptor, prefix: str = "", depth: int = 0) -> list[str]:
    """Dotted paths of the metric-like numeric fields of a message (and `map.KEY` for numeric
    maps): single numbers, not inside a well-known type, not identifiers (IDENTIFIERS)."""
    out: list[str] = []
    if depth > 4:
        return out
    for fd in descriptor.fields:
        path = f"{prefix}{fd.name}"
        if _is_map(fd):
            if fd.message_type.fields_by_name["value"].type in NUMBERS:
                out.append(f"{path}.KEY")
        elif fd.is_repeated:
            continue
        elif fd.type in NUMBERS:
            if fd.name not in IDENTIFIERS and not fd.name.endswith(IDENTIFIER_SUFFIXES):
                out.append(path)
        elif fd.type == FieldDescriptor.TYPE_MESSAGE and not fd.message_type.full_name.startswith(
            WELL_KNOWN_PACKAGE
        ):
            out.extend(numeric_paths(fd.message_type, f"{path}.", depth + 1))
    return out


# --- helpers -------------------------------------------------------------------------------------


def _is_operation(descriptor: Descriptor) -> bool:
    return descriptor.full_name == OPERATION


def _is_map(fd: FieldDescriptor) -> bool:
    return (
        fd.type == FieldDescriptor.TYPE_MESSAGE
        and fd.is_repeated
        and fd.message_type.GetOptions().map_entry
    )


def _no_field(descriptor: Descriptor, name: str) -> str:
    known = [f.name for f in descriptor.fields]
    return (
        f"{descriptor.name} has no field {name!r}{did_you_mean(name, known)}; "
        f"it has {', '.join(known)}"
    )


def _by_json_name(descriptor: Descriptor, name: str) -> FieldDescriptor | None:
    return next((f for f in descriptor.fields if f.json_name == name), None)


def _is_ref(value: Any) -> bool:
    return isinstance(value, str) and "${{" in value


def _contains_reference(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_contains_reference(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_reference(v) for v in value)
    return _is_ref(value)


# Every forgeline process hosts these beside its domain service (DESIGN: what a process hosts).
STANDARD_SERVICES = {
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
    "google.longrunning.Operations",
    "forgeline.v1.EventService",
    "forgeline.v1.PluginService",
}


def discover(name: str, client) -> ServiceCatalog:
    """The catalog of the service ``client`` (a forgeline.client.Client) is connected to: its
    descriptors over server reflection, its plugins over ListPlugins. Raises Unavailable when
    the service does not answer, FailedPrecondition when it hosts no single domain service."""
    import grpc
    from google.protobuf import descriptor_pool
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    from forgeline.client import error_from_rpc
    from forgeline.errors import FailedPrecondition, Unavailable
    from forgeline.v1 import plugin_service_pb2

    try:
        database = ProtoReflectionDescriptorDatabase(client.channel)
        domain = sorted(set(database.get_services()) - STANDARD_SERVICES)
        if len(domain) != 1:
            raise FailedPrecondition(
                f"{name} at {client.address} hosts {domain or 'no service'} beside the standard "
                "ones; a pipeline service has exactly one domain service",
                reason="SERVICE_AMBIGUOUS",
                metadata={"service": name, "address": client.address},
            )
        service = descriptor_pool.DescriptorPool(database).FindServiceByName(domain[0])
        infos, token = [], ""
        while True:
            page = client.plugins.ListPlugins(
                plugin_service_pb2.ListPluginsRequest(page_size=500, page_token=token)
            )
            infos.extend(page.plugins)
            token = page.next_page_token
            if not token:
                break
    except (grpc.RpcError, Unavailable) as exc:
        # The client's interceptor maps most failures already; a raw RpcError can still escape.
        error = error_from_rpc(exc) if isinstance(exc, grpc.RpcError) else exc
        if isinstance(error, Unavailable):
            raise Unavailable(
                f"the {name} service at {client.address} does not answer: {error}",
                reason="SERVICE_UNAVAILABLE",
                metadata={"service": name, "address": client.address},
            ) from None
        raise error from None
    return ServiceCatalog(name, client.address, service, plugins_by_kind(infos))


def generated_service(name: str) -> ServiceDescriptor | None:
    """The domain service in forgeline's generated module for the service ``name``
    (`forgeline.v1.<name>_service_pb2`: one proto file per service, DESIGN); None for a service
    forgeline does not ship (a third party's is known by its address only)."""
    try:
        module = importlib.import_module(f"forgeline.v1.{name}_service_pb2")
    except ImportError:
        return None
    services = list(module.DESCRIPTOR.services_by_name.values())
    return services[0] if len(services) == 1 else None


def local_catalog(
    name: str, plugins: dict[str, dict[str, dict[str, Any]]]
) -> ServiceCatalog | None:
    """The catalog of the service ``name`` as this machine has it, with no service asked: its
    generated descriptors and ``plugins`` (plugins_by_kind of the registry in this process:
    every service process loads every installed plugin). None when its descriptors are not
    here."""
    service = generated_service(name)
    return None if service is None else ServiceCatalog(name, "", service, plugins)


def plugins_by_kind(infos) -> dict[str, dict[str, dict[str, Any]]]:
    """ListPlugins' PluginInfo messages as kind -> name -> config JSON Schema."""
    import json

    out: dict[str, dict[str, dict[str, Any]]] = {}
    for info in infos:
        out.setdefault(info.kind, {})[info.name] = json.loads(info.config_schema_json or "{}")
    return out
