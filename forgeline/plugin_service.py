"""forgeline.v1.PluginService: what this process has installed, with each config's JSON Schema."""

from __future__ import annotations

import asyncio
import json

from forgeline.errors import InvalidArgument
from forgeline.operations import page_offset
from forgeline.registry import KIND_CONTRACTS, PluginRegistry, config_schema
from forgeline.v1 import plugin_service_pb2, plugin_service_pb2_grpc


def plugin_infos(registry: PluginRegistry, kind: str = "") -> list[plugin_service_pb2.PluginInfo]:
    """Every loadable plugin of ``kind`` (all kinds when empty), sorted by kind and name."""
    if kind and kind not in KIND_CONTRACTS:
        raise InvalidArgument.for_field(
            "kind", f"unknown plugin kind {kind!r}; known: {', '.join(sorted(KIND_CONTRACTS))}"
        )
    infos = []
    for k in [kind] if kind else sorted(KIND_CONTRACTS):
        entries = {e.name: e for e in registry.discover(k)}
        for cls in registry.load_kind(k):
            entry = entries[cls.name]
            infos.append(
                plugin_service_pb2.PluginInfo(
                    name=cls.name,
                    kind=k,
                    distribution=entry.distribution,
                    version=entry.version,
                    description=cls.description(),
                    config_schema_json=json.dumps(config_schema(cls), sort_keys=True),
                )
            )
    return infos


class PluginServicer(plugin_service_pb2_grpc.PluginServiceServicer):
    def __init__(self, registry: PluginRegistry) -> None:
        self._registry = registry

    async def ListPlugins(self, request, context):
        infos = await asyncio.to_thread(plugin_infos, self._registry, request.kind)
        offset = page_offset(request.page_token)
        size = min(request.page_size or 100, 1000)
        errors = [
            plugin_service_pb2.PluginLoadError(
                name=e.name, kind=e.kind, distribution=e.distribution, error=e.error
            )
            for e in self._registry.errors(request.kind or None)
        ]
        return plugin_service_pb2.ListPluginsResponse(
            plugins=infos[offset : offset + size],
            next_page_token=str(offset + size) if offset + size < len(infos) else "",
            load_errors=errors,
        )
