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

class Task(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_UNSPECIFIED: _ClassVar[Task]
    TASK_SEQUENCE_CLASSIFICATION: _ClassVar[Task]
    TASK_CAUSAL_LM: _ClassVar[Task]
    TASK_SEQ2SEQ: _ClassVar[Task]
    TASK_INSTRUCTION: _ClassVar[Task]

class DecodingStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECODING_STRATEGY_UNSPECIFIED: _ClassVar[DecodingStrategy]
    DECODING_STRATEGY_GREEDY: _ClassVar[DecodingStrategy]
    DECODING_STRATEGY_BEAM: _ClassVar[DecodingStrategy]
    DECODING_STRATEGY_SAMPLE: _ClassVar[DecodingStrategy]
TASK_UNSPECIFIED: Task
TASK_SEQUENCE_CLASSIFICATION: Task
TASK_CAUSAL_LM: Task
TASK_SEQ2SEQ: Task
TASK_INSTRUCTION: Task
DECODING_STRATEGY_UNSPECIFIED: DecodingStrategy
DECODING_STRATEGY_GREEDY: DecodingStrategy
DECODING_STRATEGY_BEAM: DecodingStrategy
DECODING_STRATEGY_SAMPLE: DecodingStrategy

class ModelSource(_message.Message):
    __slots__ = ("builtin", "path", "artifact_id", "from_config")
    BUILTIN_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_CONFIG_FIELD_NUMBER: _ClassVar[int]
    builtin: str
    path: str
    artifact_id: str
    from_config: ModelFromConfig
    def __init__(self, builtin: _Optional[str] = ..., path: _Optional[str] = ..., artifact_id: _Optional[str] = ..., from_config: _Optional[_Union[ModelFromConfig, _Mapping]] = ...) -> None: ...

class ModelFromConfig(_message.Message):
    __slots__ = ("model_type", "config", "vocab_size")
    MODEL_TYPE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    VOCAB_SIZE_FIELD_NUMBER: _ClassVar[int]
    model_type: str
    config: _struct_pb2.Struct
    vocab_size: int
    def __init__(self, model_type: _Optional[str] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., vocab_size: _Optional[int] = ...) -> None: ...

class CheckpointPolicy(_message.Message):
    __slots__ = ("every_steps", "keep")
    EVERY_STEPS_FIELD_NUMBER: _ClassVar[int]
    KEEP_FIELD_NUMBER: _ClassVar[int]
    every_steps: int
    keep: int
    def __init__(self, every_steps: _Optional[int] = ..., keep: _Optional[int] = ...) -> None: ...

class FailurePolicy(_message.Message):
    __slots__ = ("max_failures",)
    MAX_FAILURES_FIELD_NUMBER: _ClassVar[int]
    max_failures: int
    def __init__(self, max_failures: _Optional[int] = ...) -> None: ...

class TrainModelRequest(_message.Message):
    __slots__ = ("train", "eval", "model", "task", "finetune", "hyper_parameters", "scaling", "checkpoint", "failure", "trackers", "output_name", "request_id", "long_inputs", "input_token_budget")
    TRAIN_FIELD_NUMBER: _ClassVar[int]
    EVAL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    FINETUNE_FIELD_NUMBER: _ClassVar[int]
    HYPER_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    SCALING_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    TRACKERS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    LONG_INPUTS_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKEN_BUDGET_FIELD_NUMBER: _ClassVar[int]
    train: _common_pb2.DatasetInput
    eval: _common_pb2.DatasetInput
    model: ModelSource
    task: Task
    finetune: _common_pb2.PluginSpec
    hyper_parameters: _common_pb2.HyperParameters
    scaling: _common_pb2.Scaling
    checkpoint: CheckpointPolicy
    failure: FailurePolicy
    trackers: _containers.RepeatedCompositeFieldContainer[_common_pb2.PluginSpec]
    output_name: str
    request_id: str
    long_inputs: _common_pb2.PluginSpec
    input_token_budget: int
    def __init__(self, train: _Optional[_Union[_common_pb2.DatasetInput, _Mapping]] = ..., eval: _Optional[_Union[_common_pb2.DatasetInput, _Mapping]] = ..., model: _Optional[_Union[ModelSource, _Mapping]] = ..., task: _Optional[_Union[Task, str]] = ..., finetune: _Optional[_Union[_common_pb2.PluginSpec, _Mapping]] = ..., hyper_parameters: _Optional[_Union[_common_pb2.HyperParameters, _Mapping]] = ..., scaling: _Optional[_Union[_common_pb2.Scaling, _Mapping]] = ..., checkpoint: _Optional[_Union[CheckpointPolicy, _Mapping]] = ..., failure: _Optional[_Union[FailurePolicy, _Mapping]] = ..., trackers: _Optional[_Iterable[_Union[_common_pb2.PluginSpec, _Mapping]]] = ..., output_name: _Optional[str] = ..., request_id: _Optional[str] = ..., long_inputs: _Optional[_Union[_common_pb2.PluginSpec, _Mapping]] = ..., input_token_budget: _Optional[int] = ...) -> None: ...

class TrainModelResponse(_message.Message):
    __slots__ = ("model", "metrics", "steps", "trainable_parameters", "total_parameters", "evaluation")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    TRAINABLE_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.Artifact
    metrics: _containers.ScalarMap[str, float]
    steps: int
    trainable_parameters: int
    total_parameters: int
    evaluation: Evaluation
    def __init__(self, model: _Optional[_Union[_common_pb2.Artifact, _Mapping]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., steps: _Optional[int] = ..., trainable_parameters: _Optional[int] = ..., total_parameters: _Optional[int] = ..., evaluation: _Optional[_Union[Evaluation, _Mapping]] = ...) -> None: ...

class EvaluateModelRequest(_message.Message):
    __slots__ = ("model_id", "dataset", "batch_size", "max_sequence_length", "request_id", "generation")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_SEQUENCE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    dataset: _common_pb2.DatasetInput
    batch_size: int
    max_sequence_length: int
    request_id: str
    generation: GenerationEvaluation
    def __init__(self, model_id: _Optional[str] = ..., dataset: _Optional[_Union[_common_pb2.DatasetInput, _Mapping]] = ..., batch_size: _Optional[int] = ..., max_sequence_length: _Optional[int] = ..., request_id: _Optional[str] = ..., generation: _Optional[_Union[GenerationEvaluation, _Mapping]] = ...) -> None: ...

class GenerationEvaluation(_message.Message):
    __slots__ = ("decoding", "metrics", "reference_column", "long_inputs", "input_token_budget", "max_examples", "seed", "samples", "raw_prompt")
    DECODING_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_COLUMN_FIELD_NUMBER: _ClassVar[int]
    LONG_INPUTS_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKEN_BUDGET_FIELD_NUMBER: _ClassVar[int]
    MAX_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    RAW_PROMPT_FIELD_NUMBER: _ClassVar[int]
    decoding: DecodingOptions
    metrics: _containers.RepeatedCompositeFieldContainer[_common_pb2.PluginSpec]
    reference_column: str
    long_inputs: _common_pb2.PluginSpec
    input_token_budget: int
    max_examples: int
    seed: int
    samples: int
    raw_prompt: bool
    def __init__(self, decoding: _Optional[_Union[DecodingOptions, _Mapping]] = ..., metrics: _Optional[_Iterable[_Union[_common_pb2.PluginSpec, _Mapping]]] = ..., reference_column: _Optional[str] = ..., long_inputs: _Optional[_Union[_common_pb2.PluginSpec, _Mapping]] = ..., input_token_budget: _Optional[int] = ..., max_examples: _Optional[int] = ..., seed: _Optional[int] = ..., samples: _Optional[int] = ..., raw_prompt: _Optional[bool] = ...) -> None: ...

class DecodingOptions(_message.Message):
    __slots__ = ("strategy", "num_beams", "temperature", "top_p", "top_k", "seed", "max_new_tokens", "repetition_penalty", "stop")
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    NUM_BEAMS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REPETITION_PENALTY_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    strategy: DecodingStrategy
    num_beams: int
    temperature: float
    top_p: float
    top_k: int
    seed: int
    max_new_tokens: int
    repetition_penalty: float
    stop: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, strategy: _Optional[_Union[DecodingStrategy, str]] = ..., num_beams: _Optional[int] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., top_k: _Optional[int] = ..., seed: _Optional[int] = ..., max_new_tokens: _Optional[int] = ..., repetition_penalty: _Optional[float] = ..., stop: _Optional[_Iterable[str]] = ...) -> None: ...

class GenerationSample(_message.Message):
    __slots__ = ("row", "source_excerpt", "reference", "output")
    ROW_FIELD_NUMBER: _ClassVar[int]
    SOURCE_EXCERPT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    row: int
    source_excerpt: str
    reference: str
    output: str
    def __init__(self, row: _Optional[int] = ..., source_excerpt: _Optional[str] = ..., reference: _Optional[str] = ..., output: _Optional[str] = ...) -> None: ...

class EvaluateModelResponse(_message.Message):
    __slots__ = ("evaluation",)
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    evaluation: Evaluation
    def __init__(self, evaluation: _Optional[_Union[Evaluation, _Mapping]] = ...) -> None: ...

class TrainBaselineRequest(_message.Message):
    __slots__ = ("train", "eval", "baseline", "output_name", "request_id", "metrics")
    TRAIN_FIELD_NUMBER: _ClassVar[int]
    EVAL_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    train: _common_pb2.DatasetInput
    eval: _common_pb2.DatasetInput
    baseline: _common_pb2.PluginSpec
    output_name: str
    request_id: str
    metrics: _containers.RepeatedCompositeFieldContainer[_common_pb2.PluginSpec]
    def __init__(self, train: _Optional[_Union[_common_pb2.DatasetInput, _Mapping]] = ..., eval: _Optional[_Union[_common_pb2.DatasetInput, _Mapping]] = ..., baseline: _Optional[_Union[_common_pb2.PluginSpec, _Mapping]] = ..., output_name: _Optional[str] = ..., request_id: _Optional[str] = ..., metrics: _Optional[_Iterable[_Union[_common_pb2.PluginSpec, _Mapping]]] = ...) -> None: ...

class TrainBaselineResponse(_message.Message):
    __slots__ = ("evaluation", "seconds", "model")
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    evaluation: Evaluation
    seconds: float
    model: _common_pb2.Artifact
    def __init__(self, evaluation: _Optional[_Union[Evaluation, _Mapping]] = ..., seconds: _Optional[float] = ..., model: _Optional[_Union[_common_pb2.Artifact, _Mapping]] = ...) -> None: ...

class ImportModelRequest(_message.Message):
    __slots__ = ("source_path", "output_name", "request_id")
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    source_path: str
    output_name: str
    request_id: str
    def __init__(self, source_path: _Optional[str] = ..., output_name: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ImportModelResponse(_message.Message):
    __slots__ = ("model", "cached", "architecture", "parameters")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.Artifact
    cached: bool
    architecture: str
    parameters: int
    def __init__(self, model: _Optional[_Union[_common_pb2.Artifact, _Mapping]] = ..., cached: _Optional[bool] = ..., architecture: _Optional[str] = ..., parameters: _Optional[int] = ...) -> None: ...

class Evaluation(_message.Message):
    __slots__ = ("num_examples", "loss", "accuracy", "f1_macro", "confusion_matrix", "perplexity", "metrics", "generation_settings", "samples", "outputs_id", "misclassified")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NUM_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    F1_MACRO_FIELD_NUMBER: _ClassVar[int]
    CONFUSION_MATRIX_FIELD_NUMBER: _ClassVar[int]
    PERPLEXITY_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_ID_FIELD_NUMBER: _ClassVar[int]
    MISCLASSIFIED_FIELD_NUMBER: _ClassVar[int]
    num_examples: int
    loss: float
    accuracy: float
    f1_macro: float
    confusion_matrix: ConfusionMatrix
    perplexity: float
    metrics: _containers.ScalarMap[str, float]
    generation_settings: _struct_pb2.Struct
    samples: _containers.RepeatedCompositeFieldContainer[GenerationSample]
    outputs_id: str
    misclassified: _containers.RepeatedCompositeFieldContainer[ClassificationExample]
    def __init__(self, num_examples: _Optional[int] = ..., loss: _Optional[float] = ..., accuracy: _Optional[float] = ..., f1_macro: _Optional[float] = ..., confusion_matrix: _Optional[_Union[ConfusionMatrix, _Mapping]] = ..., perplexity: _Optional[float] = ..., metrics: _Optional[_Mapping[str, float]] = ..., generation_settings: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., samples: _Optional[_Iterable[_Union[GenerationSample, _Mapping]]] = ..., outputs_id: _Optional[str] = ..., misclassified: _Optional[_Iterable[_Union[ClassificationExample, _Mapping]]] = ...) -> None: ...

class ClassificationExample(_message.Message):
    __slots__ = ("row", "text_excerpt", "label", "predicted", "confidence")
    ROW_FIELD_NUMBER: _ClassVar[int]
    TEXT_EXCERPT_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    row: int
    text_excerpt: str
    label: str
    predicted: str
    confidence: float
    def __init__(self, row: _Optional[int] = ..., text_excerpt: _Optional[str] = ..., label: _Optional[str] = ..., predicted: _Optional[str] = ..., confidence: _Optional[float] = ...) -> None: ...

class ConfusionMatrix(_message.Message):
    __slots__ = ("labels", "counts")
    LABELS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    labels: _containers.RepeatedScalarFieldContainer[str]
    counts: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, labels: _Optional[_Iterable[str]] = ..., counts: _Optional[_Iterable[int]] = ...) -> None: ...

class PredictRequest(_message.Message):
    __slots__ = ("model_id", "texts", "max_sequence_length", "max_new_tokens")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    MAX_SEQUENCE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    texts: _containers.RepeatedScalarFieldContainer[str]
    max_sequence_length: int
    max_new_tokens: int
    def __init__(self, model_id: _Optional[str] = ..., texts: _Optional[_Iterable[str]] = ..., max_sequence_length: _Optional[int] = ..., max_new_tokens: _Optional[int] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("predictions",)
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    predictions: _containers.RepeatedCompositeFieldContainer[Prediction]
    def __init__(self, predictions: _Optional[_Iterable[_Union[Prediction, _Mapping]]] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("label", "score", "scores", "generated_text")
    class ScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    GENERATED_TEXT_FIELD_NUMBER: _ClassVar[int]
    label: str
    score: float
    scores: _containers.ScalarMap[str, float]
    generated_text: str
    def __init__(self, label: _Optional[str] = ..., score: _Optional[float] = ..., scores: _Optional[_Mapping[str, float]] = ..., generated_text: _Optional[str] = ...) -> None: ...

class ReviewSystem(_message.Message):
    __slots__ = ("name", "outputs_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    outputs_id: str
    def __init__(self, name: _Optional[str] = ..., outputs_id: _Optional[str] = ...) -> None: ...

class ExportReviewSheetRequest(_message.Message):
    __slots__ = ("systems", "num_documents", "seed", "excerpt_chars", "criteria", "blind", "output_name", "output_path", "request_id")
    SYSTEMS_FIELD_NUMBER: _ClassVar[int]
    NUM_DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    EXCERPT_CHARS_FIELD_NUMBER: _ClassVar[int]
    CRITERIA_FIELD_NUMBER: _ClassVar[int]
    BLIND_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PATH_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    systems: _containers.RepeatedCompositeFieldContainer[ReviewSystem]
    num_documents: int
    seed: int
    excerpt_chars: int
    criteria: _containers.RepeatedScalarFieldContainer[str]
    blind: bool
    output_name: str
    output_path: str
    request_id: str
    def __init__(self, systems: _Optional[_Iterable[_Union[ReviewSystem, _Mapping]]] = ..., num_documents: _Optional[int] = ..., seed: _Optional[int] = ..., excerpt_chars: _Optional[int] = ..., criteria: _Optional[_Iterable[str]] = ..., blind: _Optional[bool] = ..., output_name: _Optional[str] = ..., output_path: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ExportReviewSheetResponse(_message.Message):
    __slots__ = ("sheet", "num_documents", "rows")
    SHEET_FIELD_NUMBER: _ClassVar[int]
    NUM_DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    sheet: _common_pb2.Artifact
    num_documents: int
    rows: int
    def __init__(self, sheet: _Optional[_Union[_common_pb2.Artifact, _Mapping]] = ..., num_documents: _Optional[int] = ..., rows: _Optional[int] = ...) -> None: ...

class IngestReviewSheetRequest(_message.Message):
    __slots__ = ("sheet_id", "sheet_paths", "request_id")
    SHEET_ID_FIELD_NUMBER: _ClassVar[int]
    SHEET_PATHS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    sheet_id: str
    sheet_paths: _containers.RepeatedScalarFieldContainer[str]
    request_id: str
    def __init__(self, sheet_id: _Optional[str] = ..., sheet_paths: _Optional[_Iterable[str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class SystemRatings(_message.Message):
    __slots__ = ("mean", "count", "overall_mean", "rated_rows", "unrated_cells")
    class MeanEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class CountEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    MEAN_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    OVERALL_MEAN_FIELD_NUMBER: _ClassVar[int]
    RATED_ROWS_FIELD_NUMBER: _ClassVar[int]
    UNRATED_CELLS_FIELD_NUMBER: _ClassVar[int]
    mean: _containers.ScalarMap[str, float]
    count: _containers.ScalarMap[str, int]
    overall_mean: float
    rated_rows: int
    unrated_cells: int
    def __init__(self, mean: _Optional[_Mapping[str, float]] = ..., count: _Optional[_Mapping[str, int]] = ..., overall_mean: _Optional[float] = ..., rated_rows: _Optional[int] = ..., unrated_cells: _Optional[int] = ...) -> None: ...

class RaterAgreement(_message.Message):
    __slots__ = ("criterion", "pairs", "exact", "within_one", "mean_absolute_difference")
    CRITERION_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    WITHIN_ONE_FIELD_NUMBER: _ClassVar[int]
    MEAN_ABSOLUTE_DIFFERENCE_FIELD_NUMBER: _ClassVar[int]
    criterion: str
    pairs: int
    exact: float
    within_one: float
    mean_absolute_difference: float
    def __init__(self, criterion: _Optional[str] = ..., pairs: _Optional[int] = ..., exact: _Optional[float] = ..., within_one: _Optional[float] = ..., mean_absolute_difference: _Optional[float] = ...) -> None: ...

class IngestReviewSheetResponse(_message.Message):
    __slots__ = ("systems", "rated_rows", "unrated_cells", "raters", "agreement")
    class SystemsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: SystemRatings
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[SystemRatings, _Mapping]] = ...) -> None: ...
    SYSTEMS_FIELD_NUMBER: _ClassVar[int]
    RATED_ROWS_FIELD_NUMBER: _ClassVar[int]
    UNRATED_CELLS_FIELD_NUMBER: _ClassVar[int]
    RATERS_FIELD_NUMBER: _ClassVar[int]
    AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    systems: _containers.MessageMap[str, SystemRatings]
    rated_rows: int
    unrated_cells: int
    raters: _containers.RepeatedScalarFieldContainer[str]
    agreement: _containers.RepeatedCompositeFieldContainer[RaterAgreement]
    def __init__(self, systems: _Optional[_Mapping[str, SystemRatings]] = ..., rated_rows: _Optional[int] = ..., unrated_cells: _Optional[int] = ..., raters: _Optional[_Iterable[str]] = ..., agreement: _Optional[_Iterable[_Union[RaterAgreement, _Mapping]]] = ...) -> None: ...
