"""forgeline.errors: every error class survives the trip through google.rpc.Status and back."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from forgeline.errors import (
    DOMAIN,
    ERROR_CLASSES,
    FieldViolation,
    ForgelineError,
    InvalidArgument,
    NotFound,
    Violations,
    from_status,
    to_status,
)

CLASSES = sorted(ERROR_CLASSES.values(), key=lambda cls: cls.__name__)


def over_the_wire(status: status_pb2.Status) -> status_pb2.Status:
    return status_pb2.Status.FromString(status.SerializeToString())


def test_every_status_code_class_is_registered_under_its_own_code():
    assert len(CLASSES) == 12
    for code, cls in ERROR_CLASSES.items():
        assert cls.code == code
        assert cls.reason == code.name


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_round_trip_keeps_class_code_message_reason_metadata_and_violations(cls):
    violations = [
        FieldViolation("cleaners[0].config.threshold", "must be <= 1"),
        FieldViolation("name", "is required"),
    ]
    error = cls(
        "dataset ds_1 is gone",
        reason="SOMETHING_SPECIFIC",
        metadata={"dataset_id": "ds_1", "kind": "dataset"},
        violations=violations,
    )
    status = over_the_wire(to_status(error))
    assert status.code == cls.code.value[0]
    assert status.message == "dataset ds_1 is gone"

    back = from_status(status)
    assert type(back) is cls
    assert back.code == cls.code
    assert back.message == "dataset ds_1 is gone"
    assert back.reason == "SOMETHING_SPECIFIC"
    assert back.metadata == {"dataset_id": "ds_1", "kind": "dataset"}
    assert back.violations == violations


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_round_trip_of_the_default_reason(cls):
    back = from_status(over_the_wire(to_status(cls("plain"))))
    assert type(back) is cls
    assert back.reason == cls.reason
    assert back.metadata == {} and back.violations == []


def test_status_carries_error_info_and_bad_request_details():
    status = to_status(InvalidArgument.for_field("page_token", "not a token", reason="BAD_TOKEN"))
    info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
    assert status.details[0].Unpack(info)
    assert (info.reason, info.domain) == ("BAD_TOKEN", DOMAIN)
    assert status.details[1].Unpack(bad)
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("page_token", "not a token")
    ]
    assert status.message == "page_token: not a token"


def test_no_bad_request_detail_without_violations():
    status = to_status(NotFound("no dataset 'x'"))
    assert len(status.details) == 1
    assert status.details[0].Is(error_details_pb2.ErrorInfo.DESCRIPTOR)


def test_a_status_without_details_maps_by_code():
    back = from_status(status_pb2.Status(code=grpc.StatusCode.NOT_FOUND.value[0], message="gone"))
    assert type(back) is NotFound
    assert (back.message, back.reason) == ("gone", "NOT_FOUND")


def test_a_code_without_a_class_keeps_its_code():
    back = from_status(status_pb2.Status(code=grpc.StatusCode.ABORTED.value[0], message="raced"))
    assert type(back) is ForgelineError
    assert back.code == grpc.StatusCode.ABORTED
    assert back.message == "raced"


def test_violations_collects_every_field_before_raising():
    problems = Violations()
    problems.raise_if_any()  # nothing collected: no error
    problems.add("train_fraction", "must be > 0")
    problems.add("test_fraction", "fractions must sum to 1")
    with pytest.raises(InvalidArgument) as caught:
        problems.raise_if_any(reason="BAD_SPLIT")
    assert caught.value.reason == "BAD_SPLIT"
    assert [v.field for v in caught.value.violations] == ["train_fraction", "test_fraction"]
    assert "train_fraction: must be > 0" in caught.value.message
    assert "test_fraction: fractions must sum to 1" in caught.value.message


def test_an_error_about_a_nested_message_names_its_fields_under_the_parent():
    from forgeline.errors import FailedPrecondition, FieldViolation, InvalidArgument

    one = InvalidArgument.for_field("long_inputs.name", "'chunk' reads in several passes")
    nested = one.under("training")
    assert isinstance(nested, InvalidArgument) and nested.reason == one.reason
    assert [v.field for v in nested.violations] == ["training.long_inputs.name"]
    assert str(nested) == "training.long_inputs.name: 'chunk' reads in several passes"
    several = InvalidArgument(
        "a: x; b: y", violations=[FieldViolation("a", "x"), FieldViolation("b", "y")]
    ).under("p")
    assert str(several) == "p.a: x; p.b: y"
    plain = FailedPrecondition("no cluster")  # no field to prefix: the same error
    assert plain.under("training") is plain
