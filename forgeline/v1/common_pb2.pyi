import datetime

from forgeline.v1 import options_pb2 as _options_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ArtifactKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ARTIFACT_KIND_UNSPECIFIED: _ClassVar[ArtifactKind]
    ARTIFACT_KIND_DATASET: _ClassVar[ArtifactKind]
    ARTIFACT_KIND_MODEL: _ClassVar[ArtifactKind]
    ARTIFACT_KIND_ADAPTER: _ClassVar[ArtifactKind]
    ARTIFACT_KIND_INDEX: _ClassVar[ArtifactKind]
    ARTIFACT_KIND_REPORT: _ClassVar[ArtifactKind]

class OperationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OPERATION_STATE_UNSPECIFIED: _ClassVar[OperationState]
    OPERATION_STATE_PENDING: _ClassVar[OperationState]
    OPERATION_STATE_RUNNING: _ClassVar[OperationState]
    OPERATION_STATE_SUCCEEDED: _ClassVar[OperationState]
    OPERATION_STATE_FAILED: _ClassVar[OperationState]
    OPERATION_STATE_CANCELLED: _ClassVar[OperationState]

class RuleAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RULE_ACTION_UNSPECIFIED: _ClassVar[RuleAction]
    RULE_ACTION_BLOCK: _ClassVar[RuleAction]
    RULE_ACTION_REDACT: _ClassVar[RuleAction]
    RULE_ACTION_REPLACE: _ClassVar[RuleAction]
    RULE_ACTION_FLAG: _ClassVar[RuleAction]

class SafetyDecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SAFETY_DECISION_UNSPECIFIED: _ClassVar[SafetyDecision]
    SAFETY_DECISION_ALLOW: _ClassVar[SafetyDecision]
    SAFETY_DECISION_BLOCK: _ClassVar[SafetyDecision]
    SAFETY_DECISION_MODIFY: _ClassVar[SafetyDecision]
ARTIFACT_KIND_UNSPECIFIED: ArtifactKind
ARTIFACT_KIND_DATASET: ArtifactKind
ARTIFACT_KIND_MODEL: ArtifactKind
ARTIFACT_KIND_ADAPTER: ArtifactKind
ARTIFACT_KIND_INDEX: ArtifactKind
ARTIFACT_KIND_REPORT: ArtifactKind
OPERATION_STATE_UNSPECIFIED: OperationState
OPERATION_STATE_PENDING: OperationState
OPERATION_STATE_RUNNING: OperationState
OPERATION_STATE_SUCCEEDED: OperationState
OPERATION_STATE_FAILED: OperationState
OPERATION_STATE_CANCELLED: OperationState
RULE_ACTION_UNSPECIFIED: RuleAction
RULE_ACTION_BLOCK: RuleAction
RULE_ACTION_REDACT: RuleAction
RULE_ACTION_REPLACE: RuleAction
RULE_ACTION_FLAG: RuleAction
SAFETY_DECISION_UNSPECIFIED: SafetyDecision
SAFETY_DECISION_ALLOW: SafetyDecision
SAFETY_DECISION_BLOCK: SafetyDecision
SAFETY_DECISION_MODIFY: SafetyDecision

class Artifact(_message.Message):
    __slots__ = ("id", "kind", "uri", "sha256", "size_bytes", "metadata", "lineage", "create_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    LINEAGE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: ArtifactKind
    uri: str
    sha256: str
    size_bytes: int
    metadata: _struct_pb2.Struct
    lineage: Lineage
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[_Union[ArtifactKind, str]] = ..., uri: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., lineage: _Optional[_Union[Lineage, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Lineage(_message.Message):
    __slots__ = ("parent_ids", "producer", "operation", "config", "forgeline_version", "pipeline_run", "pipeline_step", "libraries")
    class LibrariesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PARENT_IDS_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    FORGELINE_VERSION_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_RUN_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_STEP_FIELD_NUMBER: _ClassVar[int]
    LIBRARIES_FIELD_NUMBER: _ClassVar[int]
    parent_ids: _containers.RepeatedScalarFieldContainer[str]
    producer: str
    operation: str
    config: _struct_pb2.Struct
    forgeline_version: str
    pipeline_run: str
    pipeline_step: str
    libraries: _containers.ScalarMap[str, str]
    def __init__(self, parent_ids: _Optional[_Iterable[str]] = ..., producer: _Optional[str] = ..., operation: _Optional[str] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., forgeline_version: _Optional[str] = ..., pipeline_run: _Optional[str] = ..., pipeline_step: _Optional[str] = ..., libraries: _Optional[_Mapping[str, str]] = ...) -> None: ...

class PluginSpec(_message.Message):
    __slots__ = ("name", "config")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    name: str
    config: _struct_pb2.Struct
    def __init__(self, name: _Optional[str] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class OperationMetadata(_message.Message):
    __slots__ = ("state", "progress", "message", "metrics", "attempt", "method", "create_time", "update_time", "end_time", "request_id")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    state: OperationState
    progress: float
    message: str
    metrics: _containers.ScalarMap[str, float]
    attempt: int
    method: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    request_id: str
    def __init__(self, state: _Optional[_Union[OperationState, str]] = ..., progress: _Optional[float] = ..., message: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., attempt: _Optional[int] = ..., method: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class MetricPoint(_message.Message):
    __slots__ = ("name", "value", "step")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: float
    step: int
    def __init__(self, name: _Optional[str] = ..., value: _Optional[float] = ..., step: _Optional[int] = ...) -> None: ...

class DatasetInput(_message.Message):
    __slots__ = ("dataset_id", "text_column", "label_column", "target_column", "prompt_column", "response_column", "messages_column")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_COLUMN_FIELD_NUMBER: _ClassVar[int]
    LABEL_COLUMN_FIELD_NUMBER: _ClassVar[int]
    TARGET_COLUMN_FIELD_NUMBER: _ClassVar[int]
    PROMPT_COLUMN_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_COLUMN_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_COLUMN_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    text_column: str
    label_column: str
    target_column: str
    prompt_column: str
    response_column: str
    messages_column: str
    def __init__(self, dataset_id: _Optional[str] = ..., text_column: _Optional[str] = ..., label_column: _Optional[str] = ..., target_column: _Optional[str] = ..., prompt_column: _Optional[str] = ..., response_column: _Optional[str] = ..., messages_column: _Optional[str] = ...) -> None: ...

class HyperParameters(_message.Message):
    __slots__ = ("learning_rate", "batch_size_per_worker", "epochs", "max_steps", "warmup_ratio", "warmup_steps", "weight_decay", "gradient_accumulation_steps", "max_sequence_length", "seed", "group_by_length")
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_PER_WORKER_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    WARMUP_RATIO_FIELD_NUMBER: _ClassVar[int]
    WARMUP_STEPS_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_DECAY_FIELD_NUMBER: _ClassVar[int]
    GRADIENT_ACCUMULATION_STEPS_FIELD_NUMBER: _ClassVar[int]
    MAX_SEQUENCE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_LENGTH_FIELD_NUMBER: _ClassVar[int]
    learning_rate: float
    batch_size_per_worker: int
    epochs: int
    max_steps: int
    warmup_ratio: float
    warmup_steps: int
    weight_decay: float
    gradient_accumulation_steps: int
    max_sequence_length: int
    seed: int
    group_by_length: bool
    def __init__(self, learning_rate: _Optional[float] = ..., batch_size_per_worker: _Optional[int] = ..., epochs: _Optional[int] = ..., max_steps: _Optional[int] = ..., warmup_ratio: _Optional[float] = ..., warmup_steps: _Optional[int] = ..., weight_decay: _Optional[float] = ..., gradient_accumulation_steps: _Optional[int] = ..., max_sequence_length: _Optional[int] = ..., seed: _Optional[int] = ..., group_by_length: _Optional[bool] = ...) -> None: ...

class Scaling(_message.Message):
    __slots__ = ("num_workers", "use_gpu", "cpus_per_worker", "bf16")
    NUM_WORKERS_FIELD_NUMBER: _ClassVar[int]
    USE_GPU_FIELD_NUMBER: _ClassVar[int]
    CPUS_PER_WORKER_FIELD_NUMBER: _ClassVar[int]
    BF16_FIELD_NUMBER: _ClassVar[int]
    num_workers: int
    use_gpu: bool
    cpus_per_worker: float
    bf16: bool
    def __init__(self, num_workers: _Optional[int] = ..., use_gpu: _Optional[bool] = ..., cpus_per_worker: _Optional[float] = ..., bf16: _Optional[bool] = ...) -> None: ...

class InputFilterRule(_message.Message):
    __slots__ = ("name", "filter", "action", "priority", "replacement", "message")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    REPLACEMENT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    name: str
    filter: PluginSpec
    action: RuleAction
    priority: int
    replacement: str
    message: str
    def __init__(self, name: _Optional[str] = ..., filter: _Optional[_Union[PluginSpec, _Mapping]] = ..., action: _Optional[_Union[RuleAction, str]] = ..., priority: _Optional[int] = ..., replacement: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class OutputRule(_message.Message):
    __slots__ = ("name", "match", "action", "priority", "replacement", "message")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    REPLACEMENT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    name: str
    match: PluginSpec
    action: RuleAction
    priority: int
    replacement: str
    message: str
    def __init__(self, name: _Optional[str] = ..., match: _Optional[_Union[PluginSpec, _Mapping]] = ..., action: _Optional[_Union[RuleAction, str]] = ..., priority: _Optional[int] = ..., replacement: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class SafetyPolicy(_message.Message):
    __slots__ = ("input_filters", "output_rules")
    INPUT_FILTERS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_RULES_FIELD_NUMBER: _ClassVar[int]
    input_filters: _containers.RepeatedCompositeFieldContainer[InputFilterRule]
    output_rules: _containers.RepeatedCompositeFieldContainer[OutputRule]
    def __init__(self, input_filters: _Optional[_Iterable[_Union[InputFilterRule, _Mapping]]] = ..., output_rules: _Optional[_Iterable[_Union[OutputRule, _Mapping]]] = ...) -> None: ...

class PolicySource(_message.Message):
    __slots__ = ("policy", "yaml")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    YAML_FIELD_NUMBER: _ClassVar[int]
    policy: SafetyPolicy
    yaml: str
    def __init__(self, policy: _Optional[_Union[SafetyPolicy, _Mapping]] = ..., yaml: _Optional[str] = ...) -> None: ...

class TextMatch(_message.Message):
    __slots__ = ("start", "end", "label", "score")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    label: str
    score: float
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ..., label: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class RuleFiring(_message.Message):
    __slots__ = ("rule", "plugin", "action", "matches")
    RULE_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    rule: str
    plugin: str
    action: RuleAction
    matches: _containers.RepeatedCompositeFieldContainer[TextMatch]
    def __init__(self, rule: _Optional[str] = ..., plugin: _Optional[str] = ..., action: _Optional[_Union[RuleAction, str]] = ..., matches: _Optional[_Iterable[_Union[TextMatch, _Mapping]]] = ...) -> None: ...

class SafetyVerdict(_message.Message):
    __slots__ = ("decision", "text", "blocked_by", "message", "firings", "flagged")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_BY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FIRINGS_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_FIELD_NUMBER: _ClassVar[int]
    decision: SafetyDecision
    text: str
    blocked_by: str
    message: str
    firings: _containers.RepeatedCompositeFieldContainer[RuleFiring]
    flagged: bool
    def __init__(self, decision: _Optional[_Union[SafetyDecision, str]] = ..., text: _Optional[str] = ..., blocked_by: _Optional[str] = ..., message: _Optional[str] = ..., firings: _Optional[_Iterable[_Union[RuleFiring, _Mapping]]] = ..., flagged: _Optional[bool] = ...) -> None: ...
