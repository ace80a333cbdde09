import datetime

from forgeline.v1 import common_pb2 as _common_pb2
from forgeline.v1 import training_service_pb2 as _training_service_pb2
from google.longrunning import operations_pb2 as _operations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeploymentState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEPLOYMENT_STATE_UNSPECIFIED: _ClassVar[DeploymentState]
    DEPLOYMENT_STATE_LOADING: _ClassVar[DeploymentState]
    DEPLOYMENT_STATE_SERVING: _ClassVar[DeploymentState]
    DEPLOYMENT_STATE_FAILED: _ClassVar[DeploymentState]
DEPLOYMENT_STATE_UNSPECIFIED: DeploymentState
DEPLOYMENT_STATE_LOADING: DeploymentState
DEPLOYMENT_STATE_SERVING: DeploymentState
DEPLOYMENT_STATE_FAILED: DeploymentState

class BatchingOptions(_message.Message):
    __slots__ = ("max_batch_size", "max_wait_ms")
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    max_batch_size: int
    max_wait_ms: float
    def __init__(self, max_batch_size: _Optional[int] = ..., max_wait_ms: _Optional[float] = ...) -> None: ...

class Deployment(_message.Message):
    __slots__ = ("name", "model_id", "adapters", "default_adapter", "format", "labels", "policy", "policy_sha256", "batching", "state", "create_time", "requests", "blocked", "batches", "task", "context_window", "max_new_tokens", "active_generations", "batched_rows")
    class AdaptersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    ADAPTERS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_ADAPTER_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    POLICY_SHA256_FIELD_NUMBER: _ClassVar[int]
    BATCHING_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_WINDOW_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_GENERATIONS_FIELD_NUMBER: _ClassVar[int]
    BATCHED_ROWS_FIELD_NUMBER: _ClassVar[int]
    name: str
    model_id: str
    adapters: _containers.ScalarMap[str, str]
    default_adapter: str
    format: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    policy: _common_pb2.SafetyPolicy
    policy_sha256: str
    batching: BatchingOptions
    state: DeploymentState
    create_time: _timestamp_pb2.Timestamp
    requests: int
    blocked: int
    batches: int
    task: str
    context_window: int
    max_new_tokens: int
    active_generations: int
    batched_rows: int
    def __init__(self, name: _Optional[str] = ..., model_id: _Optional[str] = ..., adapters: _Optional[_Mapping[str, str]] = ..., default_adapter: _Optional[str] = ..., format: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., policy: _Optional[_Union[_common_pb2.SafetyPolicy, _Mapping]] = ..., policy_sha256: _Optional[str] = ..., batching: _Optional[_Union[BatchingOptions, _Mapping]] = ..., state: _Optional[_Union[DeploymentState, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., requests: _Optional[int] = ..., blocked: _Optional[int] = ..., batches: _Optional[int] = ..., task: _Optional[str] = ..., context_window: _Optional[int] = ..., max_new_tokens: _Optional[int] = ..., active_generations: _Optional[int] = ..., batched_rows: _Optional[int] = ...) -> None: ...

class DeployModelRequest(_message.Message):
    __slots__ = ("name", "model_id", "adapters", "default_adapter", "policy", "batching", "max_sequence_length", "request_id", "max_new_tokens")
    class AdaptersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    ADAPTERS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_ADAPTER_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    BATCHING_FIELD_NUMBER: _ClassVar[int]
    MAX_SEQUENCE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    name: str
    model_id: str
    adapters: _containers.ScalarMap[str, str]
    default_adapter: str
    policy: _common_pb2.PolicySource
    batching: BatchingOptions
    max_sequence_length: int
    request_id: str
    max_new_tokens: int
    def __init__(self, name: _Optional[str] = ..., model_id: _Optional[str] = ..., adapters: _Optional[_Mapping[str, str]] = ..., default_adapter: _Optional[str] = ..., policy: _Optional[_Union[_common_pb2.PolicySource, _Mapping]] = ..., batching: _Optional[_Union[BatchingOptions, _Mapping]] = ..., max_sequence_length: _Optional[int] = ..., request_id: _Optional[str] = ..., max_new_tokens: _Optional[int] = ...) -> None: ...

class DeployModelResponse(_message.Message):
    __slots__ = ("deployment", "load_seconds")
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    LOAD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    deployment: Deployment
    load_seconds: float
    def __init__(self, deployment: _Optional[_Union[Deployment, _Mapping]] = ..., load_seconds: _Optional[float] = ...) -> None: ...

class UndeployModelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class UndeployModelResponse(_message.Message):
    __slots__ = ("deployment",)
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    deployment: Deployment
    def __init__(self, deployment: _Optional[_Union[Deployment, _Mapping]] = ...) -> None: ...

class ListDeploymentsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDeploymentsResponse(_message.Message):
    __slots__ = ("deployments", "next_page_token")
    DEPLOYMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    deployments: _containers.RepeatedCompositeFieldContainer[Deployment]
    next_page_token: str
    def __init__(self, deployments: _Optional[_Iterable[_Union[Deployment, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ServedPrediction(_message.Message):
    __slots__ = ("label", "score", "probabilities", "model_input", "output", "input_verdict", "output_verdict", "adapter")
    class ProbabilitiesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    MODEL_INPUT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    INPUT_VERDICT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_VERDICT_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    label: str
    score: float
    probabilities: _containers.ScalarMap[str, float]
    model_input: str
    output: str
    input_verdict: _common_pb2.SafetyVerdict
    output_verdict: _common_pb2.SafetyVerdict
    adapter: str
    def __init__(self, label: _Optional[str] = ..., score: _Optional[float] = ..., probabilities: _Optional[_Mapping[str, float]] = ..., model_input: _Optional[str] = ..., output: _Optional[str] = ..., input_verdict: _Optional[_Union[_common_pb2.SafetyVerdict, _Mapping]] = ..., output_verdict: _Optional[_Union[_common_pb2.SafetyVerdict, _Mapping]] = ..., adapter: _Optional[str] = ...) -> None: ...

class ServingServicePredictRequest(_message.Message):
    __slots__ = ("deployment", "text", "adapter")
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    deployment: str
    text: str
    adapter: str
    def __init__(self, deployment: _Optional[str] = ..., text: _Optional[str] = ..., adapter: _Optional[str] = ...) -> None: ...

class ServingServicePredictResponse(_message.Message):
    __slots__ = ("prediction",)
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    prediction: ServedPrediction
    def __init__(self, prediction: _Optional[_Union[ServedPrediction, _Mapping]] = ...) -> None: ...

class PredictBatchRequest(_message.Message):
    __slots__ = ("deployment", "texts", "adapter")
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    deployment: str
    texts: _containers.RepeatedScalarFieldContainer[str]
    adapter: str
    def __init__(self, deployment: _Optional[str] = ..., texts: _Optional[_Iterable[str]] = ..., adapter: _Optional[str] = ...) -> None: ...

class PredictResult(_message.Message):
    __slots__ = ("status", "prediction")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    status: _status_pb2.Status
    prediction: ServedPrediction
    def __init__(self, status: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., prediction: _Optional[_Union[ServedPrediction, _Mapping]] = ...) -> None: ...

class PredictBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[PredictResult]
    def __init__(self, results: _Optional[_Iterable[_Union[PredictResult, _Mapping]]] = ...) -> None: ...

class PredictStreamRequest(_message.Message):
    __slots__ = ("id", "deployment", "text", "adapter")
    ID_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    id: str
    deployment: str
    text: str
    adapter: str
    def __init__(self, id: _Optional[str] = ..., deployment: _Optional[str] = ..., text: _Optional[str] = ..., adapter: _Optional[str] = ...) -> None: ...

class PredictStreamResponse(_message.Message):
    __slots__ = ("id", "result")
    ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    id: str
    result: PredictResult
    def __init__(self, id: _Optional[str] = ..., result: _Optional[_Union[PredictResult, _Mapping]] = ...) -> None: ...

class ChatTurn(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class GenerationUsage(_message.Message):
    __slots__ = ("prompt_tokens", "completion_tokens")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    completion_tokens: int
    def __init__(self, prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("deployment", "prompt", "messages", "decoding", "adapter")
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    DECODING_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    deployment: str
    prompt: str
    messages: _containers.RepeatedCompositeFieldContainer[ChatTurn]
    decoding: _training_service_pb2.DecodingOptions
    adapter: str
    def __init__(self, deployment: _Optional[str] = ..., prompt: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[ChatTurn, _Mapping]]] = ..., decoding: _Optional[_Union[_training_service_pb2.DecodingOptions, _Mapping]] = ..., adapter: _Optional[str] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("text", "finish_reason", "usage", "input_verdicts", "output_verdict", "adapter")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    INPUT_VERDICTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_VERDICT_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    text: str
    finish_reason: str
    usage: GenerationUsage
    input_verdicts: _containers.RepeatedCompositeFieldContainer[_common_pb2.SafetyVerdict]
    output_verdict: _common_pb2.SafetyVerdict
    adapter: str
    def __init__(self, text: _Optional[str] = ..., finish_reason: _Optional[str] = ..., usage: _Optional[_Union[GenerationUsage, _Mapping]] = ..., input_verdicts: _Optional[_Iterable[_Union[_common_pb2.SafetyVerdict, _Mapping]]] = ..., output_verdict: _Optional[_Union[_common_pb2.SafetyVerdict, _Mapping]] = ..., adapter: _Optional[str] = ...) -> None: ...

class GenerateStreamRequest(_message.Message):
    __slots__ = ("deployment", "prompt", "messages", "decoding", "adapter")
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    DECODING_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    deployment: str
    prompt: str
    messages: _containers.RepeatedCompositeFieldContainer[ChatTurn]
    decoding: _training_service_pb2.DecodingOptions
    adapter: str
    def __init__(self, deployment: _Optional[str] = ..., prompt: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[ChatTurn, _Mapping]]] = ..., decoding: _Optional[_Union[_training_service_pb2.DecodingOptions, _Mapping]] = ..., adapter: _Optional[str] = ...) -> None: ...

class GenerationBlock(_message.Message):
    __slots__ = ("rule", "message", "audit_event", "withdrawn")
    RULE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    AUDIT_EVENT_FIELD_NUMBER: _ClassVar[int]
    WITHDRAWN_FIELD_NUMBER: _ClassVar[int]
    rule: str
    message: str
    audit_event: str
    withdrawn: bool
    def __init__(self, rule: _Optional[str] = ..., message: _Optional[str] = ..., audit_event: _Optional[str] = ..., withdrawn: _Optional[bool] = ...) -> None: ...

class GenerateStreamResponse(_message.Message):
    __slots__ = ("text", "finish_reason", "usage", "output", "block")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    text: str
    finish_reason: str
    usage: GenerationUsage
    output: str
    block: GenerationBlock
    def __init__(self, text: _Optional[str] = ..., finish_reason: _Optional[str] = ..., usage: _Optional[_Union[GenerationUsage, _Mapping]] = ..., output: _Optional[str] = ..., block: _Optional[_Union[GenerationBlock, _Mapping]] = ...) -> None: ...
