"""Importing a model made elsewhere: a local GGUF file (llama.cpp's single-file format, how many
pretrained LLMs ship) or a Hugging Face folder becomes a model artifact like the ones training
writes (safetensors weights, the tokenizer with its chat template, the forgeline manifest naming
the task), with lineage to the source file and its digest.

Once per source: the artifact is committed under the source's digest, so the same bytes imported
again (another name, another path, a retry after a restart) return that artifact, and every later
step (training, evaluation, serving) uses the artifact, never the GGUF path. Everything the header
tells (not a GGUF, no architecture, an architecture transformers cannot load, a pickle) is refused
before the weights are read.

In the kernel beside forgeline.models: it is the model layer's way in, and any service may offer it.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgeline import modelio
from forgeline.artifacts import ArtifactRecord, ArtifactStore, Lineage, sha256_path
from forgeline.errors import FailedPrecondition, ForgelineError, InvalidArgument, excerpt
from forgeline.models import (
    CAUSAL_LM,
    MANIFEST,
    SEQ2SEQ,
    SEQUENCE_CLASSIFICATION,
    architecture_problem,
    auto_class,
    load_tokenizer,
)
from forgeline.names import MAX_NAME_CHARS, artifact_name
from forgeline.paths import PathValidator

GGUF, HF_FOLDER = "gguf", "hf"
GGUF_MAGIC = b"GGUF"
# The artifact's request id: the digest of the bytes it was imported from (the cache key).
_CACHE_KEY = "model-import/{}"

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class ImportSource:
    """A source that passed every check its header allows: what it is and what it will become."""

    path: Path  # resolved, inside the data roots
    format: str  # GGUF or HF_FOLDER
    task: str
    architecture: str  # e.g. "LlamaForCausalLM"
    model_type: str  # e.g. "llama"
    display: str  # how messages and lineage name it: relative to its data root


@dataclass(frozen=True)
class ImportedModel:
    model: ArtifactRecord
    cached: bool
    architecture: str
    parameters: int


def default_name(path: Path) -> str:
    """An artifact name from a file or folder name: "SmolLM2-135M-Instruct.Q4_1" for
    "SmolLM2-135M-Instruct.Q4_1.gguf"."""
    stem = path.name[: -len(".gguf")] if path.name.lower().endswith(".gguf") else path.name
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).lstrip("._-")[:MAX_NAME_CHARS]
    return name or "imported-model"


class ModelImporter:
    """Imports GGUF files and Hugging Face folders found inside the data roots as model artifacts,
    once per source digest."""

    def __init__(self, artifacts: ArtifactStore, paths: PathValidator) -> None:
        self.artifacts = artifacts
        self.paths = paths
        # One import at a time: two imports of the same bytes must not both commit.
        self._lock = threading.Lock()

    def inspect(self, raw_path: str, field: str = "source_path") -> ImportSource:
        """Every check that needs no weights: the path, pickles, the GGUF header or the folder's
        config, and the task the architecture fits. Raises naming ``field``."""
        path = self.paths.resolve(raw_path, field)
        display = self.paths.display(path)
        try:
            if path.is_dir():
                return self._inspect_folder(path, field, display)
            if modelio.is_pickle(path):
                raise _pickle(field, path.name)
            return self._inspect_gguf(path, field, display)
        except ForgelineError as exc:  # a loader's message may name a server path
            raise self.paths.redact_error(exc) from None

    def run(
        self,
        raw_path: str,
        output_name: str = "",
        *,
        producer: str,
        operation: str = "",
        progress: Progress | None = None,
        field: str = "source_path",
    ) -> ImportedModel:
        """Imports the source at ``raw_path`` (or returns the artifact of an earlier import of
        the same bytes, ``cached``)."""
        say = progress or (lambda fraction, message: None)
        source = self.inspect(raw_path, field)
        name = artifact_name(output_name, "output_name") if output_name else ""
        say(0.05, f"hashing {source.display}")
        digest = sha256_path(source.path)
        with self._lock:
            found = self.artifacts.find_by_request_id(_CACHE_KEY.format(digest))
            if found is not None:
                self.artifacts.verify(found)
                return _imported(found, cached=True)
            say(0.1, f"loading {source.architecture} from {source.display}")
            with self.artifacts.staging_path() as staged:
                try:
                    parameters = _convert(source, staged, field)
                except ForgelineError as exc:
                    raise self.paths.redact_error(exc) from None
                say(0.8, "committing the model artifact")
                record = self.artifacts.commit_dir(
                    staged,
                    kind="model",
                    name=name or default_name(source.path),
                    metadata=_metadata(source, staged, digest, parameters),
                    lineage=Lineage(
                        producer=producer,
                        operation=operation,
                        config={
                            "source_path": source.display,
                            "source_file": source.path.name,
                            "source_format": source.format,
                            "source_sha256": digest,
                        },
                    ),
                    request_id=_CACHE_KEY.format(digest),
                )
        return _imported(record, cached=False)

    # --- checks -----------------------------------------------------------------------------
    def _inspect_folder(self, path: Path, field: str, display: str) -> ImportSource:
        from transformers import AutoConfig

        if not (path / "config.json").is_file():
            raise InvalidArgument.for_field(
                field,
                f"{display} is neither a GGUF file nor a Hugging Face folder (no config.json)",
            )
        self.paths.walk(path, field)  # no symlink out of the roots
        modelio.check_safe(path, field)  # no pickle anywhere, safetensors weights present
        try:
            config = AutoConfig.from_pretrained(path, local_files_only=True)
        except Exception as exc:  # a config.json transformers cannot read
            raise InvalidArgument.for_field(
                field, f"config.json of {display} cannot be read: {_cause(exc)}"
            ) from None
        task, architecture = _task_of(config, field, "config.json architectures")
        return ImportSource(path, HF_FOLDER, task, architecture, config.model_type, display)

    def _inspect_gguf(self, path: Path, field: str, display: str) -> ImportSource:
        with path.open("rb") as fh:
            magic = fh.read(4)
        if magic != GGUF_MAGIC:
            raise InvalidArgument.for_field(
                field,
                f"{display} is not a GGUF file (its first bytes are not the GGUF magic) "
                "nor a Hugging Face folder",
            )
        architecture = _gguf_architecture(path, field, display)
        from transformers import AutoConfig
        from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

        try:  # transformers maps some names first (qwen2moe -> qwen2_moe): it decides
            config = AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
        except Exception as exc:
            if "not supported" in str(exc):
                raise InvalidArgument.for_field(
                    field,
                    f"general.architecture {excerpt(architecture)} of {display} is not one "
                    "transformers loads from GGUF; it loads: "
                    + ", ".join(GGUF_SUPPORTED_ARCHITECTURES),
                ) from None
            # header fields the architecture needs are missing or malformed
            raise InvalidArgument.for_field(
                field, f"the GGUF header of {display} does not describe a model: {_cause(exc)}"
            ) from None
        task, arch_name = _task_of(config, field, "general.architecture")
        return ImportSource(path, GGUF, task, arch_name, config.model_type, display)


def _gguf_architecture(path: Path, field: str, display: str) -> str:
    """``general.architecture`` from a GGUF header (read without loading a tensor)."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path)
    except Exception as exc:  # truncated, an unknown version, a malformed key-value table
        raise InvalidArgument.for_field(
            field, f"the GGUF header of {display} cannot be read: {_cause(exc)}"
        ) from None
    entry = reader.fields.get("general.architecture")
    if entry is None or not entry.data:
        raise InvalidArgument.for_field(
            field, f"the GGUF header of {display} has no general.architecture: it is not a model"
        )
    if not reader.tensors:
        raise InvalidArgument.for_field(field, f"the GGUF file {display} holds no tensors")
    return bytes(entry.parts[entry.data[0]]).decode("utf-8", errors="replace")


def _task_of(config: Any, field: str, named: str) -> tuple[str, str]:
    """The forgeline task a model's architecture fits (a classifier head, an encoder-decoder,
    a decoder-only LM: forgeline.models.architecture_problem's rule), and its class name."""
    from transformers.models.auto import modeling_auto as auto

    declared = list(getattr(config, "architectures", None) or [])
    for name in declared:
        if name.endswith("ForSequenceClassification"):
            return SEQUENCE_CLASSIFICATION, name
    classes = {
        SEQ2SEQ: auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
        CAUSAL_LM: auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    }
    for task, names in classes.items():
        if not architecture_problem(config, task):
            return task, declared[0] if declared else names[config.model_type]
    raise InvalidArgument.for_field(
        field,
        f"{named}: {architecture_problem(config, CAUSAL_LM)}, nor an encoder-decoder or a "
        "sequence classifier; there is nothing forgeline could train or serve it as",
    )


# --- conversion ------------------------------------------------------------------------------
def _convert(source: ImportSource, output: Path, field: str) -> int:
    """Loads the source (de-quantizing GGUF weights to float32) and writes it to ``output`` as
    a save_pretrained folder with its tokenizer and manifest; its parameter count."""

    if source.format == GGUF:
        from transformers import GgufConfig

        where = {"pretrained_model_name_or_path": source.path.parent, "gguf_file": source.path.name}
        # dequantize=True leaves a plain float32 model, one save_pretrained can write.
        extra: dict[str, Any] = {"quantization_config": GgufConfig(dequantize=True)}
    else:
        where = {"pretrained_model_name_or_path": source.path, "local_files_only": True}
        extra = {}
    tokenizer = load_tokenizer(field, source.display, **where)
    with modelio.CONSTRUCTION:
        model = auto_class(source.task).from_pretrained(**where, **extra)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    parameters = int(model.num_parameters())
    manifest = {
        "task": source.task,
        "total_parameters": parameters,
        "imported_from": {"format": source.format, "file": source.path.name},
    }
    if source.task == SEQUENCE_CLASSIFICATION:
        manifest["labels"] = [model.config.id2label[i] for i in range(model.config.num_labels)]
    Path(output, MANIFEST).write_text(json.dumps(manifest, indent=2))
    modelio.check_safe(output, field)  # what was written is safetensors, never a pickle
    return parameters


def _metadata(source: ImportSource, folder: Path, digest: str, parameters: int) -> dict[str, Any]:
    manifest = json.loads(Path(folder, MANIFEST).read_text())
    return {
        "format": "hf",
        "task": source.task,
        "labels": manifest.get("labels", []),
        "architecture": source.architecture,
        "model_type": source.model_type,
        "total_parameters": parameters,
        "imported": True,
        "source_format": source.format,
        "source_file": source.path.name,
        "source_sha256": digest,
        "chat_template": _has_chat_template(folder),
    }


def _has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").exists() or (folder / "chat_template.json").exists():
        return True
    config = folder / "tokenizer_config.json"
    return config.exists() and bool(json.loads(config.read_text()).get("chat_template"))


def _imported(record: ArtifactRecord, *, cached: bool) -> ImportedModel:
    return ImportedModel(
        model=record,
        cached=cached,
        architecture=record.metadata.get("architecture", ""),
        parameters=int(record.metadata.get("total_parameters", 0)),
    )


def _pickle(field: str, name: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"{field}: {excerpt(name)} is a pickle; forgeline imports safetensors and GGUF weights "
        "only and never executes a pickle",
        reason="PICKLE_REFUSED",
        metadata={"field": field, "file": name},
    )


def _cause(exc: BaseException) -> str:
    """One short line of a loader's error: its type and the start of its message."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {excerpt(first)}" if first else type(exc).__name__
