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

class RowFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROW_FORMAT_UNSPECIFIED: _ClassVar[RowFormat]
    ROW_FORMAT_STRUCT: _ClassVar[RowFormat]
    ROW_FORMAT_ARROW_IPC: _ClassVar[RowFormat]
ROW_FORMAT_UNSPECIFIED: RowFormat
ROW_FORMAT_STRUCT: RowFormat
ROW_FORMAT_ARROW_IPC: RowFormat

class Dataset(_message.Message):
    __slots__ = ("artifact", "name", "version", "num_rows", "columns", "text_column", "label_column")
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    NUM_ROWS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    TEXT_COLUMN_FIELD_NUMBER: _ClassVar[int]
    LABEL_COLUMN_FIELD_NUMBER: _ClassVar[int]
    artifact: _common_pb2.Artifact
    name: str
    version: int
    num_rows: int
    columns: _containers.RepeatedCompositeFieldContainer[Column]
    text_column: str
    label_column: str
    def __init__(self, artifact: _Optional[_Union[_common_pb2.Artifact, _Mapping]] = ..., name: _Optional[str] = ..., version: _Optional[int] = ..., num_rows: _Optional[int] = ..., columns: _Optional[_Iterable[_Union[Column, _Mapping]]] = ..., text_column: _Optional[str] = ..., label_column: _Optional[str] = ...) -> None: ...

class Column(_message.Message):
    __slots__ = ("name", "type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ...) -> None: ...

class ColumnMapping(_message.Message):
    __slots__ = ("text", "label", "keep")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    KEEP_FIELD_NUMBER: _ClassVar[int]
    text: str
    label: str
    keep: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, text: _Optional[str] = ..., label: _Optional[str] = ..., keep: _Optional[_Iterable[str]] = ...) -> None: ...

class IngestDatasetRequest(_message.Message):
    __slots__ = ("source", "loader", "columns", "name", "request_id")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    LOADER_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    source: str
    loader: _common_pb2.PluginSpec
    columns: ColumnMapping
    name: str
    request_id: str
    def __init__(self, source: _Optional[str] = ..., loader: _Optional[_Union[_common_pb2.PluginSpec, _Mapping]] = ..., columns: _Optional[_Union[ColumnMapping, _Mapping]] = ..., name: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class IngestDatasetResponse(_message.Message):
    __slots__ = ("dataset", "rows_read", "warnings")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    ROWS_READ_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    dataset: Dataset
    rows_read: int
    warnings: _containers.RepeatedCompositeFieldContainer[DataWarning]
    def __init__(self, dataset: _Optional[_Union[Dataset, _Mapping]] = ..., rows_read: _Optional[int] = ..., warnings: _Optional[_Iterable[_Union[DataWarning, _Mapping]]] = ...) -> None: ...

class DataWarning(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class UploadRecordsRequest(_message.Message):
    __slots__ = ("header", "batch", "commit")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    header: UploadHeader
    batch: RecordBatch
    commit: UploadCommit
    def __init__(self, header: _Optional[_Union[UploadHeader, _Mapping]] = ..., batch: _Optional[_Union[RecordBatch, _Mapping]] = ..., commit: _Optional[_Union[UploadCommit, _Mapping]] = ...) -> None: ...

class UploadHeader(_message.Message):
    __slots__ = ("name", "text_column", "label_column", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TEXT_COLUMN_FIELD_NUMBER: _ClassVar[int]
    LABEL_COLUMN_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    text_column: str
    label_column: str
    request_id: str
    def __init__(self, name: _Optional[str] = ..., text_column: _Optional[str] = ..., label_column: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RecordBatch(_message.Message):
    __slots__ = ("rows", "arrow_ipc")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    ARROW_IPC_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    arrow_ipc: bytes
    def __init__(self, rows: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ..., arrow_ipc: _Optional[bytes] = ...) -> None: ...

class UploadCommit(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UploadRecordsResponse(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: Dataset
    def __init__(self, dataset: _Optional[_Union[Dataset, _Mapping]] = ...) -> None: ...

class CleanDatasetRequest(_message.Message):
    __slots__ = ("dataset_id", "cleaners", "output_name", "request_id", "seed")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    CLEANERS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    cleaners: _containers.RepeatedCompositeFieldContainer[_common_pb2.PluginSpec]
    output_name: str
    request_id: str
    seed: int
    def __init__(self, dataset_id: _Optional[str] = ..., cleaners: _Optional[_Iterable[_Union[_common_pb2.PluginSpec, _Mapping]]] = ..., output_name: _Optional[str] = ..., request_id: _Optional[str] = ..., seed: _Optional[int] = ...) -> None: ...

class CleanDatasetResponse(_message.Message):
    __slots__ = ("dataset", "steps", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    DATASET_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    dataset: Dataset
    steps: _containers.RepeatedCompositeFieldContainer[CleaningStepReport]
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, dataset: _Optional[_Union[Dataset, _Mapping]] = ..., steps: _Optional[_Iterable[_Union[CleaningStepReport, _Mapping]]] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class CleaningStepReport(_message.Message):
    __slots__ = ("cleaner", "rows_in", "rows_out", "examples", "details", "seconds")
    CLEANER_FIELD_NUMBER: _ClassVar[int]
    ROWS_IN_FIELD_NUMBER: _ClassVar[int]
    ROWS_OUT_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    cleaner: str
    rows_in: int
    rows_out: int
    examples: _containers.RepeatedCompositeFieldContainer[CleaningExample]
    details: _struct_pb2.Struct
    seconds: float
    def __init__(self, cleaner: _Optional[str] = ..., rows_in: _Optional[int] = ..., rows_out: _Optional[int] = ..., examples: _Optional[_Iterable[_Union[CleaningExample, _Mapping]]] = ..., details: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., seconds: _Optional[float] = ...) -> None: ...

class CleaningExample(_message.Message):
    __slots__ = ("text", "reason")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    text: str
    reason: str
    def __init__(self, text: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class AugmentDatasetRequest(_message.Message):
    __slots__ = ("dataset_id", "augmenters", "output_name", "request_id", "seed", "drop_original")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    AUGMENTERS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    DROP_ORIGINAL_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    augmenters: _containers.RepeatedCompositeFieldContainer[_common_pb2.PluginSpec]
    output_name: str
    request_id: str
    seed: int
    drop_original: bool
    def __init__(self, dataset_id: _Optional[str] = ..., augmenters: _Optional[_Iterable[_Union[_common_pb2.PluginSpec, _Mapping]]] = ..., output_name: _Optional[str] = ..., request_id: _Optional[str] = ..., seed: _Optional[int] = ..., drop_original: _Optional[bool] = ...) -> None: ...

class AugmentDatasetResponse(_message.Message):
    __slots__ = ("dataset", "rows_added")
    class RowsAddedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    DATASET_FIELD_NUMBER: _ClassVar[int]
    ROWS_ADDED_FIELD_NUMBER: _ClassVar[int]
    dataset: Dataset
    rows_added: _containers.ScalarMap[str, int]
    def __init__(self, dataset: _Optional[_Union[Dataset, _Mapping]] = ..., rows_added: _Optional[_Mapping[str, int]] = ...) -> None: ...

class SplitDatasetRequest(_message.Message):
    __slots__ = ("dataset_id", "train_fraction", "validation_fraction", "test_fraction", "stratify", "seed", "request_id")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    TRAIN_FRACTION_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FRACTION_FIELD_NUMBER: _ClassVar[int]
    TEST_FRACTION_FIELD_NUMBER: _ClassVar[int]
    STRATIFY_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    train_fraction: float
    validation_fraction: float
    test_fraction: float
    stratify: bool
    seed: int
    request_id: str
    def __init__(self, dataset_id: _Optional[str] = ..., train_fraction: _Optional[float] = ..., validation_fraction: _Optional[float] = ..., test_fraction: _Optional[float] = ..., stratify: _Optional[bool] = ..., seed: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class SplitDatasetResponse(_message.Message):
    __slots__ = ("train", "validation", "test")
    TRAIN_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FIELD_NUMBER: _ClassVar[int]
    TEST_FIELD_NUMBER: _ClassVar[int]
    train: Dataset
    validation: Dataset
    test: Dataset
    def __init__(self, train: _Optional[_Union[Dataset, _Mapping]] = ..., validation: _Optional[_Union[Dataset, _Mapping]] = ..., test: _Optional[_Union[Dataset, _Mapping]] = ...) -> None: ...

class ProfileDatasetRequest(_message.Message):
    __slots__ = ("dataset_id", "request_id")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    request_id: str
    def __init__(self, dataset_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ProfileDatasetResponse(_message.Message):
    __slots__ = ("profile",)
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    profile: DatasetProfile
    def __init__(self, profile: _Optional[_Union[DatasetProfile, _Mapping]] = ...) -> None: ...

class DatasetProfile(_message.Message):
    __slots__ = ("dataset_id", "num_rows", "columns", "label_counts", "text_length", "duplicate_rate", "null_counts", "warnings")
    class LabelCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class NullCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    NUM_ROWS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    LABEL_COUNTS_FIELD_NUMBER: _ClassVar[int]
    TEXT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_RATE_FIELD_NUMBER: _ClassVar[int]
    NULL_COUNTS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    num_rows: int
    columns: _containers.RepeatedCompositeFieldContainer[Column]
    label_counts: _containers.ScalarMap[str, int]
    text_length: LengthStats
    duplicate_rate: float
    null_counts: _containers.ScalarMap[str, int]
    warnings: _containers.RepeatedCompositeFieldContainer[DataWarning]
    def __init__(self, dataset_id: _Optional[str] = ..., num_rows: _Optional[int] = ..., columns: _Optional[_Iterable[_Union[Column, _Mapping]]] = ..., label_counts: _Optional[_Mapping[str, int]] = ..., text_length: _Optional[_Union[LengthStats, _Mapping]] = ..., duplicate_rate: _Optional[float] = ..., null_counts: _Optional[_Mapping[str, int]] = ..., warnings: _Optional[_Iterable[_Union[DataWarning, _Mapping]]] = ...) -> None: ...

class LengthStats(_message.Message):
    __slots__ = ("min", "max", "mean", "std", "p50", "p95")
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    P50_FIELD_NUMBER: _ClassVar[int]
    P95_FIELD_NUMBER: _ClassVar[int]
    min: float
    max: float
    mean: float
    std: float
    p50: float
    p95: float
    def __init__(self, min: _Optional[float] = ..., max: _Optional[float] = ..., mean: _Optional[float] = ..., std: _Optional[float] = ..., p50: _Optional[float] = ..., p95: _Optional[float] = ...) -> None: ...

class ReadRowsRequest(_message.Message):
    __slots__ = ("dataset_id", "batch_size", "offset", "limit", "columns", "format")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    batch_size: int
    offset: int
    limit: int
    columns: _containers.RepeatedScalarFieldContainer[str]
    format: RowFormat
    def __init__(self, dataset_id: _Optional[str] = ..., batch_size: _Optional[int] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ..., columns: _Optional[_Iterable[str]] = ..., format: _Optional[_Union[RowFormat, str]] = ...) -> None: ...

class ReadRowsResponse(_message.Message):
    __slots__ = ("offset", "rows", "arrow_ipc")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    ARROW_IPC_FIELD_NUMBER: _ClassVar[int]
    offset: int
    rows: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    arrow_ipc: bytes
    def __init__(self, offset: _Optional[int] = ..., rows: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ..., arrow_ipc: _Optional[bytes] = ...) -> None: ...

class ListDatasetsRequest(_message.Message):
    __slots__ = ("name", "page_size", "page_token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    page_size: int
    page_token: str
    def __init__(self, name: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDatasetsResponse(_message.Message):
    __slots__ = ("datasets", "next_page_token")
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[Dataset]
    next_page_token: str
    def __init__(self, datasets: _Optional[_Iterable[_Union[Dataset, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetDatasetRequest(_message.Message):
    __slots__ = ("dataset_id",)
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    def __init__(self, dataset_id: _Optional[str] = ...) -> None: ...

class GetDatasetResponse(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: Dataset
    def __init__(self, dataset: _Optional[_Union[Dataset, _Mapping]] = ...) -> None: ...
