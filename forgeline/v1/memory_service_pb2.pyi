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

class IndexType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INDEX_TYPE_UNSPECIFIED: _ClassVar[IndexType]
    INDEX_TYPE_FLAT: _ClassVar[IndexType]
    INDEX_TYPE_HNSW: _ClassVar[IndexType]
    INDEX_TYPE_IVF: _ClassVar[IndexType]
INDEX_TYPE_UNSPECIFIED: IndexType
INDEX_TYPE_FLAT: IndexType
INDEX_TYPE_HNSW: IndexType
INDEX_TYPE_IVF: IndexType

class EmbeddingSource(_message.Message):
    __slots__ = ("builtin", "model_id")
    BUILTIN_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    builtin: str
    model_id: str
    def __init__(self, builtin: _Optional[str] = ..., model_id: _Optional[str] = ...) -> None: ...

class IndexOptions(_message.Message):
    __slots__ = ("type", "dimension", "hnsw_m", "hnsw_ef_search", "hnsw_ef_construction", "ivf_lists", "ivf_probes", "train_size")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    HNSW_M_FIELD_NUMBER: _ClassVar[int]
    HNSW_EF_SEARCH_FIELD_NUMBER: _ClassVar[int]
    HNSW_EF_CONSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    IVF_LISTS_FIELD_NUMBER: _ClassVar[int]
    IVF_PROBES_FIELD_NUMBER: _ClassVar[int]
    TRAIN_SIZE_FIELD_NUMBER: _ClassVar[int]
    type: IndexType
    dimension: int
    hnsw_m: int
    hnsw_ef_search: int
    hnsw_ef_construction: int
    ivf_lists: int
    ivf_probes: int
    train_size: int
    def __init__(self, type: _Optional[_Union[IndexType, str]] = ..., dimension: _Optional[int] = ..., hnsw_m: _Optional[int] = ..., hnsw_ef_search: _Optional[int] = ..., hnsw_ef_construction: _Optional[int] = ..., ivf_lists: _Optional[int] = ..., ivf_probes: _Optional[int] = ..., train_size: _Optional[int] = ...) -> None: ...

class CreateMemoryRequest(_message.Message):
    __slots__ = ("name", "embedding", "index", "description", "dataset")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    name: str
    embedding: EmbeddingSource
    index: IndexOptions
    description: str
    dataset: _common_pb2.DatasetInput
    def __init__(self, name: _Optional[str] = ..., embedding: _Optional[_Union[EmbeddingSource, _Mapping]] = ..., index: _Optional[_Union[IndexOptions, _Mapping]] = ..., description: _Optional[str] = ..., dataset: _Optional[_Union[_common_pb2.DatasetInput, _Mapping]] = ...) -> None: ...

class CreateMemoryResponse(_message.Message):
    __slots__ = ("memory",)
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    memory: MemoryStats
    def __init__(self, memory: _Optional[_Union[MemoryStats, _Mapping]] = ...) -> None: ...

class MemoryStats(_message.Message):
    __slots__ = ("name", "samples", "deleted", "dimension", "index_type", "trained", "labels", "sources", "index_bytes", "snapshot_samples", "embedding", "description", "model_id", "updates", "tasks")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class SourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    INDEX_TYPE_FIELD_NUMBER: _ClassVar[int]
    TRAINED_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    INDEX_BYTES_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    name: str
    samples: int
    deleted: int
    dimension: int
    index_type: IndexType
    trained: bool
    labels: _containers.ScalarMap[str, int]
    sources: _containers.ScalarMap[str, int]
    index_bytes: int
    snapshot_samples: int
    embedding: EmbeddingSource
    description: str
    model_id: str
    updates: int
    tasks: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., samples: _Optional[int] = ..., deleted: _Optional[int] = ..., dimension: _Optional[int] = ..., index_type: _Optional[_Union[IndexType, str]] = ..., trained: _Optional[bool] = ..., labels: _Optional[_Mapping[str, int]] = ..., sources: _Optional[_Mapping[str, int]] = ..., index_bytes: _Optional[int] = ..., snapshot_samples: _Optional[int] = ..., embedding: _Optional[_Union[EmbeddingSource, _Mapping]] = ..., description: _Optional[str] = ..., model_id: _Optional[str] = ..., updates: _Optional[int] = ..., tasks: _Optional[_Iterable[str]] = ...) -> None: ...

class GetMemoryStatsRequest(_message.Message):
    __slots__ = ("memory",)
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    memory: str
    def __init__(self, memory: _Optional[str] = ...) -> None: ...

class GetMemoryStatsResponse(_message.Message):
    __slots__ = ("memory",)
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    memory: MemoryStats
    def __init__(self, memory: _Optional[_Union[MemoryStats, _Mapping]] = ...) -> None: ...

class ListMemoriesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListMemoriesResponse(_message.Message):
    __slots__ = ("memories", "next_page_token")
    MEMORIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    memories: _containers.RepeatedCompositeFieldContainer[MemoryStats]
    next_page_token: str
    def __init__(self, memories: _Optional[_Iterable[_Union[MemoryStats, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class MemorySample(_message.Message):
    __slots__ = ("id", "text", "label", "source", "timestamp", "metadata", "vector")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    id: int
    text: str
    label: str
    source: str
    timestamp: float
    metadata: _struct_pb2.Struct
    vector: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, id: _Optional[int] = ..., text: _Optional[str] = ..., label: _Optional[str] = ..., source: _Optional[str] = ..., timestamp: _Optional[float] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., vector: _Optional[_Iterable[float]] = ...) -> None: ...

class AddSamplesRequest(_message.Message):
    __slots__ = ("memory", "samples", "dataset")
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    memory: str
    samples: _containers.RepeatedCompositeFieldContainer[MemorySample]
    dataset: _common_pb2.DatasetInput
    def __init__(self, memory: _Optional[str] = ..., samples: _Optional[_Iterable[_Union[MemorySample, _Mapping]]] = ..., dataset: _Optional[_Union[_common_pb2.DatasetInput, _Mapping]] = ...) -> None: ...

class AddSamplesResponse(_message.Message):
    __slots__ = ("ids", "memory")
    IDS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[int]
    memory: MemoryStats
    def __init__(self, ids: _Optional[_Iterable[int]] = ..., memory: _Optional[_Union[MemoryStats, _Mapping]] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("memory", "text", "vector", "k", "filter", "include_vectors")
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_VECTORS_FIELD_NUMBER: _ClassVar[int]
    memory: str
    text: str
    vector: _containers.RepeatedScalarFieldContainer[float]
    k: int
    filter: _struct_pb2.Struct
    include_vectors: bool
    def __init__(self, memory: _Optional[str] = ..., text: _Optional[str] = ..., vector: _Optional[_Iterable[float]] = ..., k: _Optional[int] = ..., filter: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., include_vectors: _Optional[bool] = ...) -> None: ...

class SearchHit(_message.Message):
    __slots__ = ("sample", "score")
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    sample: MemorySample
    score: float
    def __init__(self, sample: _Optional[_Union[MemorySample, _Mapping]] = ..., score: _Optional[float] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits",)
    HITS_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[SearchHit]
    def __init__(self, hits: _Optional[_Iterable[_Union[SearchHit, _Mapping]]] = ...) -> None: ...

class SampleReplayRequest(_message.Message):
    __slots__ = ("memory", "k", "sampler", "seed", "filter", "include_vectors")
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    SAMPLER_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_VECTORS_FIELD_NUMBER: _ClassVar[int]
    memory: str
    k: int
    sampler: _common_pb2.PluginSpec
    seed: int
    filter: _struct_pb2.Struct
    include_vectors: bool
    def __init__(self, memory: _Optional[str] = ..., k: _Optional[int] = ..., sampler: _Optional[_Union[_common_pb2.PluginSpec, _Mapping]] = ..., seed: _Optional[int] = ..., filter: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., include_vectors: _Optional[bool] = ...) -> None: ...

class SampleReplayResponse(_message.Message):
    __slots__ = ("samples",)
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    samples: _containers.RepeatedCompositeFieldContainer[MemorySample]
    def __init__(self, samples: _Optional[_Iterable[_Union[MemorySample, _Mapping]]] = ...) -> None: ...

class DeleteSamplesRequest(_message.Message):
    __slots__ = ("memory", "ids", "filter")
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    memory: str
    ids: _containers.RepeatedScalarFieldContainer[int]
    filter: _struct_pb2.Struct
    def __init__(self, memory: _Optional[str] = ..., ids: _Optional[_Iterable[int]] = ..., filter: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class DeleteSamplesResponse(_message.Message):
    __slots__ = ("deleted", "memory")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    memory: MemoryStats
    def __init__(self, deleted: _Optional[int] = ..., memory: _Optional[_Union[MemoryStats, _Mapping]] = ...) -> None: ...

class TaskData(_message.Message):
    __slots__ = ("task", "eval")
    TASK_FIELD_NUMBER: _ClassVar[int]
    EVAL_FIELD_NUMBER: _ClassVar[int]
    task: str
    eval: _common_pb2.DatasetInput
    def __init__(self, task: _Optional[str] = ..., eval: _Optional[_Union[_common_pb2.DatasetInput, _Mapping]] = ...) -> None: ...

class ContinualUpdateRequest(_message.Message):
    __slots__ = ("memory", "model_id", "new_data", "new_eval", "holdout_fraction", "task", "old_tasks", "selector", "replay_ratio", "replay_sampler", "regularizer", "old_rows", "hyper_parameters", "scaling", "max_forgetting", "output_name", "request_id", "create_memory")
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_DATA_FIELD_NUMBER: _ClassVar[int]
    NEW_EVAL_FIELD_NUMBER: _ClassVar[int]
    HOLDOUT_FRACTION_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    OLD_TASKS_FIELD_NUMBER: _ClassVar[int]
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    REPLAY_RATIO_FIELD_NUMBER: _ClassVar[int]
    REPLAY_SAMPLER_FIELD_NUMBER: _ClassVar[int]
    REGULARIZER_FIELD_NUMBER: _ClassVar[int]
    OLD_ROWS_FIELD_NUMBER: _ClassVar[int]
    HYPER_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    SCALING_FIELD_NUMBER: _ClassVar[int]
    MAX_FORGETTING_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_MEMORY_FIELD_NUMBER: _ClassVar[int]
    memory: str
    model_id: str
    new_data: _common_pb2.DatasetInput
    new_eval: _common_pb2.DatasetInput
    holdout_fraction: float
    task: str
    old_tasks: _containers.RepeatedCompositeFieldContainer[TaskData]
    selector: _common_pb2.PluginSpec
    replay_ratio: float
    replay_sampler: _common_pb2.PluginSpec
    regularizer: _common_pb2.PluginSpec
    old_rows: int
    hyper_parameters: _common_pb2.HyperParameters
    scaling: _common_pb2.Scaling
    max_forgetting: float
    output_name: str
    request_id: str
    create_memory: CreateMemoryRequest
    def __init__(self, memory: _Optional[str] = ..., model_id: _Optional[str] = ..., new_data: _Optional[_Union[_common_pb2.DatasetInput, _Mapping]] = ..., new_eval: _Optional[_Union[_common_pb2.DatasetInput, _Mapping]] = ..., holdout_fraction: _Optional[float] = ..., task: _Optional[str] = ..., old_tasks: _Optional[_Iterable[_Union[TaskData, _Mapping]]] = ..., selector: _Optional[_Union[_common_pb2.PluginSpec, _Mapping]] = ..., replay_ratio: _Optional[float] = ..., replay_sampler: _Optional[_Union[_common_pb2.PluginSpec, _Mapping]] = ..., regularizer: _Optional[_Union[_common_pb2.PluginSpec, _Mapping]] = ..., old_rows: _Optional[int] = ..., hyper_parameters: _Optional[_Union[_common_pb2.HyperParameters, _Mapping]] = ..., scaling: _Optional[_Union[_common_pb2.Scaling, _Mapping]] = ..., max_forgetting: _Optional[float] = ..., output_name: _Optional[str] = ..., request_id: _Optional[str] = ..., create_memory: _Optional[_Union[CreateMemoryRequest, _Mapping]] = ...) -> None: ...

class TaskAccuracy(_message.Message):
    __slots__ = ("task", "before", "after", "learned", "new", "examples")
    TASK_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LEARNED_FIELD_NUMBER: _ClassVar[int]
    NEW_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    task: str
    before: float
    after: float
    learned: float
    new: bool
    examples: int
    def __init__(self, task: _Optional[str] = ..., before: _Optional[float] = ..., after: _Optional[float] = ..., learned: _Optional[float] = ..., new: _Optional[bool] = ..., examples: _Optional[int] = ...) -> None: ...

class UpdateRecord(_message.Message):
    __slots__ = ("update", "model_id", "task", "accuracy", "promoted", "forgetting", "operation")
    class AccuracyEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    PROMOTED_FIELD_NUMBER: _ClassVar[int]
    FORGETTING_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    update: int
    model_id: str
    task: str
    accuracy: _containers.ScalarMap[str, float]
    promoted: bool
    forgetting: float
    operation: str
    def __init__(self, update: _Optional[int] = ..., model_id: _Optional[str] = ..., task: _Optional[str] = ..., accuracy: _Optional[_Mapping[str, float]] = ..., promoted: _Optional[bool] = ..., forgetting: _Optional[float] = ..., operation: _Optional[str] = ...) -> None: ...

class ContinualUpdateResponse(_message.Message):
    __slots__ = ("model", "promoted", "reason", "previous_model_id", "task", "new_rows", "selected_rows", "replayed_rows", "added_samples", "tasks", "forgetting", "max_forgetting", "backward_transfer", "new_task_accuracy", "new_task_accuracy_before", "history", "memory", "metrics", "seconds")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMOTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    NEW_ROWS_FIELD_NUMBER: _ClassVar[int]
    SELECTED_ROWS_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_ROWS_FIELD_NUMBER: _ClassVar[int]
    ADDED_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    FORGETTING_FIELD_NUMBER: _ClassVar[int]
    MAX_FORGETTING_FIELD_NUMBER: _ClassVar[int]
    BACKWARD_TRANSFER_FIELD_NUMBER: _ClassVar[int]
    NEW_TASK_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    NEW_TASK_ACCURACY_BEFORE_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.Artifact
    promoted: bool
    reason: str
    previous_model_id: str
    task: str
    new_rows: int
    selected_rows: int
    replayed_rows: int
    added_samples: int
    tasks: _containers.RepeatedCompositeFieldContainer[TaskAccuracy]
    forgetting: float
    max_forgetting: float
    backward_transfer: float
    new_task_accuracy: float
    new_task_accuracy_before: float
    history: _containers.RepeatedCompositeFieldContainer[UpdateRecord]
    memory: MemoryStats
    metrics: _containers.ScalarMap[str, float]
    seconds: float
    def __init__(self, model: _Optional[_Union[_common_pb2.Artifact, _Mapping]] = ..., promoted: _Optional[bool] = ..., reason: _Optional[str] = ..., previous_model_id: _Optional[str] = ..., task: _Optional[str] = ..., new_rows: _Optional[int] = ..., selected_rows: _Optional[int] = ..., replayed_rows: _Optional[int] = ..., added_samples: _Optional[int] = ..., tasks: _Optional[_Iterable[_Union[TaskAccuracy, _Mapping]]] = ..., forgetting: _Optional[float] = ..., max_forgetting: _Optional[float] = ..., backward_transfer: _Optional[float] = ..., new_task_accuracy: _Optional[float] = ..., new_task_accuracy_before: _Optional[float] = ..., history: _Optional[_Iterable[_Union[UpdateRecord, _Mapping]]] = ..., memory: _Optional[_Union[MemoryStats, _Mapping]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., seconds: _Optional[float] = ...) -> None: ...
