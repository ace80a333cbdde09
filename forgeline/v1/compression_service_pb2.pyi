from forgeline.v1 import common_pb2 as _common_pb2
from forgeline.v1 import options_pb2 as _options_pb2
from google.longrunning import operations_pb2 as _operations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StepOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STEP_OUTCOME_UNSPECIFIED: _ClassVar[StepOutcome]
    STEP_OUTCOME_KEPT: _ClassVar[StepOutcome]
    STEP_OUTCOME_ROLLED_BACK: _ClassVar[StepOutcome]
    STEP_OUTCOME_SKIPPED: _ClassVar[StepOutcome]
STEP_OUTCOME_UNSPECIFIED: StepOutcome
STEP_OUTCOME_KEPT: StepOutcome
STEP_OUTCOME_ROLLED_BACK: StepOutcome
STEP_OUTCOME_SKIPPED: StepOutcome

class CompressModelRequest(_message.Message):
    __slots__ = ("model_id", "eval", "train", "compressors", "accuracy_budget", "budget_metric", "latency", "max_sequence_length", "output_name", "request_id")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    EVAL_FIELD_NUMBER: _ClassVar[int]
    TRAIN_FIELD_NUMBER: _ClassVar[int]
    COMPRESSORS_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_BUDGET_FIELD_NUMBER: _ClassVar[int]
    BUDGET_METRIC_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    MAX_SEQUENCE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    eval: _common_pb2.DatasetInput
    train: _common_pb2.DatasetInput
    compressors: _containers.RepeatedCompositeFieldContainer[_common_pb2.PluginSpec]
    accuracy_budget: float
    budget_metric: str
    latency: LatencyOptions
    max_sequence_length: int
    output_name: str
    request_id: str
    def __init__(self, model_id: _Optional[str] = ..., eval: _Optional[_Union[_common_pb2.DatasetInput, _Mapping]] = ..., train: _Optional[_Union[_common_pb2.DatasetInput, _Mapping]] = ..., compressors: _Optional[_Iterable[_Union[_common_pb2.PluginSpec, _Mapping]]] = ..., accuracy_budget: _Optional[float] = ..., budget_metric: _Optional[str] = ..., latency: _Optional[_Union[LatencyOptions, _Mapping]] = ..., max_sequence_length: _Optional[int] = ..., output_name: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class LatencyOptions(_message.Message):
    __slots__ = ("single_runs", "batch_size", "batch_runs", "threads")
    SINGLE_RUNS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    BATCH_RUNS_FIELD_NUMBER: _ClassVar[int]
    THREADS_FIELD_NUMBER: _ClassVar[int]
    single_runs: int
    batch_size: int
    batch_runs: int
    threads: int
    def __init__(self, single_runs: _Optional[int] = ..., batch_size: _Optional[int] = ..., batch_runs: _Optional[int] = ..., threads: _Optional[int] = ...) -> None: ...

class Measurement(_message.Message):
    __slots__ = ("format", "weights_bytes", "folder_bytes", "linear_weight_bytes", "parameters", "latency_p50_ms", "latency_p95_ms", "throughput", "batch_size", "batch_latency_ms", "accuracy", "f1_macro", "loss", "num_examples", "perplexity")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_BYTES_FIELD_NUMBER: _ClassVar[int]
    FOLDER_BYTES_FIELD_NUMBER: _ClassVar[int]
    LINEAR_WEIGHT_BYTES_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_MS_FIELD_NUMBER: _ClassVar[int]
    THROUGHPUT_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    BATCH_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    F1_MACRO_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    NUM_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    PERPLEXITY_FIELD_NUMBER: _ClassVar[int]
    format: str
    weights_bytes: int
    folder_bytes: int
    linear_weight_bytes: int
    parameters: int
    latency_p50_ms: float
    latency_p95_ms: float
    throughput: float
    batch_size: int
    batch_latency_ms: float
    accuracy: float
    f1_macro: float
    loss: float
    num_examples: int
    perplexity: float
    def __init__(self, format: _Optional[str] = ..., weights_bytes: _Optional[int] = ..., folder_bytes: _Optional[int] = ..., linear_weight_bytes: _Optional[int] = ..., parameters: _Optional[int] = ..., latency_p50_ms: _Optional[float] = ..., latency_p95_ms: _Optional[float] = ..., throughput: _Optional[float] = ..., batch_size: _Optional[int] = ..., batch_latency_ms: _Optional[float] = ..., accuracy: _Optional[float] = ..., f1_macro: _Optional[float] = ..., loss: _Optional[float] = ..., num_examples: _Optional[int] = ..., perplexity: _Optional[float] = ...) -> None: ...

class CompressionStep(_message.Message):
    __slots__ = ("index", "compressor", "config", "outcome", "measurement", "size_ratio", "linear_size_ratio", "latency_ratio", "batch_latency_ratio", "accuracy_delta", "perplexity_ratio", "model", "details", "seconds", "reason")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    COMPRESSOR_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENT_FIELD_NUMBER: _ClassVar[int]
    SIZE_RATIO_FIELD_NUMBER: _ClassVar[int]
    LINEAR_SIZE_RATIO_FIELD_NUMBER: _ClassVar[int]
    LATENCY_RATIO_FIELD_NUMBER: _ClassVar[int]
    BATCH_LATENCY_RATIO_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_DELTA_FIELD_NUMBER: _ClassVar[int]
    PERPLEXITY_RATIO_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    index: int
    compressor: str
    config: _struct_pb2.Struct
    outcome: StepOutcome
    measurement: Measurement
    size_ratio: float
    linear_size_ratio: float
    latency_ratio: float
    batch_latency_ratio: float
    accuracy_delta: float
    perplexity_ratio: float
    model: _common_pb2.Artifact
    details: _struct_pb2.Struct
    seconds: float
    reason: str
    def __init__(self, index: _Optional[int] = ..., compressor: _Optional[str] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., outcome: _Optional[_Union[StepOutcome, str]] = ..., measurement: _Optional[_Union[Measurement, _Mapping]] = ..., size_ratio: _Optional[float] = ..., linear_size_ratio: _Optional[float] = ..., latency_ratio: _Optional[float] = ..., batch_latency_ratio: _Optional[float] = ..., accuracy_delta: _Optional[float] = ..., perplexity_ratio: _Optional[float] = ..., model: _Optional[_Union[_common_pb2.Artifact, _Mapping]] = ..., details: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., seconds: _Optional[float] = ..., reason: _Optional[str] = ...) -> None: ...

class CompressModelResponse(_message.Message):
    __slots__ = ("model", "original", "steps", "budget_exceeded", "size_ratio", "latency_ratio", "batch_latency_ratio", "accuracy_delta", "accuracy_budget", "budget_metric", "seconds", "perplexity_ratio")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    BUDGET_EXCEEDED_FIELD_NUMBER: _ClassVar[int]
    SIZE_RATIO_FIELD_NUMBER: _ClassVar[int]
    LATENCY_RATIO_FIELD_NUMBER: _ClassVar[int]
    BATCH_LATENCY_RATIO_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_DELTA_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_BUDGET_FIELD_NUMBER: _ClassVar[int]
    BUDGET_METRIC_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    PERPLEXITY_RATIO_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.Artifact
    original: Measurement
    steps: _containers.RepeatedCompositeFieldContainer[CompressionStep]
    budget_exceeded: bool
    size_ratio: float
    latency_ratio: float
    batch_latency_ratio: float
    accuracy_delta: float
    accuracy_budget: float
    budget_metric: str
    seconds: float
    perplexity_ratio: float
    def __init__(self, model: _Optional[_Union[_common_pb2.Artifact, _Mapping]] = ..., original: _Optional[_Union[Measurement, _Mapping]] = ..., steps: _Optional[_Iterable[_Union[CompressionStep, _Mapping]]] = ..., budget_exceeded: _Optional[bool] = ..., size_ratio: _Optional[float] = ..., latency_ratio: _Optional[float] = ..., batch_latency_ratio: _Optional[float] = ..., accuracy_delta: _Optional[float] = ..., accuracy_budget: _Optional[float] = ..., budget_metric: _Optional[str] = ..., seconds: _Optional[float] = ..., perplexity_ratio: _Optional[float] = ...) -> None: ...
