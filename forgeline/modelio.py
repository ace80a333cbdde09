"""The model folders forgeline's artifacts hold, and the one way to load them.

Formats (``folder_format``):

- ``hf``: a ``save_pretrained`` folder with safetensors weights; any Hugging Face loader reads it.
- ``hf_pruned``: the same with whole attention heads and FFN neurons removed, layer by layer.
  Transformers no longer represents per-layer head counts in a config, so ``forgeline_format.json``
  records each layer's kept heads and FFN width and ``load_torch`` shrinks the modules to those
  shapes before the (strict) safetensors load.
- ``hf_int8``: torch dynamic int8 quantization of the Linear layers, stored in safetensors as the
  int8 values plus their scales and zero points (torch's quantized tensors have no safetensors
  form); ``load_torch`` rebuilds the quantized modules from them.
- ``onnx``: ``model.onnx``, loaded by ONNX Runtime alone.

Every folder also carries its tokenizer and, in ``forgeline_format.json``, the task, the labels
in class-index order and the max length. Weights are only ever read from safetensors or ONNX:
``check_safe`` refuses a folder holding a pickle before anything loads. It is the one check every
service runs on a model folder it reads (a stray ``dummy.safetensors`` beside a malicious
``pytorch_model.bin`` once let the pickle reach ``torch.load``): a file is a pickle by its name
(``.bin``, ``.pt``, ...) or by its content, whatever it is called.
"""

from __future__ import annotations

import io
import json
import os
import pickletools
import re
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgeline.errors import FailedPrecondition

FORMAT_FILE = "forgeline_format.json"
ONNX_FILE = "model.onnx"
HF, HF_PRUNED, HF_INT8, ONNX = "hf", "hf_pruned", "hf_int8", "onnx"
# Suffixes of files that torch.load / pickle would execute: refused whatever they hold.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")
# How far into a file the content check follows a pickle stream (a real one imports within
# its first bytes: torch's and an attacker's alike).
PICKLE_SCAN_BYTES = 1 << 20
# Opcodes pushing the strings a STACK_GLOBAL imports by (module, name).
_STRINGS = frozenset(
    "SHORT_BINUNICODE BINUNICODE BINUNICODE8 UNICODE STRING BINSTRING SHORT_BINSTRING".split()
)
_DOTTED_NAME = re.compile(r"[A-Za-z_][\w.]*")
# transformers loads weights inside ``no_init_weights``, which swaps torch.nn.init's functions and
# PreTrainedModel.init_weights for no-ops process-wide, then puts back what it found. Two loads in
# two threads put back each other's no-ops for good, and a model built from a config meanwhile keeps
# torch.empty's garbage. Every model a forgeline process builds or loads is built under this lock.
CONSTRUCTION = threading.RLock()


def read_format(folder: Path) -> dict[str, Any]:
    path = Path(folder, FORMAT_FILE)
    return json.loads(path.read_text()) if path.exists() else {}


def write_format(folder: Path, values: dict[str, Any]) -> None:
    """Merges ``values`` into the folder's format file (atomically)."""
    merged = {**read_format(folder), **values}
    temporary = Path(folder, FORMAT_FILE + ".tmp")
    temporary.write_text(json.dumps(merged, indent=2))
    os.replace(temporary, Path(folder, FORMAT_FILE))


def folder_format(folder: Path) -> str:
    folder = Path(folder)
    if (folder / ONNX_FILE).exists():
        return ONNX
    return read_format(folder).get("format", HF)


def check_safe(folder: Path, field: str = "model_id") -> None:
    """Refuses a model folder holding a pickle, or holding no safetensors / ONNX weights."""
    folder = Path(folder)
    files = [p for p in folder.rglob("*") if p.is_file()]
    pickles = sorted(p.relative_to(folder).as_posix() for p in files if is_pickle(p))
    if pickles:
        raise FailedPrecondition(
            f"{field}: {pickles[0]} is a pickle; forgeline loads safetensors and ONNX weights "
            f"only and never executes a pickle",
            reason="PICKLE_REFUSED",
            metadata={"field": field, "file": pickles[0]},
        )
    if not any(p.suffix in (".safetensors", ".onnx") for p in files):
        raise FailedPrecondition(
            f"{field}: the folder holds no safetensors or ONNX weights",
            reason="NO_SAFE_WEIGHTS",
            metadata={"field": field},
        )


def is_pickle(path: Path) -> bool:
    """Whether ``path`` is a pickle (what torch.load unpickles), judged by name and content.

    A pickle is: a file named like one (PICKLE_SUFFIXES), whatever it holds; a zip archive with a
    ``.pkl`` member (torch.save's format: ``archive/data.pkl``); a protocol 2+ stream (``\\x80``
    and the protocol, then opcodes); or a headerless (protocol 0/1) stream that imports. The
    opcodes are read with pickletools, which executes nothing, and only as far as they are valid:
    pickle runs a stream's opcodes as it reads them, so a stream broken after its import is still
    a pickle, while a safetensors header whose length begins with ``\\x80\\x02`` is none (the
    bytes after those two are no opcode).
    """
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return True
    with path.open("rb") as f:
        head = f.read(PICKLE_SCAN_BYTES)
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as archive:
                return any(name.endswith(".pkl") for name in archive.namelist())
        except (zipfile.BadZipFile, OSError):
            return False
    return _unpickling_runs_code(head)


def _unpickling_runs_code(data: bytes) -> bool:
    with_protocol = len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5
    count = strings = 0
    try:
        for opcode, arg, _ in pickletools.genops(io.BytesIO(data)):
            count += 1
            if with_protocol and count >= 3:  # the protocol, then two valid opcodes
                return True
            if opcode.name in ("GLOBAL", "INST") and _imports_a_name(arg):
                return True
            if opcode.name == "STACK_GLOBAL" and strings >= 2:  # module and name pushed
                return True
            strings += opcode.name in _STRINGS
            if opcode.name == "STOP":  # a headerless stream of plain data
                return False
    except Exception:  # noqa: BLE001 - pickletools' errors: the valid opcodes end here
        return False
    return False


def _imports_a_name(arg: object) -> bool:
    parts = str(arg).split(" ")
    return len(parts) == 2 and all(_DOTTED_NAME.fullmatch(part) for part in parts)


# --- BERT-style encoders: where the heads and FFN neurons are ----------------------------------


@dataclass
class EncoderLayer:
    """The parts of one transformer layer that structured pruning resizes: the self-attention
    (query / key / value Linears, head count and size) and the modules holding the attention
    output, FFN input and FFN output Linears (each as ``.dense``)."""

    attention: Any
    attention_output: Any
    ffn_in: Any
    ffn_out: Any

    @property
    def head_size(self) -> int:
        return self.attention.attention_head_size

    @property
    def heads(self) -> int:
        return self.attention.query.out_features // self.head_size

    @property
    def neurons(self) -> int:
        return self.ffn_in.dense.out_features


def encoder_layers(model) -> list[EncoderLayer]:
    """The layers of a BERT-style encoder (BERT, RoBERTa, XLM-R, ELECTRA, MiniLM, ...); empty
    when the model is laid out differently."""
    import torch

    base = getattr(model, "base_model", model)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if layers is None:
        return []
    out = []
    for module in layers:
        try:
            found = EncoderLayer(
                attention=module.attention.self,
                attention_output=module.attention.output,
                ffn_in=module.intermediate,
                ffn_out=module.output,
            )
            linears = [
                found.attention.query,
                found.attention.key,
                found.attention.value,
                found.attention_output.dense,
                found.ffn_in.dense,
                found.ffn_out.dense,
            ]
            found.head_size  # noqa: B018 - an AttributeError means another layout
        except AttributeError:
            return []
        if not all(isinstance(linear, torch.nn.Linear) for linear in linears):
            return []
        out.append(found)
    return out


def shapes(model) -> list[dict[str, int]]:
    """Each layer's head count and FFN width."""
    return [{"heads": x.heads, "intermediate": x.neurons} for x in encoder_layers(model)]


def prune(model, keep: list[tuple[list[int], list[int]]]) -> list[dict[str, int]]:
    """Prunes every layer to its (kept heads, kept FFN neurons), physically: smaller Linears.
    Returns the new shapes."""
    import torch

    for layer, (heads, neurons) in zip(encoder_layers(model), keep, strict=True):
        if not heads or not neurons:
            raise ValueError("every layer keeps at least one head and one FFN neuron")
        size = layer.head_size
        rows = torch.tensor([h * size + i for h in sorted(heads) for i in range(size)])
        cells = torch.tensor(sorted(neurons))
        a = layer.attention
        a.query, a.key, a.value = (_slice(x, rows, 0) for x in (a.query, a.key, a.value))
        layer.attention_output.dense = _slice(layer.attention_output.dense, rows, 1)
        layer.ffn_in.dense = _slice(layer.ffn_in.dense, cells, 0)
        layer.ffn_out.dense = _slice(layer.ffn_out.dense, cells, 1)
        _set_heads(layer, len(heads))
    return shapes(model)


def _slice(linear, index, dim: int):
    import torch

    weight = linear.weight.detach().index_select(dim, index)
    out_features, in_features = weight.shape
    new = torch.nn.Linear(in_features, out_features, bias=linear.bias is not None)
    new = new.to(linear.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if linear.bias is not None:
            bias = linear.bias.detach()
            new.bias.copy_(bias.index_select(0, index) if dim == 0 else bias)
    return new


def _resize(layer: EncoderLayer, heads: int, neurons: int) -> None:
    """Gives ``layer`` the shapes of a pruned one (its weights are loaded afterwards)."""
    import torch

    hidden = layer.attention.query.in_features
    width = heads * layer.head_size
    a = layer.attention
    a.query, a.key, a.value = (torch.nn.Linear(hidden, width) for _ in range(3))
    layer.attention_output.dense = torch.nn.Linear(width, hidden)
    layer.ffn_in.dense = torch.nn.Linear(hidden, neurons)
    layer.ffn_out.dense = torch.nn.Linear(neurons, hidden)
    _set_heads(layer, heads)


def _set_heads(layer: EncoderLayer, heads: int) -> None:
    layer.attention.num_attention_heads = heads
    layer.attention.all_head_size = heads * layer.head_size


# --- saving ------------------------------------------------------------------------------------


def save_pruned(model, folder: Path) -> None:
    """Saves a pruned model: its config and safetensors weights, and the layer shapes."""
    model.save_pretrained(folder, safe_serialization=True)
    write_format(folder, {"format": HF_PRUNED, "layers": shapes(model)})


def save_int8(model, folder: Path, *, base_format: str, layers: list | None) -> dict[str, int]:
    """Saves a dynamically quantized model: int8 Linear weights with their scales and zero
    points, every other tensor as it is. Returns the bytes of the quantized weights."""
    import torch
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    quantized: list[str] = []
    int8_bytes = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.ao.nn.quantized.dynamic.Linear):
            weight, bias = module._weight_bias()
            quantized.append(name)
            tensors[f"{name}.weight"] = weight.int_repr().contiguous()
            if weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
                scale = weight.q_per_channel_scales().float()
                zero = weight.q_per_channel_zero_points().to(torch.int64)
            else:
                scale = torch.tensor([weight.q_scale()], dtype=torch.float32)
                zero = torch.tensor([weight.q_zero_point()], dtype=torch.int64)
            tensors[f"{name}.weight_scale"] = scale
            tensors[f"{name}.weight_zero_point"] = zero
            if bias is not None:
                tensors[f"{name}.bias"] = bias.detach().contiguous()
            int8_bytes += weight.numel() + scale.numel() * 4 + zero.numel() * 8
    for name, tensor in model.state_dict().items():
        if isinstance(tensor, torch.Tensor) and not tensor.is_quantized:
            if not any(name.startswith(q + ".") for q in quantized):
                tensors[name] = tensor.detach().contiguous()
    model.config.save_pretrained(folder)
    save_file(tensors, str(Path(folder, "model.safetensors")), metadata={"format": "pt"})
    write_format(
        folder,
        {
            "format": HF_INT8,
            "quantized_modules": quantized,
            "base_format": base_format,
            "layers": layers or [],
        },
    )
    return {"int8_bytes": int8_bytes}


# --- loading -----------------------------------------------------------------------------------


def load_torch(folder: Path, *, task: str = "", eager_attention: bool = False):
    """A model from an hf, hf_pruned or hf_int8 folder, of ``task``'s model class (a causal LM
    for causal_lm and instruction); no ``task``: the one the format file records, else a
    sequence classifier."""
    folder = Path(folder)
    check_safe(folder)
    with CONSTRUCTION:
        return _load_torch(folder, task or read_format(folder).get("task", ""), eager_attention)


def _load_torch(folder: Path, task: str, eager_attention: bool):
    from transformers import AutoConfig

    from forgeline.models import auto_class

    model_class = auto_class(task or "sequence_classification")
    kind = folder_format(folder)
    extra = {"attn_implementation": "eager"} if eager_attention else {}
    if kind == HF:
        return model_class.from_pretrained(
            folder, local_files_only=True, use_safetensors=True, **extra
        ).eval()
    if kind not in (HF_PRUNED, HF_INT8):
        raise FailedPrecondition(
            f"{folder.name} is an {kind} model; torch loads hf, hf_pruned and hf_int8 folders",
            reason="NOT_A_TORCH_MODEL",
        )
    fmt = read_format(folder)
    config = AutoConfig.from_pretrained(folder, local_files_only=True, **extra)
    model = model_class.from_config(config)
    layers = fmt.get("layers") or []
    if layers:
        for layer, shape in zip(encoder_layers(model), layers, strict=True):
            _resize(layer, shape["heads"], shape["intermediate"])
    if kind == HF_INT8:
        return _load_int8(model, folder, fmt)
    _load_strict(model, folder)
    return model.eval()


def _load_strict(model, folder: Path) -> None:
    from safetensors.torch import load_file

    state = load_file(str(Path(folder, "model.safetensors")))
    _check_keys(folder, model, model.state_dict(), state)
    model.load_state_dict(state, strict=False)


def _check_keys(folder: Path, model, expected: dict, found: dict) -> None:
    """Refuses weights that do not fit the model built from the recorded shapes (tied weights
    may be absent: they are loaded through their twin)."""
    tied = getattr(model, "_tied_weights_keys", None) or {}
    missing = sorted(k for k in expected if k not in found and k not in tied)
    unexpected = sorted(set(found) - set(expected))
    resized = sorted(
        f"{k} {tuple(found[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in found and tuple(found[k].shape) != tuple(v.shape)
    )
    if missing or unexpected or resized:
        raise FailedPrecondition(
            f"{folder.name}: the weights do not fit the recorded shapes (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}, other shapes {resized[:3]})",
            reason="WEIGHTS_MISMATCH",
        )


def _load_int8(model, folder: Path, fmt: dict[str, Any]):
    import torch
    from safetensors.torch import load_file

    state = load_file(str(Path(folder, "model.safetensors")))
    model = torch.ao.quantization.quantize_dynamic(
        model.eval(), {torch.nn.Linear}, dtype=torch.qint8
    )
    modules = dict(model.named_modules())
    consumed = set()
    for name in fmt["quantized_modules"]:
        module = modules.get(name)
        if not isinstance(module, torch.ao.nn.quantized.dynamic.Linear):
            raise FailedPrecondition(
                f"{folder.name}: {name} is not a quantized Linear in this architecture",
                reason="WEIGHTS_MISMATCH",
            )
        values = state[f"{name}.weight"]
        scale = state[f"{name}.weight_scale"].double()
        zero = state[f"{name}.weight_zero_point"]
        if scale.numel() == 1:
            weight = torch._make_per_tensor_quantized_tensor(values, float(scale[0]), int(zero[0]))
        else:
            weight = torch._make_per_channel_quantized_tensor(values, scale, zero, 0)
        bias = state.get(f"{name}.bias")
        module.set_weight_bias(weight, bias)
        consumed |= {f"{name}.weight", f"{name}.weight_scale", f"{name}.weight_zero_point"}
        consumed |= {f"{name}.bias"} if bias is not None else set()
    prefixes = tuple(name + "." for name in fmt["quantized_modules"])
    expected = {
        k: v
        for k, v in model.state_dict().items()
        if isinstance(v, torch.Tensor) and not k.startswith(prefixes)
    }
    rest = {k: v for k, v in state.items() if k not in consumed}
    _check_keys(folder, model, expected, rest)
    with torch.no_grad():
        for key, value in rest.items():
            expected[key].copy_(value)
    return model.eval()


# --- running: one interface over torch and ONNX Runtime ----------------------------------------


class Classifier:
    """Logits for a tokenized batch (numpy arrays by input name), whatever the format."""

    input_names: tuple[str, ...] = ()

    def logits(self, inputs: dict[str, Any]):
        raise NotImplementedError


class TorchClassifier(Classifier):
    def __init__(self, model) -> None:
        import inspect

        self.model = model.eval()
        accepted = inspect.signature(model.forward).parameters
        self.input_names = tuple(
            n for n in ("input_ids", "attention_mask", "token_type_ids") if n in accepted
        )

    def logits(self, inputs: dict[str, Any]):
        import torch

        feed = {k: torch.as_tensor(inputs[k]) for k in self.input_names if k in inputs}
        with torch.inference_mode():
            return self.model(**feed).logits.float().numpy()


class OnnxClassifier(Classifier):
    def __init__(self, path: Path, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = tuple(i.name for i in self.session.get_inputs())

    def logits(self, inputs: dict[str, Any]):
        import numpy as np

        ids = np.asarray(inputs["input_ids"], dtype=np.int64)
        feed = {
            k: np.asarray(inputs[k], dtype=np.int64) if k in inputs else np.zeros_like(ids)
            for k in self.input_names
        }
        return self.session.run(None, feed)[0]


def load_classifier(folder: Path, threads: int = 0) -> Classifier:
    """A runnable classifier from any format's folder."""
    folder = Path(folder)
    if folder_format(folder) == ONNX:
        check_safe(folder)
        return OnnxClassifier(folder / ONNX_FILE, threads)
    return TorchClassifier(load_torch(folder))  # which checks the folder itself


def weight_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in Path(folder).rglob("*") if p.suffix in (".safetensors", ".onnx", ".data")
    )


def classifier_folder(artifacts, model_id: str, field: str = "model_id") -> Path:
    """The verified folder of a text-classification model artifact in any runnable format (HF,
    pruned, int8, ONNX): what a safety check's or a deployment's model id resolves to. An unknown
    id, an artifact that is not a model (an adapter must be merged into its base first) or a
    folder holding a pickle is refused naming ``field``."""
    from forgeline.errors import InvalidArgument, NotFound

    if not model_id:
        raise InvalidArgument.for_field(field, "a model artifact id is required")
    try:
        record = artifacts.get(model_id)
    except NotFound as exc:
        raise InvalidArgument.for_field(field, f"no model artifact {model_id!r}") from exc
    if record.kind != "model":
        hint = " (merge the adapter into its base first)" if record.kind == "adapter" else ""
        raise InvalidArgument.for_field(
            field, f"{record.id} is a {record.kind} artifact, not a model{hint}"
        )
    task = record.metadata.get("task") or "sequence_classification"
    if task != "sequence_classification":
        raise InvalidArgument.for_field(
            field, f"{record.id} is a {task} model, not a text classifier"
        )
    folder = artifacts.verify(record)
    check_safe(folder, field)
    return folder


def safety_context(artifacts):
    """The SafetyContext a service gives its safety checks: model ids resolve in ``artifacts``
    through ``classifier_folder``."""
    from functools import partial

    from forgeline.registry import SafetyContext

    return SafetyContext(model_folder=partial(classifier_folder, artifacts))
