"""The local stack: every installed service and the gateway as processes on this machine.

`forgeline up` starts one that outlives the command (its processes and addresses are written to
FORGELINE_HOME/stack.json for `forgeline down` and `forgeline status`); `forgeline run`, when no
gateway answers, starts an embedded one on free ports for the duration of the run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from forgeline import raynodes
from forgeline.client import Client
from forgeline.errors import Unavailable
from forgeline.server import installed_services
from forgeline.service_spec import health_kind, probe_http
from forgeline.settings import Settings

START_TIMEOUT_S = 120.0
# Services that run on Ray. DESIGN: one Ray per machine, shared by every service that needs it:
# the stack starts a local head for them unless RAY_ADDRESS already names a cluster.
RAY_SERVICES = {"training", "tuning", "compression", "memory"}
RAY = "ray"


@dataclass
class Member:
    name: str
    pid: int
    address: str
    log: str
    workdir: str = ""  # a folder of its own, removed when it stops (the Ray head's temp dir)


@dataclass
class Stack:
    members: list[Member] = field(default_factory=list)
    _procs: list[subprocess.Popen] = field(default_factory=list, repr=False)
    _ray_env: dict[str, str] = field(default_factory=dict, repr=False)
    _roots_env: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def addresses(self) -> dict[str, str]:
        """The services' addresses (not the Ray head's)."""
        return {m.name: m.address for m in self.members if m.name != RAY}

    # --- starting ---------------------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        settings: Settings,
        *,
        fixed_ports: bool,
        detach: bool,
        services: list[str] | None = None,
        data_roots: list[Path] | None = None,
    ) -> Stack:
        """Starts ``services`` (default: every installed one; the gateway last, told where the
        others listen) and waits until each reports SERVING. On any failure the ones already
        started are stopped and Unavailable names the service and its log. ``data_roots`` are
        added after the configured ones (the first root, against which a service resolves a
        relative path, stays the same): the paths a command started this stack to read."""
        names = members(services, detach)
        logs = settings.home.expanduser() / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        stack = cls()
        if data_roots:
            roots = dict.fromkeys([*settings.roots, *data_roots])
            stack._roots_env = {"FORGELINE_DATA_ROOTS": json.dumps([str(r) for r in roots])}
        try:
            if RAY_SERVICES & set(names) and not os.environ.get("RAY_ADDRESS"):
                stack._start_ray(logs, detach)
            for name in names:
                stack._launch(name, settings, logs, fixed_ports, detach, stack.addresses)
            stack._launch("gateway", settings, logs, fixed_ports, detach, stack.addresses)
            for member in stack.members:
                if member.name != RAY:
                    stack._wait_ready(member, settings)
        except BaseException:
            stack.stop()
            raise
        return stack

    def _launch(self, name, settings, logs: Path, fixed_ports, detach, addresses) -> None:
        # `forgeline up` listens where the settings say each service is (FORGELINE_ADDRESSES,
        # FORGELINE_GATEWAY, else the default ports), so every client finds it there.
        port = (
            int(settings.address_for(name).rsplit(":", 1)[1])
            if fixed_ports
            else raynodes.free_port()
        )
        log = logs / f"{name}.log"
        env = {
            **os.environ,
            "FORGELINE_HOME": str(settings.home.expanduser()),
            "FORGELINE_ADDRESSES": json.dumps({**settings.addresses, **addresses}),
        }
        env.pop("FORGELINE_PORT", None)
        env.update(self._ray_env)
        env.update(self._roots_env)
        # Both streams go to the log file, never to a pipe: a member outlives this command
        # (`forgeline up`), and a library printing to a closed pipe kills its process.
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "forgeline", "serve", name, "--port", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                **_session(detach),
            )
        self._procs.append(proc)
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "[::]") else settings.host
        self.members.append(Member(name, proc.pid, f"{host}:{port}", str(log)))

    def _start_ray(self, logs: Path, detach: bool) -> None:
        """A local Ray head (``ray start --head --block``: it stops everything it started when
        it is stopped) that the stack's Ray services attach to."""
        log = logs / "ray.log"
        head = raynodes.start_head(num_cpus=os.cpu_count() or 1, log=log, popen=_session(detach))
        self._procs.append(head.proc)
        self.members.append(Member(RAY, head.pid, head.address, str(log), head.temp_dir))
        # Its token goes to the stack's Ray services (and nothing else).
        self._ray_env = {"RAY_ADDRESS": head.address, **head.env}

    def _wait_ready(self, member: Member, settings: Settings) -> None:
        """Waits until ``member`` answers health SERVING (an HTTP service: until GET /healthz
        answers at all, since its 503 only says its upstream is not up yet); Unavailable with
        its log if it exits first or stays silent for START_TIMEOUT_S."""
        deadline = time.monotonic() + START_TIMEOUT_S
        if health_kind(member.name) == "http":
            self._wait_http(member, settings, deadline)
            return
        with Client(member.address, token=settings.auth_token or None) as client:
            while True:
                if not _alive(member.pid):
                    _reap(self._procs, member.pid)
                    raise _not_started(member, "exited while starting")
                try:
                    client.wait_ready(min(2.0, max(0.1, deadline - time.monotonic())))
                    return
                except Unavailable:
                    if time.monotonic() >= deadline:
                        raise _not_started(member, _silent(member)) from None

    def _wait_http(self, member: Member, settings: Settings, deadline: float) -> None:
        while probe_http(member.address, tls=bool(settings.tls_cert), timeout=2.0) is None:
            if not _alive(member.pid):
                _reap(self._procs, member.pid)
                raise _not_started(member, "exited while starting")
            if time.monotonic() >= deadline:
                raise _not_started(member, _silent(member))
            time.sleep(0.1)

    # --- stopping ---------------------------------------------------------------------------------
    def stop(self, grace_s: float = 30.0) -> None:
        """SIGTERM to every service (gateway first), then, once they are gone, to Ray (a Ray
        head stopped while services are still attached to it drains for 30 s); SIGKILL to a
        member still alive ``grace_s`` after its SIGTERM."""
        services = [m for m in reversed(self.members) if m.name != RAY]
        for group in (services, [m for m in self.members if m.name == RAY]):
            for member in group:
                _signal(member.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            for member in group:
                while _alive(member.pid) and time.monotonic() < deadline:
                    _reap(self._procs, member.pid)
                    time.sleep(0.1)
                if _alive(member.pid):
                    _signal(member.pid, signal.SIGKILL)
                _reap(self._procs, member.pid)
                if member.workdir:
                    shutil.rmtree(member.workdir, ignore_errors=True)
        self.members.clear()

    # --- the state file of `forgeline up` -------------------------------------------------------
    def save(self, path: Path) -> None:
        path.write_text(json.dumps([m.__dict__ for m in self.members], indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Stack:
        return cls(members=[Member(**m) for m in json.loads(path.read_text())])


def members(services: list[str] | None, detach: bool) -> list[str]:
    """The services a stack starts besides the gateway: ``services``, else every installed one,
    except that an embedded stack (not detached: `forgeline run` with no gateway) leaves out the
    non-gRPC faces no pipeline step calls, so its startup costs what it did. A non-gRPC face
    (the HTTP face) is a client of the gRPC services: it comes after them, so a stack on free
    ports can tell it where they listen."""
    every = [n for n in installed_services() if detach or health_kind(n) == "grpc"]
    names = [n for n in (services or every) if n != "gateway"]
    return sorted(names, key=lambda n: health_kind(n) != "grpc")


def _not_started(member: Member, what: str) -> Unavailable:
    return Unavailable(
        f"the {member.name} service {what}; see {member.log}",
        reason="SERVICE_DID_NOT_START",
        metadata={"service": member.name, "log": member.log},
    )


def _silent(member: Member) -> str:
    return f"did not answer on {member.address} within {START_TIMEOUT_S:.0f} s"


def state_file(settings: Settings) -> Path:
    return settings.home.expanduser() / "stack.json"


def _session(detach: bool) -> dict:
    """Popen arguments for a member: always its own session, so a Ctrl-C at the terminal reaches
    only the CLI (which cancels the run and then stops the stack itself); a member of an embedded
    stack also gets SIGTERM if the CLI dies, instead of outliving it (Linux)."""
    if detach or not sys.platform.startswith("linux"):
        return {"start_new_session": True}

    def die_with_parent() -> None:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return {"start_new_session": True, "preexec_fn": die_with_parent}


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of ours counts as gone
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _reap(procs: list[subprocess.Popen], pid: int) -> None:
    for proc in procs:
        if proc.pid == pid:
            proc.poll()
