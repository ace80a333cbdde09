"""Knowledge distillation into a smaller student, trained with the training recipe on Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from forgeline import modelio
from forgeline.contracts.base import PluginConfig
from forgeline.contracts.compressors import (
    CompressContext,
    CompressionTarget,
    Compressor,
    CompressResult,
    TrainRun,
)
from forgeline.errors import FailedPrecondition, InvalidArgument


class Distill(Compressor):
    """Trains a smaller student on the teacher's softened predictions plus the hard labels
    (Hinton et al., 2015).

    The student is the teacher with fewer layers, starting from the teacher's own embeddings and
    evenly spaced layers (``init: teacher_layers``, as DistilBERT), or a narrower model of the
    same family built from config (``init: config``). Training runs the training recipe on Ray
    Train; the result is a plain Hugging Face folder.
    """

    name = "distill"
    accepts = (modelio.HF, modelio.HF_PRUNED)

    class Config(PluginConfig):
        init: Literal["teacher_layers", "config"] = Field(
            "teacher_layers",
            description="teacher_layers: copy the teacher's embeddings and evenly spaced "
            "layers; config: a fresh student of the sizes below.",
        )
        layers: int = Field(
            0, ge=0, le=96, description="Student layers (0: half the teacher's, at least 1)."
        )
        hidden_size: int = Field(
            0, ge=0, le=8192, description="init config only: the width (0: the teacher's)."
        )
        attention_heads: int = Field(
            0, ge=0, le=128, description="init config only: heads (0: the teacher's)."
        )
        intermediate_size: int = Field(
            0, ge=0, le=32768, description="init config only: FFN width (0: 4 x hidden_size)."
        )
        epochs: int = Field(3, ge=1, le=100, description="Training epochs of the student.")
        learning_rate: float = Field(1e-4, gt=0, le=1, description="Student learning rate.")
        batch_size: int = Field(32, ge=1, le=4096, description="Batch size per worker.")
        temperature: float = Field(
            2.0, gt=0, le=100, description="Softmax temperature of the soft labels."
        )
        alpha: float = Field(
            0.5, ge=0, le=1, description="Weight of the soft-label loss (1 - alpha: hard labels)."
        )
        num_workers: int = Field(1, ge=1, le=64, description="Ray Train workers.")
        cpus_per_worker: float = Field(1.0, gt=0, description="CPUs of each worker.")

    def output_format(self, input_format: str) -> str:
        return modelio.HF

    def check(self, target: CompressionTarget) -> None:
        c, where = self.config, target.field
        if not target.has_train_rows:
            raise InvalidArgument.for_field(
                "train", f"{where} (distill) trains the student on training rows"
            )
        teacher_layers = int(target.config.get("num_hidden_layers") or 0)
        if not teacher_layers:
            raise FailedPrecondition(
                f"{where}: distill builds the student from the teacher's config, and this "
                f"{target.config.get('model_type', '')} config has no num_hidden_layers",
                reason="COMPRESSOR_NOT_APPLICABLE",
                metadata={"field": f"{where}.name"},
            )
        if c.layers and c.layers > teacher_layers:
            raise InvalidArgument.for_field(
                f"{where}.config.layers",
                f"{c.layers} is more than the teacher's {teacher_layers} layers",
            )
        if c.init == "teacher_layers":
            if target.format != modelio.HF or not modelio.encoder_layers(target.model):
                raise FailedPrecondition(
                    f"{where}: init teacher_layers copies the layers of an unpruned BERT-style "
                    f"encoder; use init: config for this {target.format} model",
                    reason="COMPRESSOR_NOT_APPLICABLE",
                    metadata={"field": f"{where}.config.init"},
                )
            for name in ("hidden_size", "attention_heads", "intermediate_size"):
                if getattr(c, name):
                    raise InvalidArgument.for_field(
                        f"{where}.config.{name}", "only init: config sets the student's sizes"
                    )
        else:
            hidden = c.hidden_size or int(target.config.get("hidden_size") or 0)
            heads = c.attention_heads or int(target.config.get("num_attention_heads") or 0)
            if not hidden or not heads or hidden % heads:
                raise InvalidArgument.for_field(
                    f"{where}.config.hidden_size",
                    f"hidden_size {hidden} must be a multiple of attention_heads {heads}",
                )

    def compress(self, model_dir: Path, output_dir: Path, ctx: CompressContext) -> CompressResult:
        from transformers import AutoTokenizer

        student_dir = ctx.work_dir / "student"
        chosen = self._student(model_dir, student_dir)
        AutoTokenizer.from_pretrained(model_dir, local_files_only=True).save_pretrained(student_dir)
        if ctx.train is None:
            raise FailedPrecondition("this service cannot train", reason="NO_TRAINING")
        c = self.config
        ctx.progress(0.05, f"training a {chosen['student_layers']}-layer student")
        metrics = ctx.train(
            TrainRun(
                model_dir=student_dir,
                output_dir=output_dir,
                epochs=c.epochs,
                learning_rate=c.learning_rate,
                batch_size=c.batch_size,
                teacher_dir=model_dir,
                temperature=c.temperature,
                alpha=c.alpha,
                num_workers=c.num_workers,
                cpus_per_worker=c.cpus_per_worker,
            )
        )
        return CompressResult({**chosen, "train_loss": metrics.get("loss", 0.0)})

    def _student(self, teacher_dir: Path, folder: Path) -> dict:
        """Builds and saves the untrained student; returns what it is made of."""
        import copy

        from transformers import AutoConfig, AutoModelForSequenceClassification

        c = self.config
        config = AutoConfig.from_pretrained(teacher_dir, local_files_only=True)
        depth = config.num_hidden_layers
        layers = c.layers or max(1, depth // 2)
        student_config = copy.deepcopy(config)
        student_config.num_hidden_layers = layers
        if c.init == "config":
            hidden = c.hidden_size or config.hidden_size
            student_config.hidden_size = hidden
            student_config.num_attention_heads = c.attention_heads or config.num_attention_heads
            student_config.intermediate_size = c.intermediate_size or 4 * hidden
            with modelio.CONSTRUCTION:
                student = AutoModelForSequenceClassification.from_config(student_config)
            student.save_pretrained(folder, safe_serialization=True)
            return {"student_layers": layers, "student_hidden_size": hidden, "init": c.init}
        teacher = modelio.load_torch(teacher_dir)
        with modelio.CONSTRUCTION:
            student = AutoModelForSequenceClassification.from_config(student_config)
        # Evenly spaced teacher layers, always including the last (closest to the head).
        chosen = [round((i + 1) * depth / layers) - 1 for i in range(layers)]
        state = teacher.state_dict()
        mapped = {}
        for key in student.state_dict():
            source = key
            marker = ".encoder.layer."
            if marker in key:
                head, rest = key.split(marker, 1)
                number, tail = rest.split(".", 1)
                source = f"{head}{marker}{chosen[int(number)]}.{tail}"
            mapped[key] = state[source]
        student.load_state_dict(mapped)
        student.save_pretrained(folder, safe_serialization=True)
        return {"student_layers": layers, "teacher_layers": chosen, "init": c.init}
