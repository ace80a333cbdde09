"""Services declare themselves (issue 19): a service the kernel has never heard of gets the port
its spec declares, the audit log is kept by whichever service's spec says so, and reading a port
imports no service's heavy modules."""

from __future__ import annotations

import subprocess
import sys
import types
from importlib.metadata import EntryPoint

import pytest

from forgeline.client import Client
from forgeline.service_spec import (
    FALLBACK_PORT,
    SERVICES_GROUP,
    ServiceSpec,
    audit_log_service,
    default_port,
    default_ports,
    service_spec,
)
from forgeline.v1 import pipeline_service_pb2_grpc

MODULE = "fake_forgeline_services"


def _build(kernel):  # a third party's build(kernel), never called here
    return []


@pytest.fixture
def entry_points(monkeypatch: pytest.MonkeyPatch) -> list[EntryPoint]:
    """Entry points as an installed package would declare them, naming a module that exists
    only in this process (no install)."""
    module = types.ModuleType(MODULE)
    module.ALERTS = ServiceSpec(build=_build, default_port=50111, plugin_kinds=("notifiers",))
    module.LEDGER = ServiceSpec(build=f"{MODULE}:build", default_port=50112, keeps_audit_log=True)
    module.build = _build  # a bare build function, as entry points named before specs
    monkeypatch.setitem(sys.modules, MODULE, module)
    return [
        EntryPoint(name="alerts", value=f"{MODULE}:ALERTS", group=SERVICES_GROUP),
        EntryPoint(name="ledger", value=f"{MODULE}:LEDGER", group=SERVICES_GROUP),
        EntryPoint(name="bare", value=f"{MODULE}:build", group=SERVICES_GROUP),
    ]


def test_an_unknown_service_gets_the_port_its_spec_declares(entry_points) -> None:
    assert default_port("alerts", entry_points) == 50111
    assert default_ports(entry_points) == {"alerts": 50111, "ledger": 50112, "bare": FALLBACK_PORT}
    assert default_port("nowhere", entry_points) == FALLBACK_PORT
    assert service_spec("alerts", entry_points).plugin_kinds == ("notifiers",)


def test_a_spec_names_its_build_function_by_string_or_directly(entry_points) -> None:
    assert service_spec("ledger", entry_points).builder() is _build
    assert service_spec("bare", entry_points).builder() is _build


def test_the_audit_log_is_kept_by_the_service_whose_spec_says_so(entry_points) -> None:
    assert audit_log_service(entry_points) == "ledger"
    assert audit_log_service(entry_points[::2]) is None


def test_the_shipped_services_keep_their_ports_and_safety_keeps_the_audit_log() -> None:
    assert default_ports() == {
        "gateway": 50050,
        "data": 50051,
        "training": 50052,
        "tuning": 50053,
        "compression": 50054,
        "memory": 50055,
        "safety": 50056,
        "serving": 50057,
        "http": 8080,
    }
    assert audit_log_service() == "safety"
    assert service_spec("http").health == "http" and service_spec("serving").health == "grpc"


def test_a_service_with_its_own_serve_runs_it_in_place_of_the_grpc_bootstrap(tmp_path) -> None:
    """forgeline.server.serve() runs the HTTP face's serve() (uvicorn, no gRPC server) on the
    port given: GET /healthz answers there (503: no serving service behind it), a gRPC health
    check does not, and ``stop`` ends it."""
    import asyncio

    from forgeline.errors import ForgelineError
    from forgeline.server import serve
    from forgeline.service_spec import probe_http
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, [tmp_path], addresses={"serving": "127.0.0.1:9"})
    seen: dict[str, object] = {}

    async def main() -> None:
        stop, ready = asyncio.Event(), asyncio.Event()

        def on_ready(port: int) -> None:
            seen["port"] = port
            ready.set()

        task = asyncio.create_task(serve("http", settings, port=0, on_ready=on_ready, stop=stop))
        await asyncio.wait_for(ready.wait(), 60)
        address = f"127.0.0.1:{seen['port']}"
        seen["code"] = await asyncio.to_thread(probe_http, address)
        with Client(address) as client:
            try:
                client.wait_ready(0.5)
                seen["grpc"] = True
            except ForgelineError:
                seen["grpc"] = False
        stop.set()
        await asyncio.wait_for(task, 60)
        seen["after"] = await asyncio.to_thread(probe_http, address)

    asyncio.run(main())
    assert (seen["code"], seen["grpc"], seen["after"]) == (503, False, None)
    with pytest.raises(TypeError, match="its own serve"):
        service_spec("http").builder()


def test_reading_a_port_imports_no_service_module() -> None:
    """The CLI and the gateway look addresses up often: a spec must stay light."""
    code = (
        "import sys\n"
        "from forgeline.settings import Settings\n"
        "s = Settings()\n"
        "assert [s.address_for(n) for n in ('training', 'safety')] == "
        "['127.0.0.1:50052', '127.0.0.1:50056']\n"
        "heavy = sorted(m for m in sys.modules if m.endswith('.servicer') or m == 'torch'"
        " or m == 'ray')\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_client_hands_out_any_stub() -> None:
    with Client("127.0.0.1:1") as client:
        stub = client.stub(pipeline_service_pb2_grpc.PipelineServiceStub)
        assert isinstance(stub, pipeline_service_pb2_grpc.PipelineServiceStub)
        assert isinstance(client.pipelines, pipeline_service_pb2_grpc.PipelineServiceStub)
