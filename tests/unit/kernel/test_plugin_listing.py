"""PluginService/ListPlugins answers from a listing built once per kind filter (issue 18, item 15).

Building the listing scans entry points, imports plugins and writes a JSON Schema per plugin:
0.2-1 s a call, and 16 clients at once waited seconds each. The service now keeps the listing
until the registry changes. These tests count builds on a real registry behind a real gRPC
server on loopback (every build loads the kinds it lists); they assert no timings.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import grpc
import pytest

from forgeline.plugin_service import PluginServicer
from forgeline.registry import KIND_CONTRACTS, PluginRegistry
from forgeline.server import CallInterceptor
from forgeline.v1 import plugin_service_pb2 as pb
from forgeline.v1 import plugin_service_pb2_grpc


class CountingRegistry(PluginRegistry):
    """The kernel's registry, counting how often each kind is loaded."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.loads: Counter[str] = Counter()

    def load_kind(self, kind: str):
        self.loads[kind] += 1
        return super().load_kind(kind)


def with_plugin_service(registry: PluginRegistry, calls) -> list:
    """Runs ``calls(stub)`` against a PluginService over ``registry`` on a loopback port."""

    async def main() -> list:
        server = grpc.aio.server(interceptors=[CallInterceptor()])
        plugin_service_pb2_grpc.add_PluginServiceServicer_to_server(
            PluginServicer(registry), server
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                return await calls(plugin_service_pb2_grpc.PluginServiceStub(channel))
        finally:
            await server.stop(None)

    return asyncio.run(main())


def test_every_call_answers_from_one_build():
    registry = CountingRegistry()
    registry.load_kind("loaders")  # serve() loads its service's kinds before it reports SERVING
    registry.loads.clear()
    request = pb.ListPluginsRequest(kind="loaders")

    async def calls(stub) -> list:
        first = [await stub.ListPlugins(request, timeout=60)]
        together = await asyncio.gather(*(stub.ListPlugins(request, timeout=60) for _ in range(16)))
        after = [await stub.ListPlugins(request, timeout=60) for _ in range(10)]
        return [*first, *together, *after]

    replies = with_plugin_service(registry, calls)
    assert "csv" in [p.name for p in replies[0].plugins]
    assert all(reply == replies[0] for reply in replies)
    assert registry.loads == {"loaders": 1}


def test_concurrent_callers_of_a_cold_listing_share_its_build():
    registry = CountingRegistry()

    async def calls(stub) -> list:
        request = pb.ListPluginsRequest(page_size=1000)
        return await asyncio.gather(*(stub.ListPlugins(request, timeout=120) for _ in range(16)))

    replies = with_plugin_service(registry, calls)
    assert {p.kind for p in replies[0].plugins} == set(KIND_CONTRACTS)
    assert all(reply == replies[0] for reply in replies)
    # The first build imports the plugins, which changes the registry: one rebuild at most.
    assert set(registry.loads) == set(KIND_CONTRACTS)
    assert max(registry.loads.values()) <= 2


def test_a_change_of_the_registry_rebuilds_the_listing():
    registry = CountingRegistry(allow=["loaders:csv", "cleaners:dedup_exact"])
    registry.load_kind("loaders")
    request = pb.ListPluginsRequest(kind="loaders")

    async def calls(stub) -> list:
        before = await stub.ListPlugins(request, timeout=60)
        await stub.ListPlugins(request, timeout=60)
        builds = registry.loads["loaders"]
        await asyncio.to_thread(registry.get, "cleaners", "dedup_exact")  # first use: imported
        after = await stub.ListPlugins(request, timeout=60)
        return [before, after, builds, registry.loads["loaders"]]

    before, after, builds_before, builds_after = with_plugin_service(registry, calls)
    assert [p.name for p in before.plugins] == ["csv"]
    assert after == before
    assert builds_after == builds_before + 1


def test_pages_of_the_cached_listing_add_up_to_the_whole():
    registry = PluginRegistry()

    async def calls(stub) -> list:
        whole = await stub.ListPlugins(pb.ListPluginsRequest(page_size=1000), timeout=120)
        pages, token = [], ""
        while True:
            page = await stub.ListPlugins(
                pb.ListPluginsRequest(page_size=7, page_token=token), timeout=60
            )
            pages.extend(page.plugins)
            token = page.next_page_token
            if not token:
                return [whole, pages]

    whole, pages = with_plugin_service(registry, calls)
    assert len(whole.plugins) > 7
    assert list(whole.plugins) == pages


def test_a_negative_page_size_is_invalid_argument():
    async def calls(stub) -> list:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListPlugins(pb.ListPluginsRequest(page_size=-1), timeout=60)
        return [caught.value]

    (error,) = with_plugin_service(PluginRegistry(), calls)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_size" in error.details()
