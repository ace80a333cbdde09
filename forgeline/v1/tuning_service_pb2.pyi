from forgeline.v1 import common_pb2 as _common_pb2
from forgeline.v1 import options_pb2 as _options_pb2
from forgeline.v1 import training_service_pb2 as _training_service_pb2
from google.longrunning import operations_pb2 as _operations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ObjectiveDirection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OBJECTIVE_DIRECTION_UNSPECIFIED: _ClassVar[ObjectiveDirection]
    OBJECTIVE_DIRECTION_MAXIMIZE: _ClassVar[ObjectiveDirection]
    OBJECTIVE_DIRECTION_MINIMIZE: _ClassVar[ObjectiveDirection]

class TrialState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRIAL_STATE_UNSPECIFIED: _ClassVar[TrialState]
    TRIAL_STATE_PENDING: _ClassVar[TrialState]
    TRIAL_STATE_RUNNING: _ClassVar[TrialState]
    TRIAL_STATE_COMPLETED: _ClassVar[TrialState]
    TRIAL_STATE_STOPPED_EARLY: _ClassVar[TrialState]
    TRIAL_STATE_FAILED: _ClassVar[TrialState]
    TRIAL_STATE_CANCELLED: _ClassVar[TrialState]
OBJECTIVE_DIRECTION_UNSPECIFIED: ObjectiveDirection
OBJECTIVE_DIRECTION_MAXIMIZE: ObjectiveDirection
OBJECTIVE_DIRECTION_MINIMIZE: ObjectiveDirection
TRIAL_STATE_UNSPECIFIED: TrialState
TRIAL_STATE_PENDING: TrialState
TRIAL_STATE_RUNNING: TrialState
TRIAL_STATE_COMPLETED: TrialState
TRIAL_STATE_STOPPED_EARLY: TrialState
TRIAL_STATE_FAILED: TrialState
TRIAL_STATE_CANCELLED: TrialState

class TuneModelRequest(_message.Message):
    __slots__ = ("training", "search_space", "objectives", "num_trials", "max_concurrent_trials", "resources_per_trial", "searcher", "scheduler", "seed", "output_name", "request_id")
    TRAINING_FIELD_NUMBER: _ClassVar[int]
    SEARCH_SPACE_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVES_FIELD_NUMBER: _ClassVar[int]
    NUM_TRIALS_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_TRIALS_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_PER_TRIAL_FIELD_NUMBER: _ClassVar[int]
    SEARCHER_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    training: _training_service_pb2.TrainModelRequest
    search_space: _containers.RepeatedCompositeFieldContainer[SearchParameter]
    objectives: _containers.RepeatedCompositeFieldContainer[Objective]
    num_trials: int
    max_concurrent_trials: int
    resources_per_trial: TrialResources
    searcher: _common_pb2.PluginSpec
    scheduler: _common_pb2.PluginSpec
    seed: int
    output_name: str
    request_id: str
    def __init__(self, training: _Optional[_Union[_training_service_pb2.TrainModelRequest, _Mapping]] = ..., search_space: _Optional[_Iterable[_Union[SearchParameter, _Mapping]]] = ..., objectives: _Optional[_Iterable[_Union[Objective, _Mapping]]] = ..., num_trials: _Optional[int] = ..., max_concurrent_trials: _Optional[int] = ..., resources_per_trial: _Optional[_Union[TrialResources, _Mapping]] = ..., searcher: _Optional[_Union[_common_pb2.PluginSpec, _Mapping]] = ..., scheduler: _Optional[_Union[_common_pb2.PluginSpec, _Mapping]] = ..., seed: _Optional[int] = ..., output_name: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class SearchParameter(_message.Message):
    __slots__ = ("name", "uniform", "loguniform", "integer", "choice")
    NAME_FIELD_NUMBER: _ClassVar[int]
    UNIFORM_FIELD_NUMBER: _ClassVar[int]
    LOGUNIFORM_FIELD_NUMBER: _ClassVar[int]
    INTEGER_FIELD_NUMBER: _ClassVar[int]
    CHOICE_FIELD_NUMBER: _ClassVar[int]
    name: str
    uniform: FloatRange
    loguniform: FloatRange
    integer: IntRange
    choice: ChoiceValues
    def __init__(self, name: _Optional[str] = ..., uniform: _Optional[_Union[FloatRange, _Mapping]] = ..., loguniform: _Optional[_Union[FloatRange, _Mapping]] = ..., integer: _Optional[_Union[IntRange, _Mapping]] = ..., choice: _Optional[_Union[ChoiceValues, _Mapping]] = ...) -> None: ...

class FloatRange(_message.Message):
    __slots__ = ("low", "high")
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    low: float
    high: float
    def __init__(self, low: _Optional[float] = ..., high: _Optional[float] = ...) -> None: ...

class IntRange(_message.Message):
    __slots__ = ("low", "high", "log")
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    low: int
    high: int
    log: bool
    def __init__(self, low: _Optional[int] = ..., high: _Optional[int] = ..., log: _Optional[bool] = ...) -> None: ...

class ChoiceValues(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Value]
    def __init__(self, values: _Optional[_Iterable[_Union[_struct_pb2.Value, _Mapping]]] = ...) -> None: ...

class Objective(_message.Message):
    __slots__ = ("metric", "direction")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    metric: str
    direction: ObjectiveDirection
    def __init__(self, metric: _Optional[str] = ..., direction: _Optional[_Union[ObjectiveDirection, str]] = ...) -> None: ...

class TrialResources(_message.Message):
    __slots__ = ("cpus", "gpus")
    CPUS_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    cpus: float
    gpus: float
    def __init__(self, cpus: _Optional[float] = ..., gpus: _Optional[float] = ...) -> None: ...

class Trial(_message.Message):
    __slots__ = ("id", "number", "state", "parameters", "metrics", "objective_history", "iterations", "seconds", "error", "pareto_optimal")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVE_HISTORY_FIELD_NUMBER: _ClassVar[int]
    ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PARETO_OPTIMAL_FIELD_NUMBER: _ClassVar[int]
    id: str
    number: int
    state: TrialState
    parameters: _struct_pb2.Struct
    metrics: _containers.ScalarMap[str, float]
    objective_history: _containers.RepeatedScalarFieldContainer[float]
    iterations: int
    seconds: float
    error: str
    pareto_optimal: bool
    def __init__(self, id: _Optional[str] = ..., number: _Optional[int] = ..., state: _Optional[_Union[TrialState, str]] = ..., parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., objective_history: _Optional[_Iterable[float]] = ..., iterations: _Optional[int] = ..., seconds: _Optional[float] = ..., error: _Optional[str] = ..., pareto_optimal: _Optional[bool] = ...) -> None: ...

class TuneModelResponse(_message.Message):
    __slots__ = ("model", "best_trial", "best_parameters", "best_metrics", "trials", "pareto_front", "parameter_importances", "completed_trials", "stopped_early_trials", "failed_trials", "seconds", "objectives")
    class BestMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class ParameterImportancesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    BEST_TRIAL_FIELD_NUMBER: _ClassVar[int]
    BEST_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    BEST_METRICS_FIELD_NUMBER: _ClassVar[int]
    TRIALS_FIELD_NUMBER: _ClassVar[int]
    PARETO_FRONT_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_IMPORTANCES_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_TRIALS_FIELD_NUMBER: _ClassVar[int]
    STOPPED_EARLY_TRIALS_FIELD_NUMBER: _ClassVar[int]
    FAILED_TRIALS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVES_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.Artifact
    best_trial: Trial
    best_parameters: _struct_pb2.Struct
    best_metrics: _containers.ScalarMap[str, float]
    trials: _containers.RepeatedCompositeFieldContainer[Trial]
    pareto_front: _containers.RepeatedScalarFieldContainer[str]
    parameter_importances: _containers.ScalarMap[str, float]
    completed_trials: int
    stopped_early_trials: int
    failed_trials: int
    seconds: float
    objectives: _containers.RepeatedCompositeFieldContainer[Objective]
    def __init__(self, model: _Optional[_Union[_common_pb2.Artifact, _Mapping]] = ..., best_trial: _Optional[_Union[Trial, _Mapping]] = ..., best_parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., best_metrics: _Optional[_Mapping[str, float]] = ..., trials: _Optional[_Iterable[_Union[Trial, _Mapping]]] = ..., pareto_front: _Optional[_Iterable[str]] = ..., parameter_importances: _Optional[_Mapping[str, float]] = ..., completed_trials: _Optional[int] = ..., stopped_early_trials: _Optional[int] = ..., failed_trials: _Optional[int] = ..., seconds: _Optional[float] = ..., objectives: _Optional[_Iterable[_Union[Objective, _Mapping]]] = ...) -> None: ...
