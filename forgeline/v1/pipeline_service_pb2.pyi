import datetime

from forgeline.v1 import common_pb2 as _common_pb2
from google.longrunning import operations_pb2 as _operations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StepState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STEP_STATE_UNSPECIFIED: _ClassVar[StepState]
    STEP_STATE_PENDING: _ClassVar[StepState]
    STEP_STATE_RUNNING: _ClassVar[StepState]
    STEP_STATE_SUCCEEDED: _ClassVar[StepState]
    STEP_STATE_FAILED: _ClassVar[StepState]
    STEP_STATE_CANCELLED: _ClassVar[StepState]
    STEP_STATE_SKIPPED: _ClassVar[StepState]
STEP_STATE_UNSPECIFIED: StepState
STEP_STATE_PENDING: StepState
STEP_STATE_RUNNING: StepState
STEP_STATE_SUCCEEDED: StepState
STEP_STATE_FAILED: StepState
STEP_STATE_CANCELLED: StepState
STEP_STATE_SKIPPED: StepState

class SubmitPipelineRequest(_message.Message):
    __slots__ = ("pipeline_yaml", "overrides", "no_cache", "request_id")
    PIPELINE_YAML_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    NO_CACHE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    pipeline_yaml: str
    overrides: _containers.RepeatedScalarFieldContainer[str]
    no_cache: bool
    request_id: str
    def __init__(self, pipeline_yaml: _Optional[str] = ..., overrides: _Optional[_Iterable[str]] = ..., no_cache: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class SubmitPipelineResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: PipelineRun
    def __init__(self, run: _Optional[_Union[PipelineRun, _Mapping]] = ...) -> None: ...

class ValidatePipelineRequest(_message.Message):
    __slots__ = ("pipeline_yaml", "overrides")
    PIPELINE_YAML_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    pipeline_yaml: str
    overrides: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, pipeline_yaml: _Optional[str] = ..., overrides: _Optional[_Iterable[str]] = ...) -> None: ...

class ValidatePipelineResponse(_message.Message):
    __slots__ = ("pipeline", "steps")
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    pipeline: str
    steps: _containers.RepeatedCompositeFieldContainer[PlannedStep]
    def __init__(self, pipeline: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[PlannedStep, _Mapping]]] = ...) -> None: ...

class PlannedStep(_message.Message):
    __slots__ = ("name", "call", "method", "depends_on", "gates")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CALL_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
    GATES_FIELD_NUMBER: _ClassVar[int]
    name: str
    call: str
    method: str
    depends_on: _containers.RepeatedScalarFieldContainer[str]
    gates: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., call: _Optional[str] = ..., method: _Optional[str] = ..., depends_on: _Optional[_Iterable[str]] = ..., gates: _Optional[_Iterable[str]] = ...) -> None: ...

class PipelineRun(_message.Message):
    __slots__ = ("name", "pipeline", "state", "steps", "message", "report", "pipeline_yaml", "overrides", "no_cache", "attempt", "create_time", "end_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_YAML_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    NO_CACHE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    pipeline: str
    state: _common_pb2.OperationState
    steps: _containers.RepeatedCompositeFieldContainer[StepRun]
    message: str
    report: _common_pb2.Artifact
    pipeline_yaml: str
    overrides: _containers.RepeatedScalarFieldContainer[str]
    no_cache: bool
    attempt: int
    create_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., pipeline: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.OperationState, str]] = ..., steps: _Optional[_Iterable[_Union[StepRun, _Mapping]]] = ..., message: _Optional[str] = ..., report: _Optional[_Union[_common_pb2.Artifact, _Mapping]] = ..., pipeline_yaml: _Optional[str] = ..., overrides: _Optional[_Iterable[str]] = ..., no_cache: _Optional[bool] = ..., attempt: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StepRun(_message.Message):
    __slots__ = ("name", "call", "method", "state", "operation", "address", "cached", "response", "metrics", "gates", "message", "depends_on", "start_time", "end_time", "request")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    CALL_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    GATES_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    name: str
    call: str
    method: str
    state: StepState
    operation: str
    address: str
    cached: bool
    response: _struct_pb2.Struct
    metrics: _containers.ScalarMap[str, float]
    gates: _containers.RepeatedCompositeFieldContainer[GateResult]
    message: str
    depends_on: _containers.RepeatedScalarFieldContainer[str]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    request: _struct_pb2.Struct
    def __init__(self, name: _Optional[str] = ..., call: _Optional[str] = ..., method: _Optional[str] = ..., state: _Optional[_Union[StepState, str]] = ..., operation: _Optional[str] = ..., address: _Optional[str] = ..., cached: _Optional[bool] = ..., response: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., gates: _Optional[_Iterable[_Union[GateResult, _Mapping]]] = ..., message: _Optional[str] = ..., depends_on: _Optional[_Iterable[str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., request: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class GateResult(_message.Message):
    __slots__ = ("expression", "metric", "value", "threshold", "passed", "message")
    EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    expression: str
    metric: str
    value: float
    threshold: float
    passed: bool
    message: str
    def __init__(self, expression: _Optional[str] = ..., metric: _Optional[str] = ..., value: _Optional[float] = ..., threshold: _Optional[float] = ..., passed: _Optional[bool] = ..., message: _Optional[str] = ...) -> None: ...

class GetPipelineRunRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetPipelineRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: PipelineRun
    def __init__(self, run: _Optional[_Union[PipelineRun, _Mapping]] = ...) -> None: ...

class ListPipelineRunsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "pipeline")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    pipeline: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., pipeline: _Optional[str] = ...) -> None: ...

class ListPipelineRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[PipelineRun]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[PipelineRun, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchPipelineRunsRequest(_message.Message):
    __slots__ = ("page_size", "pipeline")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    pipeline: str
    def __init__(self, page_size: _Optional[int] = ..., pipeline: _Optional[str] = ...) -> None: ...

class CancelPipelineRunRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CancelPipelineRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: PipelineRun
    def __init__(self, run: _Optional[_Union[PipelineRun, _Mapping]] = ...) -> None: ...

class RetryPipelineRunRequest(_message.Message):
    __slots__ = ("name", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    request_id: str
    def __init__(self, name: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RetryPipelineRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: PipelineRun
    def __init__(self, run: _Optional[_Union[PipelineRun, _Mapping]] = ...) -> None: ...
