"""forgeline.testing ships a contract suite for every plugin kind (issue 19: the compressor,
input filter and output rule suites used to live in tests/contract/, out of a third party's
reach), and importing the suites stays cheap and free of anything a plugin package lacks."""

from __future__ import annotations

import json
import subprocess
import sys

from forgeline.registry import KIND_CONTRACTS
from forgeline.testing.suites import KINDS


def test_every_plugin_kind_has_a_suite():
    assert sorted(KINDS) == sorted(KIND_CONTRACTS)


def test_importing_the_suites_imports_no_torch_no_service_and_no_tests():
    probe = (
        "import json, sys; import forgeline.testing.suites, forgeline.testing.plugin; "
        "print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    modules = json.loads(done.stdout)
    assert not [
        m
        for m in modules
        if m in ("torch", "transformers", "ray", "tests")
        or m.startswith(("tests.", "forgeline.services", "forgeline.plugins"))
    ]
