"""Ray nodes as ``ray start --block`` processes on this machine: the local head ``forgeline up``
starts, and the multi-node clusters the tests and ``benchmarks/scale.py`` build out of one
machine (a head plus worker nodes, each its own raylet, as on separate hosts).

Each node runs in a session of its own: ``stop`` ends it cleanly (``ray start --block`` stops
everything it started), ``kill`` takes the whole node down at once, as a lost host would.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from forgeline.errors import Unavailable

START_TIMEOUT_S = 90.0
STARTED = "Ray runtime started."  # what `ray start` prints once the node runs


@dataclass
class RayNode:
    """One started node: its ``ray start`` process and where the cluster is reached."""

    proc: subprocess.Popen
    address: str  # the head's GCS address, host:port (what RAY_ADDRESS names)
    log: Path
    temp_dir: str = ""  # a head's own temp dir (removed by the caller that made it)
    client_address: str = ""  # ray://host:port when the head runs a Ray Client server
    env: dict[str, str] = field(default_factory=dict)  # the token every member and client needs
    log_start: int = 0  # the log's size when this node started (a log may be appended to)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL to the node's whole session (raylet, object store, workers): a lost host."""
        _signal_group(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self, grace_s: float = 30.0) -> None:
        """SIGTERM (``ray start --block`` then stops what it started), SIGKILL after
        ``grace_s``."""
        _signal_group(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.kill()


def start_head(
    *,
    num_cpus: int,
    log: Path,
    resources: dict[str, float] | None = None,
    python: str = sys.executable,
    client_server: bool = False,
    env: dict[str, str] | None = None,
    popen: dict | None = None,
) -> RayNode:
    """A head node on a free port, in its own (short: Ray's socket paths must fit 107 bytes)
    temp dir, so it never becomes "the latest Ray on this machine" that a later plain
    ``ray.init()`` would try to join. ``client_server`` also serves Ray Client (``ray://``).
    The cluster uses Ray's token authentication with a token of its own, which its worker
    nodes and its clients get from ``env`` (no token file to find, no open control plane).
    ``env`` adds to the head's environment (e.g. Ray's ``RAY_health_check_*`` knobs);
    ``popen`` replaces the Popen options (default: a session of its own)."""
    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="forgeline-ray-")
    args = [
        "--head",
        f"--port={port}",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={temp_dir}",
    ]
    client = ""
    if client_server:
        client_port = free_port()
        args.append(f"--ray-client-server-port={client_port}")
        client = f"ray://127.0.0.1:{client_port}"
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    node = _start(args, num_cpus, resources, python, {**(env or {}), **auth}, log, popen)
    node.env = auth
    node.address, node.temp_dir, node.client_address = f"127.0.0.1:{port}", temp_dir, client
    try:
        _wait_started(node)
        if client_server:
            _wait_listening(node, int(client.rsplit(":", 1)[1]))
    except Unavailable:
        node.kill()
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    return node


def start_worker(
    head: RayNode,
    *,
    num_cpus: int,
    log: Path,
    resources: dict[str, float] | None = None,
    python: str = sys.executable,
) -> RayNode:
    """A worker node joining ``head`` (a raylet of its own, as another host would run); returns
    once its resources count in the cluster."""
    node = _start([f"--address={head.address}"], num_cpus, resources, python, head.env, log, None)
    node.address = head.address
    try:
        _wait_started(node)
    except Unavailable:
        node.kill()
        raise
    return node


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(
    args: list[str],
    num_cpus: int,
    resources: dict[str, float] | None,
    python: str,
    env: dict[str, str],
    log: Path,
    popen: dict | None,
) -> RayNode:
    command = [python, "-m", "ray.scripts.scripts", "start", "--block", *args]
    command.append(f"--num-cpus={num_cpus}")
    if resources:
        command.append(f"--resources={json.dumps(resources)}")
    # A node stopped while nothing runs has nothing to drain; a drain would wait out its whole
    # timeout (Ray Train's detached placement-group cleaner never ends without a dashboard).
    full_env = {"RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0", **os.environ, **env}
    full_env["RAY_ADDRESS"] = ""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        start = out.tell()
        proc = subprocess.Popen(
            command,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=tempfile.gettempdir(),  # never the caller's folder: nothing on its path
            # Its own session: one signal to the group reaches everything it started.
            **(popen if popen is not None else {"start_new_session": True}),
        )
    return RayNode(proc, "", log, env=dict(env), log_start=start)


def _wait_started(node: RayNode) -> None:
    """Until ``ray start`` says the node runs (its raylet registered with the cluster)."""

    def started() -> bool:
        with open(node.log, "rb") as fh:
            fh.seek(node.log_start)
            return STARTED.encode() in fh.read()

    _wait(node, started)


def _wait_listening(node: RayNode, port: int) -> None:
    def listening() -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            return sock.connect_ex(("127.0.0.1", port)) == 0

    _wait(node, listening)


def _wait(node: RayNode, ready) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        if not node.alive() or time.monotonic() > deadline:
            raise Unavailable(
                f"a Ray node did not start; see {node.log}",
                reason="SERVICE_DID_NOT_START",
                metadata={"service": "ray", "log": str(node.log)},
            )
        time.sleep(0.2)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
