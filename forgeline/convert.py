"""Conversions between kernel objects and their forgeline.v1 messages, shared by all servicers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from forgeline.artifacts import ArtifactRecord
from forgeline.registry import PluginChoice
from forgeline.v1 import common_pb2

_KINDS = {
    "dataset": common_pb2.ARTIFACT_KIND_DATASET,
    "model": common_pb2.ARTIFACT_KIND_MODEL,
    "adapter": common_pb2.ARTIFACT_KIND_ADAPTER,
    "index": common_pb2.ARTIFACT_KIND_INDEX,
    "report": common_pb2.ARTIFACT_KIND_REPORT,
}


def struct(values: Mapping[str, Any]) -> Struct:
    """A google.protobuf.Struct from JSON-like values (others become their str())."""
    out = Struct()
    out.update({k: _jsonable(v) for k, v in values.items()})
    return out


def from_struct(value: Struct) -> dict[str, Any]:
    """Plain Python values from a Struct. Numbers come back as float, as in JSON."""
    return json_format.MessageToDict(value)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def timestamp(seconds: float | None) -> Timestamp | None:
    """A Timestamp from seconds since the epoch (None stays None: an unset field)."""
    if seconds is None:
        return None
    out = Timestamp()
    out.FromNanoseconds(int(seconds * 1e9))
    return out


def artifact(record: ArtifactRecord) -> common_pb2.Artifact:
    lineage = record.lineage
    out = common_pb2.Artifact(
        id=record.id,
        kind=_KINDS.get(record.kind, common_pb2.ARTIFACT_KIND_UNSPECIFIED),
        uri=record.uri,
        sha256=record.sha256,
        size_bytes=record.size_bytes,
        metadata=struct(record.metadata),
        lineage=common_pb2.Lineage(
            parent_ids=lineage.parent_ids,
            producer=lineage.producer,
            operation=lineage.operation,
            config=struct(lineage.config),
            forgeline_version=lineage.forgeline_version,
            pipeline_run=lineage.pipeline_run,
            pipeline_step=lineage.pipeline_step,
            libraries=lineage.libraries,
        ),
    )
    out.create_time.FromDatetime(record.create_time)
    return out


def plugin_choice(spec: common_pb2.PluginSpec) -> PluginChoice:
    """A PluginSpec message as the registry's PluginChoice."""
    return PluginChoice(spec.name, from_struct(spec.config))


def decoding_values(d: Any, field_path: str) -> dict[str, Any]:
    """The fields a client set in a forgeline.v1.DecodingOptions message, for
    ``forgeline.generation.decoding_options`` (a proto3 zero is "unset": the default applies;
    temperature, top_p and repetition_penalty are optional, so an explicit 0 is refused there).
    Shared by every service whose requests carry decoding options."""
    from forgeline.errors import InvalidArgument

    strategies = d.DESCRIPTOR.fields_by_name["strategy"].enum_type.values_by_number
    if d.strategy not in strategies:
        raise InvalidArgument.for_field(
            f"{field_path}.strategy", f"unknown strategy value {d.strategy}"
        )
    # DECODING_STRATEGY_SAMPLE -> "sample"; unspecified -> greedy
    name = strategies[d.strategy].name.removeprefix("DECODING_STRATEGY_").lower()
    values: dict[str, Any] = {"strategy": "greedy" if name == "unspecified" else name}
    for key in ("num_beams", "top_k", "seed", "max_new_tokens"):
        if getattr(d, key):
            values[key] = getattr(d, key)
    for key in ("temperature", "top_p", "repetition_penalty"):
        if d.HasField(key):
            values[key] = getattr(d, key)
    if d.stop:
        values["stop"] = list(d.stop)
    return values
