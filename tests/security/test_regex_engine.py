"""Client-supplied regular expressions run in linear time (issue 18, item 5).

``(a+)+$`` against ``"a" * 40 + "!"`` takes a backtracking engine hours and held the GIL the
whole time: the safety service stopped answering health checks and ignored SIGTERM, and the data
service stalled the same way. Patterns now run on RE2 (forgeline.patterns): the same requests are
answered at once, by services in their own processes (so a frozen one cannot freeze the test),
and what RE2 cannot run is refused up front, naming the field and the syntax.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2

from forgeline.client import Client
from forgeline.convert import from_struct
from forgeline.errors import InvalidArgument
from forgeline.patterns import MAX_PATTERN_CHARS, InvalidPattern, compile_pattern
from forgeline.plugins.input_filters.text import TextMatcher
from forgeline.registry import PluginRegistry
from forgeline.v1 import common_pb2
from forgeline.v1 import data_service_pb2 as dpb
from forgeline.v1 import safety_service_pb2 as pb
from tests.conftest import ServiceProcess
from tests.integration.test_data_service import read_all, spec, upload

EVIL = r"(a+)+$"
NEEDLE = "a" * 40 + "!"  # 2**40 paths for a backtracking engine: hours
# Far beyond what RE2 needs (microseconds), far below what backtracking needs (hours): only a
# loaded machine's scheduling lies between.
BOUND_S = 30.0

POLICY = f"""
input_filters:
  - name: evil-input
    filter: {{name: blocklist, config: {{regexes: ['{EVIL}', '(x+x+)+y']}}}}
output_rules:
  - name: evil-output
    match: {{name: regex, config: {{patterns: ['^(\\w+\\s?)*$']}}}}
    action: block
"""


@pytest.fixture(scope="module")
def safety(tmp_path_factory) -> Iterator[ServiceProcess]:
    home = tmp_path_factory.mktemp("regex-safety")
    yield from _running(ServiceProcess("safety", home, [home]))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Iterator[ServiceProcess]:
    home = tmp_path_factory.mktemp("regex-data")
    yield from _running(ServiceProcess("data", home, [home]))


def _running(service: ServiceProcess) -> Iterator[ServiceProcess]:
    service.start()
    try:
        with Client(service.address) as client:
            client.wait_ready(60)
        yield service
    finally:
        if service.proc.poll() is None:
            service.kill()


def _serving(client: Client) -> bool:
    reply = client.health.Check(health_pb2.HealthCheckRequest(), timeout=BOUND_S)
    return reply.status == health_pb2.HealthCheckResponse.SERVING


# --- through the services --------------------------------------------------------------------


def test_the_safety_service_answers_a_catastrophic_pattern_at_once_and_stays_healthy(safety):
    with Client(safety.address, timeout=BOUND_S) as client, ThreadPoolExecutor(2) as pool:
        source = common_pb2.PolicySource(yaml=POLICY)
        started = time.monotonic()
        checking = pool.submit(
            client.safety.CheckInputBatch,
            pb.CheckInputBatchRequest(policy=source, texts=[NEEDLE, "x" * 40, "aaaa"]),
        )
        assert _serving(client)  # while (or after) the batch is matched
        needle, xs, plain = checking.result(BOUND_S).verdicts
        output = client.safety.CheckOutput(pb.CheckOutputRequest(policy=source, text=NEEDLE))
        elapsed = time.monotonic() - started
    assert elapsed < BOUND_S
    assert needle.decision == common_pb2.SAFETY_DECISION_ALLOW
    assert xs.decision == common_pb2.SAFETY_DECISION_ALLOW
    assert (plain.decision, plain.blocked_by) == (common_pb2.SAFETY_DECISION_BLOCK, "evil-input")
    assert output.verdict.decision == common_pb2.SAFETY_DECISION_ALLOW  # "!" is no word character
    assert safety.terminate() == 0  # SIGTERM is heard: nothing holds the interpreter


def test_the_data_service_cleans_with_a_catastrophic_pattern_at_once(data):
    with Client(data.address, timeout=BOUND_S) as client:
        rows = [{"text": NEEDLE, "label": 0}, {"text": "aaaa", "label": 1}] * 50
        dataset = upload(client, "regex-needles", rows)
        started = time.monotonic()
        op = client.data.CleanDataset(
            dpb.CleanDatasetRequest(
                dataset_id=dataset.artifact.id,
                cleaners=[spec("safety_filter", filter="blocklist", config={"regexes": [EVIL]})],
            )
        )
        assert _serving(client)
        result = client.wait(op, dpb.CleanDatasetResponse, timeout=BOUND_S)
        elapsed = time.monotonic() - started
        (step,) = result.steps
        assert (step.rows_in, step.rows_out) == (100, 50)
        assert from_struct(step.details)["matches"] == {"regex": 50}
        kept = read_all(client, result.dataset.artifact.id).column("text").to_pylist()
    assert elapsed < BOUND_S
    assert kept == [NEEDLE] * 50
    assert data.terminate() == 0


def test_a_backreference_is_refused_naming_the_field_and_the_syntax(tmp_path: Path):
    service = ServiceProcess("safety", tmp_path, [tmp_path]).start()
    try:
        with Client(service.address, timeout=BOUND_S) as client:
            client.wait_ready(60)
            policy = "input_filters:\n  - filter: {name: blocklist, config: {regexes: ['(a)\\1']}}"
            with pytest.raises(InvalidArgument) as refused:
                client.safety.ValidatePolicy(
                    pb.ValidatePolicyRequest(policy=common_pb2.PolicySource(yaml=policy))
                )
    finally:
        service.kill()
    assert refused.value.code.name == "INVALID_ARGUMENT"
    fields = [v.field for v in refused.value.violations]
    assert fields == ["policy.input_filters[0].filter.config.regexes"]
    assert "regexes[0]" in refused.value.message
    assert "a backreference \\1" in refused.value.message
    assert "RE2" in refused.value.message


# --- the kernel helper and the plugins -------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "refused"),
    [
        (r"(a)\1", "a backreference \\1"),
        (r"(?P<x>a)(?P=x)", "a backreference (?P=name)"),
        (r"(?=a)a", "lookahead (?=...)"),
        (r"a(?!b)", "lookahead (?!...)"),
        (r"(?<=a)b", "lookbehind (?<=...)"),
        (r"(?<!a)b", "lookbehind (?<!...)"),
        (r"(?>a+)b", "an atomic group"),
        (r"a++b", "a possessive quantifier"),
        (r"(a)?(?(1)b|c)", "a conditional"),
    ],
)
def test_what_only_a_backtracking_engine_runs_is_refused_by_name(pattern: str, refused: str):
    with pytest.raises(InvalidPattern) as exc:
        compile_pattern(pattern, "rule.patterns[2]")
    assert exc.value.violations[0].field == "rule.patterns[2]"
    assert refused in exc.value.message and "linear time" in exc.value.message


def test_every_plugin_that_takes_a_pattern_refuses_through_its_config_field():
    registry = PluginRegistry()
    cases = [
        ("input_filters", "blocklist", {"regexes": ["ok", "(?<=x)y"]}, "regexes"),
        ("output_rules", "regex", {"patterns": ["(a)\\1"]}, "patterns"),
    ]
    for kind, name, config, field in cases:
        with pytest.raises(InvalidArgument) as exc:
            registry.create(kind, name, config, "rules[0]")
        assert exc.value.violations[0].field == f"rules[0].config.{field}"
        assert "is not supported" in exc.value.message
    with pytest.raises(InvalidArgument, match="the limit is"):
        registry.create("output_rules", "regex", {"patterns": ["a" * (MAX_PATTERN_CHARS + 1)]}, "r")


def test_python_meanings_are_kept():
    """\\d, \\w and \\s mean what they meant under Python's re (Unicode, not RE2's ASCII), on
    every character Python's Unicode database knows; case folding and spans over non-ASCII
    text are as before."""
    assigned = "".join(
        chr(c)
        for c in range(0x110000)
        if not 0xD800 <= c <= 0xDFFF and unicodedata.category(chr(c)) != "Cn"
    )
    for cls in (r"\w", r"\d", r"\s"):
        assert set(compile_pattern(cls).findall(assigned)) == set(re.findall(cls, assigned)), cls
    assert compile_pattern(r"\w+").findall("héllo wörld 世界_1") == ["héllo", "wörld", "世界_1"]
    assert compile_pattern(r"x\d{,2}\Z").search("x١٢") is not None  # Arabic-Indic digits
    assert compile_pattern(r"\u00e9t\N{LATIN SMALL LETTER E WITH ACUTE}").search("été")
    assert compile_pattern("ПАРОЛЬ", ignore_case=True).search("мой пароль") is not None
    assert compile_pattern("ПАРОЛЬ").search("мой пароль") is None

    matcher = TextMatcher(patterns=[r"buy\s+now"])
    (found,) = matcher.find_one("ÉTÉ ＢＵＹ　now!")  # full-width letters and space
    assert (found.start, found.end, found.label) == (4, 11, "regex")
