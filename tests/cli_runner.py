"""`forgeline ARGS` as a user runs it: a real process whose settings point at services the test
started on loopback ports."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO


def forgeline(
    addresses: dict[str, str],
    *args: str,
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Runs the command with FORGELINE_ADDRESSES = ``addresses`` (service name -> address) and
    ``env`` over this process's environment."""
    env = {
        **os.environ,
        "FORGELINE_ADDRESSES": json.dumps(addresses),
        "COLUMNS": "200",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "forgeline", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=timeout,
    )
