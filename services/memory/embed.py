"""Embedding models of memories: the bundled MiniLM, or a model artifact's encoder, through
sentence-transformers (mean pooling over a plain Hugging Face folder), L2-normalized. Loaded
once per source and kept. No gRPC here."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from forgeline import modelio
from forgeline.artifacts import ArtifactStore
from forgeline.errors import FailedPrecondition, InvalidArgument
from forgeline.models import BUILTIN, builtin_path


class Embedders:
    def __init__(self, artifacts: ArtifactStore) -> None:
        self.artifacts = artifacts
        self._loaded: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def folder(self, source: Mapping[str, str]) -> Path:
        """The model folder of a source (checked: safetensors weights, an encoder)."""
        if "builtin" in source:
            if source["builtin"] not in BUILTIN:
                raise InvalidArgument.for_field(
                    "embedding.builtin",
                    f"unknown builtin model {source['builtin']!r}; known: {', '.join(BUILTIN)}",
                )
            return builtin_path(source["builtin"])
        record = self.artifacts.get(source["model_id"])
        fmt = record.metadata.get("format", "hf")
        if record.kind != "model" or fmt != modelio.HF:
            raise FailedPrecondition(
                f"embedding.model_id: {record.id} is a {fmt} {record.kind}; embeddings come from "
                f"a Hugging Face model folder (merge an adapter first)",
                reason="NOT_AN_ENCODER",
                metadata={"field": "embedding.model_id"},
            )
        folder = self.artifacts.verify(record)
        modelio.check_safe(folder, "embedding.model_id")
        return folder

    def model(self, source: Mapping[str, str]):
        key = tuple(sorted(source.items()))[0]
        with self._lock:
            if key not in self._loaded:
                from sentence_transformers import SentenceTransformer

                folder = str(self.folder(source))
                with modelio.CONSTRUCTION:
                    self._loaded[key] = SentenceTransformer(
                        folder, device="cpu", local_files_only=True
                    )
            return self._loaded[key]

    def dimension(self, source: Mapping[str, str]) -> int:
        return int(self.model(source).get_sentence_embedding_dimension())

    def embed(self, source: Mapping[str, str], texts: list[str]):
        return self.model(source).encode(
            texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True
        )
