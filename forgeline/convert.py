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
        ),
    )
    out.create_time.FromDatetime(record.create_time)
    return out


def plugin_choice(spec: common_pb2.PluginSpec) -> PluginChoice:
    """A PluginSpec message as the registry's PluginChoice."""
    return PluginChoice(spec.name, from_struct(spec.config))
