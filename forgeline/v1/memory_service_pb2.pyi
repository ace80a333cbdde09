from forgeline.v1 import common_pb2 as _common_pb2
from forgeline.v1 import options_pb2 as _options_pb2
from forgeline.v1 import training_service_pb2 as _training_service_pb2
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
    __slots__ = ("name", "embedding", "index", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    embedding: EmbeddingSource
    index: IndexOptions
    description: str
    def __init__(self, name: _Optional[str] = ..., embedding: _Optional[_Union[EmbeddingSource, _Mapping]] = ..., index: _Optional[_Union[IndexOptions, _Mapping]] = ..., description: _Optional[str] = ...) -> None: ...

class CreateMemoryResponse(_message.Message):
    __slots__ = ("memory",)
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    memory: MemoryStats
    def __init__(self, memory: _Optional[_Union[MemoryStats, _Mapping]] = ...) -> None: ...

class MemoryStats(_message.Message):
    __slots__ = ("name", "samples", "deleted", "dimension", "index_type", "trained", "labels", "sources", "index_bytes", "snapshot_samples", "embedding", "description")
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
    def __init__(self, name: _Optional[str] = ..., samples: _Optional[int] = ..., deleted: _Optional[int] = ..., dimension: _Optional[int] = ..., index_type: _Optional[_Union[IndexType, str]] = ..., trained: _Optional[bool] = ..., labels: _Optional[_Mapping[str, int]] = ..., sources: _Optional[_Mapping[str, int]] = ..., index_bytes: _Optional[int] = ..., snapshot_samples: _Optional[int] = ..., embedding: _Optional[_Union[EmbeddingSource, _Mapping]] = ..., description: _Optional[str] = ...) -> None: ...

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
    dataset: _training_service_pb2.DatasetInput
    def __init__(self, memory: _Optional[str] = ..., samples: _Optional[_Iterable[_Union[MemorySample, _Mapping]]] = ..., dataset: _Optional[_Union[_training_service_pb2.DatasetInput, _Mapping]] = ...) -> None: ...

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
