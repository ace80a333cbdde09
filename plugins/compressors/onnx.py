"""Export to ONNX, then ONNX Runtime's transformer graph optimizations and int8 quantization."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

from pydantic import Field

from forgeline import modelio
from forgeline.contracts.base import PluginConfig
from forgeline.contracts.compressors import CompressContext, Compressor, CompressResult
from forgeline.errors import FailedPrecondition

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class OnnxExport(Compressor):
    """Exports the classifier to ONNX (checked against torch), optionally with fused operators
    and int8 weights; ONNX Runtime alone runs it.

    Fusion joins attention, LayerNorm and GELU with ONNX Runtime's transformer optimizer;
    quantization turns the MatMul and embedding weights to int8 (ONNX Runtime dynamic
    quantization).
    """

    name = "onnx_export"
    accepts = (modelio.HF, modelio.HF_PRUNED)

    class Config(PluginConfig):
        optimize: bool = Field(
            True,
            description="Fuse attention, LayerNorm and GELU with ONNX Runtime's transformer "
            "optimizer (kept only when its outputs still match the exported graph's).",
        )
        quantize: bool = Field(
            True, description="Quantize the weights to int8 (ONNX Runtime dynamic quantization)."
        )
        per_channel: bool = Field(False, description="One int8 scale per output channel.")
        opset: int = Field(17, ge=14, le=21, description="ONNX opset of the export.")
        tolerance: float = Field(
            1e-3,
            gt=0,
            description="Largest absolute logit difference allowed between torch and the "
            "exported fp32 graph; a larger one fails the step (the export changed the model).",
        )

    def output_format(self, input_format: str) -> str:
        return modelio.ONNX

    def compress(self, model_dir: Path, output_dir: Path, ctx: CompressContext) -> CompressResult:
        import torch
        from transformers import AutoTokenizer

        model = modelio.load_torch(model_dir, eager_attention=True)  # fusable attention graph
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        texts = ctx.train_rows(8)[0] or ["an example input", "another, somewhat longer input"]
        sample = tokenizer(
            texts, padding=True, truncation=True, max_length=ctx.max_length, return_tensors="pt"
        )
        names = [n for n in INPUTS if n in sample]
        exported = ctx.work_dir / "exported.onnx"
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (),
                str(exported),
                kwargs={n: sample[n] for n in names},
                input_names=names,
                output_names=["logits"],
                dynamic_axes={n: {0: "batch", 1: "sequence"} for n in names}
                | {"logits": {0: "batch"}},
                opset_version=self.config.opset,
                dynamo=False,
            )
            expected = model(**{n: sample[n] for n in names}).logits.float().numpy()
        feed = {n: sample[n].numpy() for n in names}
        diff = _max_diff(exported, feed, expected)
        if diff > self.config.tolerance:
            raise FailedPrecondition(
                f"the exported graph's logits differ from torch's by {diff:.2e} (tolerance "
                f"{self.config.tolerance:g})",
                reason="EXPORT_MISMATCH",
            )
        ctx.progress(0.4, f"exported (max logit difference {diff:.1e})")
        details: dict = {"opset": self.config.opset, "export_max_abs_diff": diff}
        graph = exported
        if self.config.optimize:
            uniform = modelio.folder_format(model_dir) == modelio.HF
            graph, fused = _optimize(
                exported, model.config, uniform, feed, expected, self.config.tolerance
            )
            details.update(fused)
        ctx.progress(0.7, "optimized" if graph != exported else "not optimized")
        target = output_dir / modelio.ONNX_FILE
        if self.config.quantize:
            from onnx import TensorProto
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(
                str(graph),
                str(target),
                weight_type=QuantType.QInt8,
                per_channel=self.config.per_channel,
                extra_options={"DefaultTensorType": TensorProto.FLOAT},
            )
            details["quantized_max_abs_diff"] = _max_diff(target, feed, expected)
        else:
            shutil.copyfile(graph, target)
        model.config.save_pretrained(output_dir)  # id2label for readers of the folder
        details["quantized"] = self.config.quantize
        return CompressResult(details)


def _max_diff(path: Path, feed: dict, expected) -> float:
    import numpy as np

    got = modelio.OnnxClassifier(path).logits(feed)
    return float(np.abs(got - expected).max())


def _optimize(exported: Path, config, uniform: bool, feed: dict, expected, tolerance: float):
    """ONNX Runtime's transformer fusions; the exported graph when they change the outputs or
    fail (a pruned model's layers have different head counts, which the fusions may not
    handle)."""
    from onnxruntime.transformers.optimizer import optimize_model

    try:
        optimized = optimize_model(
            str(exported),
            model_type="bert",
            num_heads=config.num_attention_heads if uniform else 0,
            hidden_size=config.hidden_size if uniform else 0,
        )
        path = exported.with_name("optimized.onnx")
        optimized.save_model_to_file(str(path))
        fused = {f"fused_{k}": v for k, v in optimized.get_fused_operator_statistics().items() if v}
    except Exception as exc:  # an optimizer that cannot handle the graph leaves it as it is
        return exported, {"optimized": False, "optimize_error": str(exc)[:200]}
    diff = _max_diff(path, feed, expected)
    if diff > tolerance:
        return exported, {"optimized": False, "optimized_max_abs_diff": diff}
    return path, {"optimized": True, "optimized_max_abs_diff": diff, **fused}
