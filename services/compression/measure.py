"""Measures a model folder of any format the same way: size on disk, parameters, the bytes
of its Linear (MatMul) weights, forward-pass latency on this machine's CPU (p50 / p95 of single
inputs, throughput of full batches) and, on the evaluation rows, a classifier's accuracy / macro
F1 / loss or a decoder-only language model's next-token loss and perplexity.

Every model of one chain is measured on the same tokenized inputs, with the same threads, so the
ratios against the original compare models and nothing else. Tokenization is not timed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from forgeline import modelio
from forgeline.models import SEQUENCE_CLASSIFICATION, perplexity_of


@dataclass(frozen=True)
class LatencyOptions:
    single_runs: int = 50
    batch_size: int = 32
    batch_runs: int = 5
    threads: int = 0  # 0: every core


@dataclass
class Measurement:
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
    perplexity: float = 0.0  # a language model's exp(loss); 0 for a classifier

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def score(self, metric: str) -> float:
        return float(getattr(self, metric))

    def scalars(self) -> dict[str, float]:
        """The numbers as metric points (the format is not one)."""
        return {k: float(v) for k, v in self.as_dict().items() if k != "format"}


@dataclass
class EvalInputs:
    """The evaluation rows tokenized once for every model of a chain."""

    singles: list[dict[str, Any]]  # one input each, unpadded
    timed_batches: list[dict[str, Any]]  # LatencyOptions.batch_size inputs each
    eval_batches: list[dict[str, Any]]  # every eval row (batches of 32; 8 for an LM)
    truth: list[int]  # a classifier's class index per row; empty for a language model
    labels: list[str]
    task: str = SEQUENCE_CLASSIFICATION


def tokenize(
    tokenizer,
    texts: list[str],
    labels: list[str],
    names: list[str],
    max_length: int,
    options: LatencyOptions,
    task: str = SEQUENCE_CLASSIFICATION,
) -> EvalInputs:
    """``names`` are the model's labels in class-index order. A language model (``task``
    causal_lm or instruction) has no labels: its texts are padded on the right, where the
    positions of the real tokens stay those of an unpadded text and the loss skips the pads."""
    index = {name: i for i, name in enumerate(names)}
    if task != SEQUENCE_CLASSIFICATION:
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "right"

    def encode(chunk: list[str]) -> dict[str, Any]:
        out = tokenizer(
            chunk, padding=True, truncation=True, max_length=max_length, return_tensors="np"
        )
        return {k: v for k, v in out.items()}

    def cycle(n: int) -> list[str]:
        return [texts[i % len(texts)] for i in range(n)]

    size = options.batch_size
    every = 32 if task == SEQUENCE_CLASSIFICATION else 8  # an LM's logits: one per position
    timed = cycle(size * options.batch_runs)
    return EvalInputs(
        singles=[encode([t]) for t in cycle(options.single_runs)],
        timed_batches=[encode(timed[i : i + size]) for i in range(0, len(timed), size)],
        eval_batches=[encode(texts[i : i + every]) for i in range(0, len(texts), every)],
        truth=[index[label] for label in labels or []],
        labels=list(names),
        task=task,
    )


def measure(folder: Path, inputs: EvalInputs, options: LatencyOptions) -> Measurement:
    """Loads the model in ``folder`` (a classifier, or a language model for ``inputs.task``)
    and measures it."""
    import numpy as np

    from forgeline.models import Evaluation

    threads = options.threads or _cores()
    kind = modelio.folder_format(folder)
    with _torch_threads(threads):
        runner = _runner(folder, inputs.task, threads)
        parameters, linear = _counts(runner, folder)
        if inputs.task == SEQUENCE_CLASSIFICATION:
            scores = _classification(runner, inputs)
        else:
            loss = _next_token_loss(runner, inputs)
            scores = Evaluation(
                num_examples=sum(len(b["input_ids"]) for b in inputs.eval_batches),
                loss=loss,
                perplexity=perplexity_of(loss),
            )
        singles = _timed(runner, inputs.singles)
        # Each batch's best of three passes: a full batch takes long enough for a passing
        # burst of other work (a Ray worker exiting) to show; the best pass is the model's own.
        rounds = [_timed(runner, inputs.timed_batches, warmup=1 if i else 3) for i in range(3)]
        batches = [min(times) for times in zip(*rounds, strict=True)]
    files = [p for p in Path(folder).rglob("*") if p.is_file()]
    return Measurement(
        format=kind,
        weights_bytes=sum(p.stat().st_size for p in modelio.weight_files(folder)),
        folder_bytes=sum(p.stat().st_size for p in files),
        linear_weight_bytes=linear,
        parameters=parameters,
        latency_p50_ms=float(np.percentile(singles, 50)),
        latency_p95_ms=float(np.percentile(singles, 95)),
        throughput=options.batch_size / float(np.mean(batches)) * 1000.0,
        batch_size=options.batch_size,
        batch_latency_ms=float(np.mean(batches)),
        accuracy=scores.accuracy,
        f1_macro=scores.f1_macro,
        loss=scores.loss,
        num_examples=scores.num_examples,
        perplexity=scores.perplexity,
    )


def _runner(folder: Path, task: str, threads: int) -> modelio.Classifier:
    """Logits of any format's folder: a classifier's, or a language model's per position."""
    if task == SEQUENCE_CLASSIFICATION or modelio.folder_format(folder) == modelio.ONNX:
        return modelio.load_classifier(folder, threads)
    return modelio.TorchClassifier(modelio.load_torch(folder, task=task))


def _log_softmax(logits):
    import numpy as np

    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def _classification(runner: modelio.Classifier, inputs: EvalInputs):
    """Accuracy, macro F1 and the mean cross-entropy of the eval rows."""
    import numpy as np

    from forgeline.models import score_classification

    predicted: list[int] = []
    losses = 0.0
    for batch in inputs.eval_batches:
        logits = runner.logits(batch).astype(np.float64)
        start = len(predicted)
        truth = np.array(inputs.truth[start : start + len(logits)])
        log_probs = _log_softmax(logits)
        losses += float(-log_probs[np.arange(len(truth)), truth].sum())
        predicted += logits.argmax(-1).tolist()
    return score_classification(
        inputs.truth, predicted, inputs.labels, loss=losses / max(len(predicted), 1)
    )


def _next_token_loss(runner: modelio.Classifier, inputs: EvalInputs) -> float:
    """The mean cross-entropy of every real token given the ones before it (the first token of
    a text and the padding predict nothing), over all eval texts: the same number for every
    format, since it is computed here from the logits."""
    import numpy as np

    nll, counted = 0.0, 0
    for batch in inputs.eval_batches:
        logits = runner.logits(batch)
        targets = np.asarray(batch["input_ids"])[:, 1:]
        mask = np.asarray(batch["attention_mask"])[:, 1:].astype(bool)
        for row in range(len(logits)):  # a row at a time: sequence x vocabulary in float64
            log_probs = _log_softmax(logits[row, :-1].astype(np.float64))
            picked = np.take_along_axis(log_probs, targets[row][:, None], axis=-1)[:, 0]
            nll += float(-picked[mask[row]].sum())
            counted += int(mask[row].sum())
    return nll / max(counted, 1)


def _timed(runner, feeds: list[dict[str, Any]], warmup: int = 3) -> list[float]:
    """Milliseconds of each forward pass, after a few untimed ones."""
    for feed in feeds[:warmup]:
        runner.logits(feed)
    out = []
    for feed in feeds:
        start = time.perf_counter()
        runner.logits(feed)
        out.append((time.perf_counter() - start) * 1000.0)
    return out


def _counts(runner, folder: Path) -> tuple[int, int]:
    """(parameters, bytes of the Linear / MatMul weights)."""
    if isinstance(runner, modelio.OnnxClassifier):
        return _onnx_counts(Path(folder) / modelio.ONNX_FILE)
    import torch

    model = runner.model
    parameters = sum(p.numel() for p in model.parameters())
    linear = 0
    for module in model.modules():
        if isinstance(module, torch.ao.nn.quantized.dynamic.Linear):
            weight, bias = module._weight_bias()
            parameters += weight.numel() + (bias.numel() if bias is not None else 0)
            scales = (
                weight.q_per_channel_scales().numel()
                if weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric)
                else 1
            )
            linear += weight.numel() + scales * 12  # int8 values, fp32 scales, int64 zero points
        elif isinstance(module, torch.nn.Linear):
            linear += module.weight.numel() * module.weight.element_size()
    return parameters, linear


# ONNX nodes whose weight input is a lookup table, not a matrix product.
_LOOKUPS = {"Gather", "EmbedLayerNormalization", "QEmbedLayerNormalization"}


def _onnx_counts(path: Path) -> tuple[int, int]:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    looked_up = {name for node in graph.node if node.op_type in _LOOKUPS for name in node.input}
    for node in graph.node:  # a quantized table is dequantized on its way into the lookup
        if node.op_type == "DequantizeLinear" and set(node.output) & looked_up:
            looked_up |= set(node.input)
    parameters = linear = 0
    for init in graph.initializer:
        array = numpy_helper.to_array(init)
        parameters += array.size
        if array.ndim >= 2 and init.name not in looked_up:
            linear += array.nbytes
    return parameters, linear


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


class _torch_threads:
    """Sets torch's intra-op threads for the measurement and restores them after."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def __enter__(self):
        import torch

        self.before = torch.get_num_threads()
        torch.set_num_threads(self.threads)

    def __exit__(self, *exc) -> None:
        import torch

        torch.set_num_threads(self.before)
