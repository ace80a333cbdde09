"""How the `forgeline` CLI prints an error: the status once, the message once, each field
violation once, whether the error was raised here or came back over gRPC."""

from __future__ import annotations

from forgeline.cli.app import error_lines
from forgeline.errors import InvalidArgument, NotFound, Violations, from_status, to_status
from forgeline.gateway.spec import Problem, invalid


def test_a_reason_that_is_the_code_is_not_repeated_nor_the_violation():
    error = InvalidArgument.for_field("--task", "one of classification, regression")
    assert error_lines(error) == [
        "[red]error[/red] INVALID_ARGUMENT",
        "  - --task: one of classification, regression",
    ]
    assert error_lines(NotFound("no dataset 'x'", reason="DATASET_NOT_FOUND")) == [
        "[red]error[/red] NOT_FOUND DATASET_NOT_FOUND: no dataset 'x'"
    ]


def test_a_refused_pipeline_names_each_problem_once_after_its_round_trip():
    problems = [Problem(f"steps.s{i}.call", f"no service 'x{i}'") for i in range(3)]
    problems.append(problems[0])  # the same problem found twice is printed once
    sent = invalid(problems)
    for error in (sent, from_status(to_status(sent))):
        assert error_lines(error) == [
            "[red]error[/red] INVALID_ARGUMENT PIPELINE_INVALID: the pipeline is not valid",
            "  - steps.s0.call: no service 'x0'",
            "  - steps.s1.call: no service 'x1'",
            "  - steps.s2.call: no service 'x2'",
        ]


def test_violations_a_reply_left_out_are_counted_and_markup_is_not_read():
    violations = Violations()
    for i in range(30):
        violations.add(f"cleaners[{i}].name", f"no cleaner '[bold]{i}'")
    problems = [Problem(v.field, v.description) for v in violations.items]
    received = from_status(to_status(invalid(problems)))
    lines = error_lines(received)
    assert len(received.violations) < 30
    assert lines[-1] == f"  ... and {30 - len(received.violations)} more"
    assert "\\[bold]" in lines[1]  # printed as written, not as rich markup
