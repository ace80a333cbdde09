"""Ray nodes as ``ray start --block`` processes on this machine: the local head ``forgeline up``
starts, and the multi-node clusters the tests and ``benchmarks/scale.py`` build out of one
machine (a head plus worker nodes, each its own raylet, as on separate hosts).

Each node runs in a session of its own: ``stop`` ends it cleanly (``ray start --block`` stops
everything it started), ``kill`` takes the whole node down at once, as a lost host would.

A head started for one process (a service that found no RAY_ADDRESS) runs under a watchdog,
``python -m forgeline.raynodes watch``: when that process dies, even by SIGKILL, the watchdog
takes the node's whole session down. Ray's own fate-sharing does not suffice: its dashboard and
runtime-env agents, the raylet's children, outlive a killed driver (they hang reporting to a GCS
that died with it), and a PR_SET_PDEATHSIG fires when the *thread* that started a process
exits, not the process.
"""

from __future__ import annotations

import argparse
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
WATCH_INTERVAL_S = 0.2  # how often a watchdog looks whether its process is still there
STOP_GRACE_S = 10.0  # a watchdog's SIGTERM to the node, then SIGKILL


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
    watch: int | None = None,
    timeout: float = START_TIMEOUT_S,
) -> RayNode:
    """A head node on a free port, in its own (short: Ray's socket paths must fit 107 bytes)
    temp dir, so it never becomes "the latest Ray on this machine" that a later plain
    ``ray.init()`` would try to join. ``client_server`` also serves Ray Client (``ray://``;
    it listens on a free port either way, never on Ray's fixed default that a second head
    would clash on). The cluster uses Ray's token authentication with a token of its own,
    which its worker nodes and its clients get from ``env`` (no token file to find, no open
    control plane). ``env`` adds to the head's environment (e.g. Ray's
    ``RAY_health_check_*`` knobs); ``popen`` replaces the Popen options (default: a session
    of its own). With ``watch`` (a process id) the node runs under a watchdog that takes it
    down, temp dir included, when that process dies. Unavailable if it has not started
    within ``timeout`` seconds."""
    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="forgeline-ray-")
    client_port = free_port()
    args = [
        "--head",
        f"--port={port}",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={temp_dir}",
        f"--ray-client-server-port={client_port}",
    ]
    client = f"ray://127.0.0.1:{client_port}" if client_server else ""
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    watchdog = [] if watch is None else _watchdog(python, watch, temp_dir)
    env = {**(env or {}), **auth}
    node = _start(args, num_cpus, resources, python, env, log, popen, watchdog)
    node.env = auth
    node.address, node.temp_dir, node.client_address = f"127.0.0.1:{port}", temp_dir, client
    try:
        _wait_started(node, timeout)
        if client_server:
            _wait_listening(node, client_port, timeout)
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
    args = [f"--address={head.address}"]
    node = _start(args, num_cpus, resources, python, head.env, log, None, [])
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
    watchdog: list[str],
) -> RayNode:
    command = [*watchdog, python, "-m", "ray.scripts.scripts", "start", "--block", *args]
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


def _wait_started(node: RayNode, timeout: float = START_TIMEOUT_S) -> None:
    """Until ``ray start`` says the node runs (its raylet registered with the cluster)."""

    def started() -> bool:
        with open(node.log, "rb") as fh:
            fh.seek(node.log_start)
            return STARTED.encode() in fh.read()

    _wait(node, started, timeout)


def _wait_listening(node: RayNode, port: int, timeout: float) -> None:
    def listening() -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            return sock.connect_ex(("127.0.0.1", port)) == 0

    _wait(node, listening, timeout)


def _wait(node: RayNode, ready, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if not node.alive() or time.monotonic() > deadline:
            why = "exited" if not node.alive() else f"did not start within {timeout:g} s"
            raise Unavailable(
                f"a Ray node {why}; see {node.log}",
                reason="SERVICE_DID_NOT_START",
                metadata={"service": "ray", "log": str(node.log)},
            )
        time.sleep(0.2)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# --- the watchdog --------------------------------------------------------------------------------


def _watchdog(python: str, parent: int, remove: str) -> list[str]:
    """The command prefix that runs a node under a watchdog of ``parent``."""
    return [python, "-m", "forgeline.raynodes", "watch", f"--parent={parent}", f"--remove={remove}"]


def watch(parent: int, command: list[str], remove: str = "", grace_s: float = STOP_GRACE_S) -> int:
    """Runs ``command`` (``ray start --block``) in this process's group, the node's session, and
    returns its exit status once it ends, after removing ``remove`` (the node's temp dir). If
    ``parent`` dies first (this process is handed to another parent: polling that works
    whichever thread of ``parent`` started it), takes the whole group down: SIGTERM (``ray
    start`` stops what it started), then, after ``grace_s``, SIGKILL to whatever is left, this
    watchdog included.

    A SIGTERM to the group (RayNode.stop) reaches this process too: it waits for ``command`` to
    stop, as the node's other processes do."""
    signal.signal(signal.SIGTERM, lambda *_: None)  # handlers, unlike SIG_IGN, reset at exec
    child = subprocess.Popen(command)
    orphaned = False
    while child.poll() is None and not orphaned:
        orphaned = os.getppid() != parent
        if orphaned:
            _signal_group(os.getpgrp(), signal.SIGTERM)
            try:
                child.wait(grace_s)
            except subprocess.TimeoutExpired:
                pass
        else:
            time.sleep(WATCH_INTERVAL_S)
    if remove:
        shutil.rmtree(remove, ignore_errors=True)
    if orphaned:  # whatever outlived the SIGTERM, and this watchdog: the node is gone
        _signal_group(os.getpgrp(), signal.SIGKILL)
    return child.returncode


def main(argv: list[str] | None = None) -> int:
    """``python -m forgeline.raynodes watch --parent PID [--remove DIR] COMMAND...``: the
    watchdog's own process (see ``watch``)."""
    parser = argparse.ArgumentParser(prog="python -m forgeline.raynodes")
    sub = parser.add_subparsers(dest="verb", required=True)
    watcher = sub.add_parser("watch", help="run a Ray node that dies with the process --parent")
    watcher.add_argument("--parent", type=int, required=True)
    watcher.add_argument("--remove", default="", help="a folder to remove once the node ends")
    watcher.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    return watch(args.parent, args.command, args.remove)


if __name__ == "__main__":
    sys.exit(main())
