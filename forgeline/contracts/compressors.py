"""The compressors contract (the compression service): a Compressor maps a model folder to a
smaller or faster model folder."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from forgeline.contracts.base import Plugin, never_cancelled


@dataclass(frozen=True)
class CompressionTarget:
    """What a compressor's ``check`` sees before any work starts: the format of the model it
    will receive (a ``forgeline.modelio`` format: "hf", "hf_pruned", "hf_int8", "onnx"), the
    original's Hugging Face config, the original's architecture built on the meta device (no
    weights), whether the request gave training rows, and the request field naming this step
    (e.g. "compressors[1]") for error messages."""

    format: str
    config: Mapping[str, Any]
    model: Any
    field: str
    has_train_rows: bool = False
    # The model's task (forgeline.models): "sequence_classification", or "causal_lm" /
    # "instruction" for a decoder-only language model (then ``model`` is its causal-LM class).
    task: str = "sequence_classification"


@dataclass(frozen=True)
class TrainRun:
    """A training the service runs for a compressor with the training recipe on Ray Train:
    ``model_dir`` (an hf or hf_pruned folder) trains on the request's training rows, with
    ``teacher_dir``'s soft labels mixed into the loss when set (distillation), and the result is
    saved into ``output_dir``."""

    model_dir: Path
    output_dir: Path
    epochs: int = 1
    learning_rate: float = 5e-5
    batch_size: int = 16
    teacher_dir: Path | None = None
    temperature: float = 2.0
    alpha: float = 0.5  # weight of the soft-label loss; 1 - alpha weighs the hard labels
    num_workers: int = 1
    cpus_per_worker: float = 1.0


@dataclass(frozen=True)
class CompressContext:
    """What a compressor may use beside the model folder.

    ``labels`` are the classes in class-index order; ``train_rows(n)`` returns up to ``n``
    (texts, labels) of the request's training rows (empty lists when it gave none);
    ``train(run)`` runs the training recipe on Ray and returns its final metrics;
    ``work_dir`` is a scratch folder of this step; ``progress(fraction, message)`` reports
    progress within the step and ``check_cancelled()`` raises when the operation was cancelled.
    """

    task: str
    labels: tuple[str, ...]
    max_length: int
    seed: int
    work_dir: Path
    train_rows: Callable[[int], tuple[list[str], list[str]]] = lambda n: ([], [])
    train: Callable[[TrainRun], dict[str, float]] | None = None
    progress: Callable[[float, str], None] = lambda fraction, message: None
    check_cancelled: Callable[[], None] = never_cancelled


@dataclass
class CompressResult:
    """What a compressor reports of its work (numbers, strings, lists), e.g. heads removed."""

    details: dict[str, Any] = field(default_factory=dict)


class Compressor(Plugin, ABC):
    """Maps a model folder to a smaller or faster model folder. The service measures both and
    keeps the result only while the accuracy budget holds."""

    kind = "compressors"
    # The modelio formats it takes as input.
    accepts: ClassVar[tuple[str, ...]] = ("hf", "hf_pruned")
    # The model tasks it compresses (forgeline.models' names). The service measures a classifier
    # by accuracy and a decoder-only language model (causal_lm, instruction) by perplexity, and
    # refuses a compressor for a task it does not list, naming the ones that apply.
    tasks: ClassVar[tuple[str, ...]] = ("sequence_classification",)

    def output_format(self, input_format: str) -> str:
        """The modelio format of the folder it writes for an input of ``input_format``."""
        return input_format

    def check(self, target: CompressionTarget) -> None:
        """Refuses a model this compressor cannot apply to (FailedPrecondition, or
        InvalidArgument naming ``<target.field>.config.<field>``) before any step runs. The
        default accepts every model in ``accepts``."""

    @abstractmethod
    def compress(self, model_dir: Path, output_dir: Path, ctx: CompressContext) -> CompressResult:
        """Writes the compressed model into the existing empty ``output_dir`` (weights as
        safetensors or ONNX only, never a pickle; forgeline.modelio saves each format). The
        service adds the tokenizer and the labels afterwards."""
