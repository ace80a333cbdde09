import datetime

from forgeline.v1 import common_pb2 as _common_pb2
from forgeline.v1 import options_pb2 as _options_pb2
from google.longrunning import operations_pb2 as _operations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CheckInputRequest(_message.Message):
    __slots__ = ("policy", "text")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    policy: _common_pb2.PolicySource
    text: str
    def __init__(self, policy: _Optional[_Union[_common_pb2.PolicySource, _Mapping]] = ..., text: _Optional[str] = ...) -> None: ...

class CheckInputResponse(_message.Message):
    __slots__ = ("verdict",)
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    verdict: _common_pb2.SafetyVerdict
    def __init__(self, verdict: _Optional[_Union[_common_pb2.SafetyVerdict, _Mapping]] = ...) -> None: ...

class CheckInputBatchRequest(_message.Message):
    __slots__ = ("policy", "texts")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    policy: _common_pb2.PolicySource
    texts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, policy: _Optional[_Union[_common_pb2.PolicySource, _Mapping]] = ..., texts: _Optional[_Iterable[str]] = ...) -> None: ...

class CheckInputBatchResponse(_message.Message):
    __slots__ = ("verdicts",)
    VERDICTS_FIELD_NUMBER: _ClassVar[int]
    verdicts: _containers.RepeatedCompositeFieldContainer[_common_pb2.SafetyVerdict]
    def __init__(self, verdicts: _Optional[_Iterable[_Union[_common_pb2.SafetyVerdict, _Mapping]]] = ...) -> None: ...

class CheckOutputRequest(_message.Message):
    __slots__ = ("policy", "text")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    policy: _common_pb2.PolicySource
    text: str
    def __init__(self, policy: _Optional[_Union[_common_pb2.PolicySource, _Mapping]] = ..., text: _Optional[str] = ...) -> None: ...

class CheckOutputResponse(_message.Message):
    __slots__ = ("verdict",)
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    verdict: _common_pb2.SafetyVerdict
    def __init__(self, verdict: _Optional[_Union[_common_pb2.SafetyVerdict, _Mapping]] = ...) -> None: ...

class CheckOutputBatchRequest(_message.Message):
    __slots__ = ("policy", "texts")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    policy: _common_pb2.PolicySource
    texts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, policy: _Optional[_Union[_common_pb2.PolicySource, _Mapping]] = ..., texts: _Optional[_Iterable[str]] = ...) -> None: ...

class CheckOutputBatchResponse(_message.Message):
    __slots__ = ("verdicts",)
    VERDICTS_FIELD_NUMBER: _ClassVar[int]
    verdicts: _containers.RepeatedCompositeFieldContainer[_common_pb2.SafetyVerdict]
    def __init__(self, verdicts: _Optional[_Iterable[_Union[_common_pb2.SafetyVerdict, _Mapping]]] = ...) -> None: ...

class ValidatePolicyRequest(_message.Message):
    __slots__ = ("policy",)
    POLICY_FIELD_NUMBER: _ClassVar[int]
    policy: _common_pb2.PolicySource
    def __init__(self, policy: _Optional[_Union[_common_pb2.PolicySource, _Mapping]] = ...) -> None: ...

class ValidatePolicyResponse(_message.Message):
    __slots__ = ("policy", "sha256")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    policy: _common_pb2.SafetyPolicy
    sha256: str
    def __init__(self, policy: _Optional[_Union[_common_pb2.SafetyPolicy, _Mapping]] = ..., sha256: _Optional[str] = ...) -> None: ...

class FairnessThresholds(_message.Message):
    __slots__ = ("max_demographic_parity_difference", "min_demographic_parity_ratio", "max_equalized_odds_difference", "min_accuracy")
    MAX_DEMOGRAPHIC_PARITY_DIFFERENCE_FIELD_NUMBER: _ClassVar[int]
    MIN_DEMOGRAPHIC_PARITY_RATIO_FIELD_NUMBER: _ClassVar[int]
    MAX_EQUALIZED_ODDS_DIFFERENCE_FIELD_NUMBER: _ClassVar[int]
    MIN_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    max_demographic_parity_difference: float
    min_demographic_parity_ratio: float
    max_equalized_odds_difference: float
    min_accuracy: float
    def __init__(self, max_demographic_parity_difference: _Optional[float] = ..., min_demographic_parity_ratio: _Optional[float] = ..., max_equalized_odds_difference: _Optional[float] = ..., min_accuracy: _Optional[float] = ...) -> None: ...

class GroupMetrics(_message.Message):
    __slots__ = ("group", "count", "accuracy", "selection_rate", "false_positive_rate", "false_negative_rate")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    SELECTION_RATE_FIELD_NUMBER: _ClassVar[int]
    FALSE_POSITIVE_RATE_FIELD_NUMBER: _ClassVar[int]
    FALSE_NEGATIVE_RATE_FIELD_NUMBER: _ClassVar[int]
    group: str
    count: int
    accuracy: float
    selection_rate: float
    false_positive_rate: float
    false_negative_rate: float
    def __init__(self, group: _Optional[str] = ..., count: _Optional[int] = ..., accuracy: _Optional[float] = ..., selection_rate: _Optional[float] = ..., false_positive_rate: _Optional[float] = ..., false_negative_rate: _Optional[float] = ...) -> None: ...

class FairnessMetrics(_message.Message):
    __slots__ = ("count", "accuracy", "selection_rate", "false_positive_rate", "false_negative_rate", "demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference", "groups")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    SELECTION_RATE_FIELD_NUMBER: _ClassVar[int]
    FALSE_POSITIVE_RATE_FIELD_NUMBER: _ClassVar[int]
    FALSE_NEGATIVE_RATE_FIELD_NUMBER: _ClassVar[int]
    DEMOGRAPHIC_PARITY_DIFFERENCE_FIELD_NUMBER: _ClassVar[int]
    DEMOGRAPHIC_PARITY_RATIO_FIELD_NUMBER: _ClassVar[int]
    EQUALIZED_ODDS_DIFFERENCE_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    count: int
    accuracy: float
    selection_rate: float
    false_positive_rate: float
    false_negative_rate: float
    demographic_parity_difference: float
    demographic_parity_ratio: float
    equalized_odds_difference: float
    groups: _containers.RepeatedCompositeFieldContainer[GroupMetrics]
    def __init__(self, count: _Optional[int] = ..., accuracy: _Optional[float] = ..., selection_rate: _Optional[float] = ..., false_positive_rate: _Optional[float] = ..., false_negative_rate: _Optional[float] = ..., demographic_parity_difference: _Optional[float] = ..., demographic_parity_ratio: _Optional[float] = ..., equalized_odds_difference: _Optional[float] = ..., groups: _Optional[_Iterable[_Union[GroupMetrics, _Mapping]]] = ...) -> None: ...

class ThresholdCheck(_message.Message):
    __slots__ = ("metric", "op", "threshold", "value", "passed")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    metric: str
    op: str
    threshold: float
    value: float
    passed: bool
    def __init__(self, metric: _Optional[str] = ..., op: _Optional[str] = ..., threshold: _Optional[float] = ..., value: _Optional[float] = ..., passed: _Optional[bool] = ...) -> None: ...

class AuditFairnessRequest(_message.Message):
    __slots__ = ("dataset", "sensitive_columns", "model_id", "prediction_column", "positive_label", "thresholds", "max_sequence_length", "request_id")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    SENSITIVE_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_COLUMN_FIELD_NUMBER: _ClassVar[int]
    POSITIVE_LABEL_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    MAX_SEQUENCE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    dataset: _common_pb2.DatasetInput
    sensitive_columns: _containers.RepeatedScalarFieldContainer[str]
    model_id: str
    prediction_column: str
    positive_label: str
    thresholds: FairnessThresholds
    max_sequence_length: int
    request_id: str
    def __init__(self, dataset: _Optional[_Union[_common_pb2.DatasetInput, _Mapping]] = ..., sensitive_columns: _Optional[_Iterable[str]] = ..., model_id: _Optional[str] = ..., prediction_column: _Optional[str] = ..., positive_label: _Optional[str] = ..., thresholds: _Optional[_Union[FairnessThresholds, _Mapping]] = ..., max_sequence_length: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class AuditFairnessResponse(_message.Message):
    __slots__ = ("metrics", "checks", "passed", "subject", "sensitive_columns", "positive_label", "audit_sequence")
    METRICS_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    SENSITIVE_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    POSITIVE_LABEL_FIELD_NUMBER: _ClassVar[int]
    AUDIT_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    metrics: FairnessMetrics
    checks: _containers.RepeatedCompositeFieldContainer[ThresholdCheck]
    passed: int
    subject: str
    sensitive_columns: _containers.RepeatedScalarFieldContainer[str]
    positive_label: str
    audit_sequence: int
    def __init__(self, metrics: _Optional[_Union[FairnessMetrics, _Mapping]] = ..., checks: _Optional[_Iterable[_Union[ThresholdCheck, _Mapping]]] = ..., passed: _Optional[int] = ..., subject: _Optional[str] = ..., sensitive_columns: _Optional[_Iterable[str]] = ..., positive_label: _Optional[str] = ..., audit_sequence: _Optional[int] = ...) -> None: ...

class MitigateFairnessRequest(_message.Message):
    __slots__ = ("train", "eval", "sensitive_columns", "model_id", "score_column", "feature_columns", "mitigator", "positive_label", "thresholds", "max_sequence_length", "seed", "output_name", "request_id")
    TRAIN_FIELD_NUMBER: _ClassVar[int]
    EVAL_FIELD_NUMBER: _ClassVar[int]
    SENSITIVE_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_COLUMN_FIELD_NUMBER: _ClassVar[int]
    FEATURE_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    MITIGATOR_FIELD_NUMBER: _ClassVar[int]
    POSITIVE_LABEL_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    MAX_SEQUENCE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    train: _common_pb2.DatasetInput
    eval: _common_pb2.DatasetInput
    sensitive_columns: _containers.RepeatedScalarFieldContainer[str]
    model_id: str
    score_column: str
    feature_columns: _containers.RepeatedScalarFieldContainer[str]
    mitigator: _common_pb2.PluginSpec
    positive_label: str
    thresholds: FairnessThresholds
    max_sequence_length: int
    seed: int
    output_name: str
    request_id: str
    def __init__(self, train: _Optional[_Union[_common_pb2.DatasetInput, _Mapping]] = ..., eval: _Optional[_Union[_common_pb2.DatasetInput, _Mapping]] = ..., sensitive_columns: _Optional[_Iterable[str]] = ..., model_id: _Optional[str] = ..., score_column: _Optional[str] = ..., feature_columns: _Optional[_Iterable[str]] = ..., mitigator: _Optional[_Union[_common_pb2.PluginSpec, _Mapping]] = ..., positive_label: _Optional[str] = ..., thresholds: _Optional[_Union[FairnessThresholds, _Mapping]] = ..., max_sequence_length: _Optional[int] = ..., seed: _Optional[int] = ..., output_name: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class MitigateFairnessResponse(_message.Message):
    __slots__ = ("before", "after", "accuracy_delta", "demographic_parity_difference_delta", "equalized_odds_difference_delta", "checks", "passed", "details", "predictions", "audit_sequence")
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_DELTA_FIELD_NUMBER: _ClassVar[int]
    DEMOGRAPHIC_PARITY_DIFFERENCE_DELTA_FIELD_NUMBER: _ClassVar[int]
    EQUALIZED_ODDS_DIFFERENCE_DELTA_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    AUDIT_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    before: FairnessMetrics
    after: FairnessMetrics
    accuracy_delta: float
    demographic_parity_difference_delta: float
    equalized_odds_difference_delta: float
    checks: _containers.RepeatedCompositeFieldContainer[ThresholdCheck]
    passed: int
    details: _struct_pb2.Struct
    predictions: _common_pb2.Artifact
    audit_sequence: int
    def __init__(self, before: _Optional[_Union[FairnessMetrics, _Mapping]] = ..., after: _Optional[_Union[FairnessMetrics, _Mapping]] = ..., accuracy_delta: _Optional[float] = ..., demographic_parity_difference_delta: _Optional[float] = ..., equalized_odds_difference_delta: _Optional[float] = ..., checks: _Optional[_Iterable[_Union[ThresholdCheck, _Mapping]]] = ..., passed: _Optional[int] = ..., details: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., predictions: _Optional[_Union[_common_pb2.Artifact, _Mapping]] = ..., audit_sequence: _Optional[int] = ...) -> None: ...

class AuditEvent(_message.Message):
    __slots__ = ("id", "kind", "subject", "actor", "details", "time")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: str
    subject: str
    actor: str
    details: _struct_pb2.Struct
    time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[str] = ..., subject: _Optional[str] = ..., actor: _Optional[str] = ..., details: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AuditEntry(_message.Message):
    __slots__ = ("sequence", "event", "previous_hash", "hash")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_HASH_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    event: AuditEvent
    previous_hash: str
    hash: str
    def __init__(self, sequence: _Optional[int] = ..., event: _Optional[_Union[AuditEvent, _Mapping]] = ..., previous_hash: _Optional[str] = ..., hash: _Optional[str] = ...) -> None: ...

class AppendAuditEventsRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[AuditEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[AuditEvent, _Mapping]]] = ...) -> None: ...

class AppendAuditEventsResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[AuditEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[AuditEntry, _Mapping]]] = ...) -> None: ...

class ListAuditEntriesRequest(_message.Message):
    __slots__ = ("kind", "subject", "page_size", "page_token", "newest_first")
    KIND_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NEWEST_FIRST_FIELD_NUMBER: _ClassVar[int]
    kind: str
    subject: str
    page_size: int
    page_token: str
    newest_first: bool
    def __init__(self, kind: _Optional[str] = ..., subject: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., newest_first: _Optional[bool] = ...) -> None: ...

class ListAuditEntriesResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[AuditEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[AuditEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class VerifyAuditLogRequest(_message.Message):
    __slots__ = ("expected_sequence", "expected_hash")
    EXPECTED_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_HASH_FIELD_NUMBER: _ClassVar[int]
    expected_sequence: int
    expected_hash: str
    def __init__(self, expected_sequence: _Optional[int] = ..., expected_hash: _Optional[str] = ...) -> None: ...

class VerifyAuditLogResponse(_message.Message):
    __slots__ = ("ok", "entries", "head_sequence", "head_hash", "first_bad_sequence", "problem")
    OK_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    HEAD_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    HEAD_HASH_FIELD_NUMBER: _ClassVar[int]
    FIRST_BAD_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    entries: int
    head_sequence: int
    head_hash: str
    first_bad_sequence: int
    problem: str
    def __init__(self, ok: _Optional[bool] = ..., entries: _Optional[int] = ..., head_sequence: _Optional[int] = ..., head_hash: _Optional[str] = ..., first_bad_sequence: _Optional[int] = ..., problem: _Optional[str] = ...) -> None: ...
