"""Torch dynamic int8 quantization of the Linear layers."""

from __future__ import annotations

import warnings
from pathlib import Path

from pydantic import Field

from forgeline import modelio
from forgeline.contracts.base import PluginConfig
from forgeline.contracts.compressors import (
    CompressContext,
    CompressionTarget,
    Compressor,
    CompressResult,
)
from forgeline.errors import FailedPrecondition


class DynamicInt8(Compressor):
    """Quantizes every Linear layer's weights to int8 (activations are quantized on the fly at
    run time); embeddings and LayerNorms stay fp32."""

    name = "dynamic_int8"
    accepts = (modelio.HF, modelio.HF_PRUNED)
    # Any model built of Linear layers: a classifier, or a decoder-only LM (its attention and
    # MLP projections and its output head are Linears).
    tasks = ("sequence_classification", "causal_lm", "instruction")

    class Config(PluginConfig):
        per_channel: bool = Field(
            False,
            description="One scale per output channel instead of one per matrix: usually a "
            "little more accurate, a little larger.",
        )

    def output_format(self, input_format: str) -> str:
        return modelio.HF_INT8

    def check(self, target: CompressionTarget) -> None:
        import torch

        if not any(isinstance(m, torch.nn.Linear) for m in target.model.modules()):
            raise FailedPrecondition(
                f"{target.field}: dynamic_int8 quantizes torch.nn.Linear layers and this "
                f"{target.config.get('model_type', '')} model has none (e.g. GPT-2 uses Conv1D)",
                reason="COMPRESSOR_NOT_APPLICABLE",
                metadata={"field": f"{target.field}.name"},
            )

    def compress(self, model_dir: Path, output_dir: Path, ctx: CompressContext) -> CompressResult:
        import torch

        model = modelio.load_torch(model_dir, task=ctx.task)
        qconfig = (
            torch.ao.quantization.per_channel_dynamic_qconfig
            if self.config.per_channel
            else torch.ao.quantization.default_dynamic_qconfig
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.ao -> torchao notice
            quantized = torch.ao.quantization.quantize_dynamic(
                model, {torch.nn.Linear: qconfig}, dtype=torch.qint8
            )
        layers = modelio.read_format(model_dir).get("layers")
        sizes = modelio.save_int8(
            quantized, output_dir, base_format=modelio.folder_format(model_dir), layers=layers
        )
        count = sum(
            isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in quantized.modules()
        )
        return CompressResult({"quantized_linears": count, **sizes})
