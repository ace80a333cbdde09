"""The serving service's domain: which models may be served, loading them, the live
deployments with their safety policy and micro-batcher, and the specs that outlive a restart.
No gRPC here.

A deployment serves one of:

- a sequence-classification model artifact (``hf``, ``hf_pruned``, ``hf_int8`` or ``onnx``),
  run by ``forgeline.modelio``;
- PEFT adapters on one base model (``peft``): the base is loaded once and every adapter added
  to it; one forward pass serves a micro-batch whose texts chose different adapters (PEFT's
  mixed-batch ``adapter_names``, which also switches the classifier head each adapter trained);
- a generative model (causal LM, instruction or seq2seq: an HF folder, or PEFT adapters on one,
  each request choosing its adapter), answering Generate through ``generate.py``.

Only artifact ids (or names) are accepted, never a path, and every folder is refused if it
holds a pickle (``modelio.check_safe``) before anything reads it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from forgeline import modelio
from forgeline.artifacts import ArtifactRecord, ArtifactStore
from forgeline.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Violations,
)
from forgeline.generation import MAX_NEW_TOKENS
from forgeline.logging import get_logger
from forgeline.models import (
    GENERATIVE_TASKS,
    SEQUENCE_CLASSIFICATION,
    ModelRepository,
    positions_of,
)
from forgeline.policy import Policy, PolicyLoader, Verdict
from forgeline.services.serving.batcher import BatchingBounds, MicroBatcher
from forgeline.services.serving.continuous import DecodeLoop, continuous_batching
from forgeline.services.serving.generate import (
    DEFAULT_MAX_NEW_TOKENS,
    Batched,
    Event,
    Failed,
    Finished,
    GenerateInput,
    GenerationRun,
    GenerativeModel,
    OutputCheck,
    finish_batched,
)

log = get_logger(__name__)

NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
PEFT = "peft"
# The name an adapter given as model_id is served under (PEFT's own default name).
DEFAULT_ADAPTER = "default"
# PEFT's name for "no adapter" in a mixed batch.
PEFT_BASE = "__base__"
DEFAULT_BATCH, MAX_BATCH = 32, 256
DEFAULT_WAIT_MS, MAX_WAIT_MS = 5.0, 1000.0
DEFAULT_MAX_LENGTH, MAX_LENGTH = 128, 8192
# Most texts in one forward pass of a micro-batch (see ServedModel.probabilities): measured on
# MiniLM on 2 CPU cores, sorted sub-batches of 4-8 cost about 4.5 ms a text, against 10 ms one
# by one and 7-8 ms in one padded batch of 16-32.
LENGTH_BUCKET = 8
# Requests one deployment holds waiting; more are refused (RESOURCE_EXHAUSTED), so a flood
# cannot grow memory without bound.
MAX_QUEUED = 4096
# A stream's output rules judge the text produced so far after every this many tokens (1: no
# token is sent before the rules saw it). Measured on 2 shared CPU cores: a regex rule on 4,000
# characters costs 6 us, against 13-18 ms per token of the 2-layer test llama; 1,000 streamed
# tokens took 13.5 ms/token judged every token, 17.9 every 8, 18.6 unjudged (machine noise).
# A model-based output rule costs far more: a policy with one judges every token all the same.
OUTPUT_CHECK_EVERY = 1
LOADING, SERVING, FAILED = "loading", "serving", "failed"
BLOCKED_REQUEST = "blocked_request"
INPUT_STAGE, OUTPUT_STAGE = "input", "output"

# record(kind, subject, details) -> the audit event's id.
AuditRecorder = Callable[[str, str, dict[str, Any]], str]


@dataclass(frozen=True)
class DeploySpec:
    """A deploy request in domain terms (JSON-able: it is what a restart deploys again)."""

    name: str
    model_id: str
    adapters: dict[str, str] = field(default_factory=dict)
    default_adapter: str = ""
    # What PolicyLoader.load takes: YAML text, a dict of the SafetyPolicy shape, or None.
    policy: dict[str, Any] | str | None = None
    max_batch_size: int = 0
    max_wait_ms: float = 0.0
    max_length: int = 0
    # Generative deployments: the most new tokens a request may ask for (0: the default).
    max_new_tokens: int = 0


@dataclass(frozen=True)
class ModelPlan:
    """What is loaded: a model folder, or a base folder and adapter folders by name."""

    format: str
    folder: Path
    model_id: str
    labels: tuple[str, ...]
    max_length: int
    adapters: dict[str, Path] = field(default_factory=dict)
    adapter_ids: dict[str, str] = field(default_factory=dict)
    # The adapter a request naming none gets; "" (the base model) only for a base model id.
    default_adapter: str = ""
    task: str = SEQUENCE_CLASSIFICATION
    # Generative models: tokens the model reads at most (0: unknown), new tokens per request.
    window: int = 0
    max_new_tokens: int = 0

    @property
    def generative(self) -> bool:
        return self.task in GENERATIVE_TASKS


@dataclass(frozen=True)
class DeployPlan:
    spec: DeploySpec
    model: ModelPlan
    policy: Policy
    bounds: BatchingBounds


@dataclass(frozen=True)
class Request:
    text: str
    adapter: str


@dataclass(frozen=True)
class Refusal:
    """Why a text got no answer: the stage and rule that blocked it and its audit event."""

    stage: str
    rule: str
    message: str
    audit_event: str


@dataclass(frozen=True)
class Answer:
    """One text's outcome: the prediction (label, score, every class's probability), the text
    the model saw, the answer after the output rules, both verdicts; or the refusal."""

    adapter: str
    input_verdict: Verdict
    output_verdict: Verdict | None = None
    label: str = ""
    score: float = 0.0
    probabilities: dict[str, float] = field(default_factory=dict)
    output: str = ""
    refusal: Refusal | None = None

    @property
    def model_input(self) -> str:
        return self.input_verdict.text


# --- models ------------------------------------------------------------------------------------


class ServedModel:
    """Class probabilities for texts, each with the adapter it chose."""

    def __init__(self, plan: ModelPlan, tokenizer) -> None:
        self.plan, self.tokenizer = plan, tokenizer

    def probabilities(self, texts: Sequence[str], adapters: Sequence[str]):
        """One row per text, in order. A micro-batch runs as forward passes of up to
        LENGTH_BUCKET texts of similar token counts: on a CPU every padding token costs as much
        as a real one, and a batch padded to its longest text can cost more than the texts
        one by one."""
        import numpy as np

        if len(texts) <= LENGTH_BUCKET:
            return self._forward(texts, adapters)
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.plan.max_length)
        order = sorted(range(len(texts)), key=lambda i: len(encoded["input_ids"][i]))
        out = np.empty((len(texts), len(self.plan.labels)), np.float32)
        for start in range(0, len(order), LENGTH_BUCKET):
            bucket = order[start : start + LENGTH_BUCKET]
            out[bucket] = self._forward([texts[i] for i in bucket], [adapters[i] for i in bucket])
        return out

    def _forward(self, texts: Sequence[str], adapters: Sequence[str]):
        raise NotImplementedError

    def _tokenize(self, texts: Sequence[str], tensors: str):
        return self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.plan.max_length,
            return_tensors=tensors,
        )


class PlainModel(ServedModel):
    """A classifier folder in any runnable format (torch or ONNX Runtime)."""

    def __init__(self, plan: ModelPlan, tokenizer, classifier: modelio.Classifier) -> None:
        super().__init__(plan, tokenizer)
        self.classifier = classifier

    def _forward(self, texts: Sequence[str], adapters: Sequence[str]):
        return _softmax(self.classifier.logits(dict(self._tokenize(texts, "np"))))


class AdapterModel(ServedModel):
    """PEFT adapters on one base model; a batch may mix adapters (and the base itself)."""

    def __init__(self, plan: ModelPlan, tokenizer, model) -> None:
        import inspect

        super().__init__(plan, tokenizer)
        self.model = model.eval()
        accepted = inspect.signature(model.get_base_model().forward).parameters
        self.input_names = [
            n for n in ("input_ids", "attention_mask", "token_type_ids") if n in accepted
        ]

    def _forward(self, texts: Sequence[str], adapters: Sequence[str]):
        import torch

        batch = self._tokenize(texts, "pt")
        feed = {k: batch[k] for k in self.input_names if k in batch}
        names = [a or PEFT_BASE for a in adapters]
        with torch.inference_mode():
            logits = self.model(**feed, adapter_names=names).logits
        return _softmax(logits.float().numpy())


def _softmax(logits):
    import numpy as np

    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _is_path(ref: str) -> bool:
    return any(c in ref for c in "/\\") or ref.startswith((".", "~")) or ref != ref.strip()


class ModelPlanner:
    """Checks what a spec asks to serve (every id, format, shared base and label set) without
    reading weights, and loads what a plan names."""

    def __init__(self, artifacts: ArtifactStore, models: ModelRepository) -> None:
        self._artifacts, self._models = artifacts, models

    def plan(self, spec: DeploySpec) -> ModelPlan:
        record = self._record(spec.model_id, "model_id")
        if record.metadata.get("task") in GENERATIVE_TASKS:
            return self._plan_generative(spec, record)
        if record.kind == "adapter":
            if spec.adapters.get(DEFAULT_ADAPTER, spec.model_id) != spec.model_id:
                raise InvalidArgument.for_field(
                    f'adapters["{DEFAULT_ADAPTER}"]',
                    f"the adapter given as model_id is served as {DEFAULT_ADAPTER!r}; name "
                    f"this one differently",
                )
            adapters = {DEFAULT_ADAPTER: spec.model_id, **spec.adapters}
            return self._plan_adapters(spec, adapters, base=None)
        folder = modelio.classifier_folder(self._artifacts, spec.model_id, "model_id")
        if spec.adapters:
            return self._plan_adapters(spec, dict(spec.adapters), base=(record, folder))
        if spec.default_adapter:
            raise InvalidArgument.for_field(
                "default_adapter", f"{spec.model_id} is served without adapters; leave it empty"
            )
        fmt = modelio.folder_format(folder)
        return ModelPlan(
            format=fmt,
            folder=folder,
            model_id=spec.model_id,
            labels=self._labels(record, folder, "model_id"),
            max_length=self._max_length(spec, record, folder),
        )

    def _plan_generative(self, spec: DeploySpec, record: ArtifactRecord) -> ModelPlan:
        """A generative model artifact, or adapters on one base (an adapter as model_id is
        served as "default"); every adapter must share the base and its task family."""
        task = record.metadata["task"]
        adapters: dict[str, str] = dict(spec.adapters)
        if record.kind == "adapter":
            if adapters.get(DEFAULT_ADAPTER, spec.model_id) != spec.model_id:
                raise InvalidArgument.for_field(
                    f'adapters["{DEFAULT_ADAPTER}"]',
                    f"the adapter given as model_id is served as {DEFAULT_ADAPTER!r}; name "
                    f"this one differently",
                )
            adapters = {DEFAULT_ADAPTER: spec.model_id, **adapters}
            base_record = None
            base = self._models.adapter_base(
                self._models.model_record(spec.model_id, formats=("peft_adapter",))
            )
        else:
            base_record = self._models.model_record(
                spec.model_id, formats=(modelio.HF, modelio.HF_PRUNED, modelio.HF_INT8)
            )
            base = self._artifacts.verify(base_record)
        modelio.check_safe(base, "model_id")
        folders: dict[str, Path] = {}
        ids: dict[str, str] = {}
        for name, ref in adapters.items():
            where = "model_id" if ref == spec.model_id else f'adapters["{name}"]'
            if not NAME.match(name):
                raise InvalidArgument.for_field(
                    where, f"adapter name {name!r}: lowercase letters, digits and '-'"
                )
            self._record(ref, where)
            found = self._models.model_record(ref, where, formats=("peft_adapter",))
            its_task = found.metadata["task"]
            if (its_task == "seq2seq") != (task == "seq2seq") or its_task not in GENERATIVE_TASKS:
                raise InvalidArgument.for_field(
                    where, f"{found.id} is a {its_task} adapter; this base is a {task} model"
                )
            if self._models.adapter_base(found, where).resolve() != base.resolve():
                raise InvalidArgument.for_field(
                    where,
                    f"{found.id} was trained on another base model than model_id "
                    f"{spec.model_id}; adapters served together share one base",
                )
            folders[name] = self._artifacts.verify(found)
            modelio.check_safe(folders[name], where)
            ids[name] = found.id
        default = spec.default_adapter or ("" if base_record else DEFAULT_ADAPTER)
        if default and default not in folders:
            raise InvalidArgument.for_field(
                "default_adapter",
                f"no adapter {default!r}; the adapters are {', '.join(sorted(folders)) or 'none'}",
            )
        if spec.max_length:
            raise InvalidArgument.for_field(
                "max_sequence_length",
                "a generative deployment reads up to its model's window; leave it 0",
            )
        return ModelPlan(
            format=PEFT if folders else modelio.folder_format(base),
            folder=base,
            model_id=base_record.id
            if base_record
            else record.metadata.get("base_artifact_id") or spec.model_id,
            labels=(),
            max_length=0,
            adapters=folders,
            adapter_ids=ids,
            default_adapter=default,
            task=task,
            window=positions_of(SimpleNamespace(**_config(base))),
            max_new_tokens=spec.max_new_tokens or DEFAULT_MAX_NEW_TOKENS,
        )

    def _record(self, ref: str, field_path: str) -> ArtifactRecord:
        if not ref:
            raise InvalidArgument.for_field(
                field_path, "a model or adapter artifact id is required"
            )
        if _is_path(ref):
            raise InvalidArgument.for_field(
                field_path,
                f"{ref!r} looks like a path; give an artifact id or name (models are served "
                f"from the artifact store only)",
            )
        try:
            record = self._artifacts.get(ref)
        except NotFound as exc:
            raise InvalidArgument.for_field(
                field_path, f"no model or adapter artifact {ref!r}"
            ) from exc
        if record.kind not in ("model", "adapter"):
            raise InvalidArgument.for_field(
                field_path, f"{record.id} is a {record.kind} artifact, not a model or adapter"
            )
        return record

    def _plan_adapters(
        self,
        spec: DeploySpec,
        adapters: dict[str, str],
        base: tuple[ArtifactRecord, Path] | None,
    ) -> ModelPlan:
        base_record, base_folder = base or (None, None)
        if base_folder is not None and modelio.folder_format(base_folder) not in (
            modelio.HF,
            modelio.HF_PRUNED,
        ):
            raise InvalidArgument.for_field(
                "model_id",
                f"{spec.model_id} is a {modelio.folder_format(base_folder)} model; adapters "
                f"are served on an hf base",
            )
        folders: dict[str, Path] = {}
        labels: tuple[str, ...] | None = None
        first = ""
        records: dict[str, ArtifactRecord] = {}
        for name, ref in adapters.items():
            where = "model_id" if ref == spec.model_id and not base else f'adapters["{name}"]'
            if not NAME.match(name):
                raise InvalidArgument.for_field(
                    where, f"adapter name {name!r}: lowercase letters, digits and '-'"
                )
            record, folder, its_base = self._adapter(ref, where)
            if base_folder is None:
                base_folder, first = its_base, name
            elif its_base.resolve() != base_folder.resolve():
                other = f'adapters["{first}"]' if first else f"model_id {spec.model_id}"
                raise InvalidArgument.for_field(
                    where,
                    f"{record.id} was trained on another base model than {other}; adapters "
                    f"served together share one base",
                )
            found = tuple(record.metadata.get("labels") or ())
            if not found:
                raise InvalidArgument.for_field(where, f"{record.id} records no labels")
            if labels is not None and found != labels:
                raise InvalidArgument.for_field(
                    where, f"{record.id} predicts {list(found)}, the others {list(labels)}"
                )
            labels, folders[name], records[name] = found, folder, record
        # Without a base model id the base's own head is untrained: an adapter is the default.
        default = spec.default_adapter or ("" if base_record else DEFAULT_ADAPTER)
        if default and default not in folders:
            raise InvalidArgument.for_field(
                "default_adapter",
                f"no adapter {default!r}; the adapters are {', '.join(sorted(folders))}",
            )
        chosen = records[default] if default else next(iter(records.values()))
        return ModelPlan(
            format=PEFT,
            folder=base_folder,
            model_id=base_record.id
            if base_record
            else records[first].metadata.get("base_artifact_id") or spec.model_id,
            labels=labels,
            max_length=self._max_length(spec, chosen, base_folder),
            adapters=folders,
            adapter_ids={name: records[name].id for name in folders},
            default_adapter=default,
        )

    def _adapter(self, ref: str, where: str) -> tuple[ArtifactRecord, Path, Path]:
        """A classifier adapter's record, its verified folder and its base's folder (neither
        holding a pickle)."""
        self._record(ref, where)
        record = self._models.model_record(ref, where, formats=("peft_adapter",))
        if record.metadata["task"] != SEQUENCE_CLASSIFICATION:
            raise InvalidArgument.for_field(
                where, f"{record.id} is a {record.metadata['task']} adapter, not a classifier"
            )
        folder = self._artifacts.verify(record)
        modelio.check_safe(folder, where)
        base = self._models.adapter_base(record, where)
        modelio.check_safe(base, where)
        return record, folder, base

    @staticmethod
    def _labels(record: ArtifactRecord, folder: Path, field_path: str) -> tuple[str, ...]:
        """The class names in index order: the artifact's record, else the folder's format
        file, else its config's id2label."""
        labels = record.metadata.get("labels") or modelio.read_format(folder).get("labels")
        if not labels:
            config = _config(folder)
            id2label = config.get("id2label") or {}
            labels = [id2label[k] for k in sorted(id2label, key=int)]
        if not labels:
            raise InvalidArgument.for_field(field_path, f"{record.id} records no class labels")
        return tuple(str(label) for label in labels)

    @staticmethod
    def _max_length(spec: DeploySpec, record: ArtifactRecord, folder: Path) -> int:
        """The request's, else the model's training max_length, else 128 — within the
        positions the model has."""
        positions = _config(folder).get("max_position_embeddings") or MAX_LENGTH
        if spec.max_length > positions:
            raise InvalidArgument.for_field(
                "max_sequence_length",
                f"{spec.max_length} tokens is more than the model's {positions} positions",
            )
        trained = int(record.metadata.get("max_length") or DEFAULT_MAX_LENGTH)
        return spec.max_length or min(trained, positions)

    def load(self, plan: ModelPlan) -> ServedModel | GenerativeModel:
        from transformers import AutoTokenizer

        if plan.generative:
            return self._load_generative(plan)
        # Folders were checked by plan(); the loaders check them again right before reading.
        tokenizer = AutoTokenizer.from_pretrained(plan.folder, local_files_only=True)
        if plan.format != PEFT:
            return PlainModel(plan, tokenizer, modelio.load_classifier(plan.folder))
        from peft import PeftModel

        from forgeline.models import load_model

        for folder in (plan.folder, *plan.adapters.values()):
            modelio.check_safe(folder)
        (first, folder), *rest = plan.adapters.items()
        with modelio.CONSTRUCTION:
            base = load_model(SEQUENCE_CLASSIFICATION, str(plan.folder), list(plan.labels))
            model = PeftModel.from_pretrained(base, folder, adapter_name=first)
            for name, folder in rest:
                model.load_adapter(folder, adapter_name=name)
        return AdapterModel(plan, tokenizer, model)

    @staticmethod
    def _load_generative(plan: ModelPlan) -> GenerativeModel:
        from forgeline.models import load_model, load_tokenizer

        tokenizer = load_tokenizer(
            "model_id",
            plan.model_id,
            pretrained_model_name_or_path=plan.folder,
            local_files_only=True,
        )
        if not plan.adapters:
            return GenerativeModel(
                plan, tokenizer, modelio.load_torch(plan.folder, task=plan.task), adapters=False
            )
        from peft import PeftModel

        for folder in (plan.folder, *plan.adapters.values()):
            modelio.check_safe(folder)
        (first, folder), *rest = plan.adapters.items()
        with modelio.CONSTRUCTION:
            base = load_model(plan.task, str(plan.folder), [])
            model = PeftModel.from_pretrained(base, folder, adapter_name=first)
            for name, folder in rest:
                model.load_adapter(folder, adapter_name=name)
        return GenerativeModel(plan, tokenizer, model, adapters=True)


def in_passing_thread(work: Callable[[], Any], name: str) -> Any:
    """``work()`` in a thread of its own that ends with it (its exception raised here).

    torch's parallel CPU ops give every thread that runs them an OpenMP worker pool that lives
    as long as the thread. Once a process holds more pooled workers than it has CPUs, libgomp
    stops spinning between parallel regions (its throttled spin count) and each op pays a
    futex wake-up: a long-lived thread that once loaded and warmed up a model (the operation
    thread) made every later decode pass ~15% slower. Loading here leaves no pool behind."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # raised in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _drop(event: Event) -> None:
    pass


class _Mailbox:
    """Hands events from generation threads to one event loop's queues, waking the loop once
    per burst: a decode pass that yields a token for each of its rows costs the loop one
    wakeup, not one per row."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: list[tuple[asyncio.Queue, Event]] = []

    def sender(self, queue: asyncio.Queue) -> Callable[[Event], None]:
        def send(event: Event) -> None:
            with self._lock:
                self._pending.append((queue, event))
                if len(self._pending) > 1:
                    return  # a wakeup is already on its way
            try:
                self._loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:  # the loop is gone: nobody listens
                pass

        return send

    def _deliver(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for queue, event in pending:
            queue.put_nowait(event)


_MAILBOXES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Mailbox] = (
    weakref.WeakKeyDictionary()
)


def _mailbox(loop: asyncio.AbstractEventLoop) -> _Mailbox:
    """The loop's mailbox (looked up and made on the loop's own thread)."""
    found = _MAILBOXES.get(loop)
    if found is None:
        found = _MAILBOXES[loop] = _Mailbox(loop)
    return found


def _config(folder: Path) -> dict[str, Any]:
    path = Path(folder, "config.json")
    return json.loads(path.read_text()) if path.exists() else {}


# --- deployments -------------------------------------------------------------------------------


class Deployment:
    """One live deployment: LOADING until its model and policy are loaded, then SERVING (or
    FAILED, with why). Answers micro-batches and counts what it answered and refused."""

    def __init__(
        self,
        spec: DeploySpec,
        create_time: float,
        executor: ThreadPoolExecutor,
        audit: AuditRecorder,
        max_generations: int,
    ) -> None:
        self.spec, self.name, self.create_time = spec, spec.name, create_time
        self.state, self.error = LOADING, ""
        self.plan: DeployPlan | None = None
        self.model: ServedModel | GenerativeModel | None = None
        # Generations running now (their threads alive) and the most allowed at once.
        self.generations, self.max_generations = 0, max_generations
        self._generations_lock = threading.Lock()
        self.batcher: MicroBatcher[Request, Answer] | None = None
        # A decoder-only generative deployment's continuous batcher (None: batching off, or a
        # model it cannot serve).
        self.decoder: DecodeLoop | None = None
        self.loaded: Future[None] = Future()  # done when loading ended, either way
        self.load_seconds = 0.0
        self.requests = self.blocked = 0
        self._executor, self._audit = executor, audit

    @property
    def batches(self) -> int:
        """Micro-batches run, plus the decode loop's forward passes."""
        passes = self.decoder.stats.passes if self.decoder else 0
        return (self.batcher.stats.batches if self.batcher else 0) + passes

    @property
    def batched_rows(self) -> int:
        """Sequences the decode loop's passes advanced (rows / passes: its mean batch)."""
        return self.decoder.stats.rows if self.decoder else 0

    def load(self, planner: Deployments) -> None:
        """Plans and loads the model and policy; FAILED (and the error raised) otherwise."""
        start = time.perf_counter()
        try:
            plan = planner.plan(self.spec)
            self.model = in_passing_thread(
                lambda: self._loaded_and_warm(planner, plan), f"load-{self.name}"
            )
        except BaseException as exc:
            self.state, self.error = FAILED, str(exc) or type(exc).__name__
            self.loaded.set_result(None)
            raise
        self.plan, self.load_seconds = plan, time.perf_counter() - start
        # A generative deployment's batcher groups an encoder-decoder's unary greedy requests;
        # a decoder-only model's requests share its decode loop (generate.py, continuous.py).
        run = self.model.generate_batch if plan.model.generative else self.answer
        self.batcher = MicroBatcher(self.name, run, self._executor, plan.bounds)
        if (
            plan.model.generative
            and plan.bounds.max_batch_size > 1
            and continuous_batching(self.model)
        ):
            self.decoder = DecodeLoop(self.model, self.name, plan.bounds.max_batch_size)
        self.state = SERVING
        self.loaded.set_result(None)

    @staticmethod
    def _loaded_and_warm(planner: Deployments, plan: Any) -> ServedModel | GenerativeModel:
        model = planner.models.load(plan.model)
        if isinstance(model, GenerativeModel):
            model.warm_up()
        else:
            model.probabilities(["warm up"], [plan.model.default_adapter])
        return model

    def adapter(self, requested: str) -> str:
        """The adapter a request gets ("" for the base model)."""
        model = self.plan.model
        if not requested:
            return model.default_adapter
        if requested not in model.adapters:
            served = ", ".join(sorted(model.adapters)) or "none (it serves one model)"
            raise InvalidArgument.for_field(
                "adapter",
                f"deployment {self.name!r} has no adapter {requested!r}; its adapters: {served}",
            )
        return requested

    def _check_serving(self, generative: bool) -> None:
        if self.state != SERVING:
            raise FailedPrecondition(
                f"deployment {self.name!r} failed to load: {self.error}",
                reason="DEPLOYMENT_FAILED",
                metadata={"deployment": self.name},
            )
        if self.plan.model.generative != generative:
            task = self.plan.model.task
            use = "Predict" if generative else "Generate"
            raise FailedPrecondition(
                f"deployment {self.name!r} serves a {task} model; call {use}",
                reason="NOT_GENERATIVE" if generative else "NOT_A_CLASSIFIER",
                metadata={"deployment": self.name},
            )

    def submit(self, texts: Sequence[str], adapter: str) -> list[asyncio.Future]:
        """Queues the texts for the micro-batcher (synchronously; see MicroBatcher)."""
        self._check_serving(generative=False)
        chosen = self.adapter(adapter)
        return self.batcher.submit_many([Request(t, chosen) for t in texts])

    def answer(self, requests: list[Request]) -> list[Answer]:
        """One micro-batch: input filters, one forward pass on what they let through, output
        rules on the predicted labels. Runs in a worker thread."""
        policy, labels = self.plan.policy, self.plan.model.labels
        verdicts = policy.check_input([r.text for r in requests])
        allowed = [i for i, v in enumerate(verdicts) if not v.blocked]
        answers: list[Answer | None] = [None] * len(requests)
        if allowed:
            rows = self.model.probabilities(
                [verdicts[i].text for i in allowed], [requests[i].adapter for i in allowed]
            )
            best = rows.argmax(axis=1)
            outputs = policy.check_output([labels[j] for j in best])
            for i, row, j, output in zip(allowed, rows.tolist(), best, outputs, strict=True):
                r = requests[i]
                refusal = self._refuse(OUTPUT_STAGE, r, output) if output.blocked else None
                answers[i] = Answer(
                    adapter=r.adapter,
                    input_verdict=verdicts[i],
                    output_verdict=output,
                    label=labels[j],
                    score=row[j],
                    probabilities=dict(zip(labels, row, strict=True)),
                    output=output.text,
                    refusal=refusal,
                )
        for i, verdict in enumerate(verdicts):
            if verdict.blocked:
                r = requests[i]
                answers[i] = Answer(
                    r.adapter, verdict, refusal=self._refuse(INPUT_STAGE, r, verdict)
                )
        self.requests += len(requests)
        self.blocked += sum(a.refusal is not None for a in answers)
        return answers

    def _refuse(self, stage: str, request: Request, verdict: Verdict) -> Refusal:
        """Records a blocked request in the audit log: never its text (it may hold what got it
        blocked), only its digest and length."""
        details = {
            "stage": stage,
            "rule": verdict.blocked_by,
            "adapter": request.adapter,
            "message": verdict.message,
            "text_sha256": hashlib.sha256(request.text.encode()).hexdigest(),
            "text_chars": len(request.text),
        }
        event = self._audit(BLOCKED_REQUEST, self.name, details)
        return Refusal(stage, verdict.blocked_by, verdict.message, event)

    def start_generation(
        self, request: GenerateInput, stream: bool, emit: Callable[[Event], None]
    ) -> GenerationRun | Batched | Refusal:
        """Checks a generate request (decoding, adapter, the prompt through the input filters,
        the model's window, the deployment's limit on running generations) and starts its
        generation in a thread of its own, or returns it ready for the micro-batcher
        (``GenerativeModel.batchable``; the caller calls ``end_generation`` once answered); the
        refusal when an input filter blocked it. Blocking (the filters may run models): call it
        off the event loop."""
        self._check_serving(generative=True)
        model: GenerativeModel = self.model
        plan = self.plan
        options = model.options(request.decoding, plan.model.max_new_tokens)
        if stream and options.strategy == "beam":
            raise InvalidArgument.for_field(
                "decoding.strategy", "beam search cannot stream; use Generate, or greedy/sample"
            )
        adapter = self.adapter(request.adapter)
        verdicts = plan.policy.check_input(request.texts)
        for text, verdict in zip(request.texts, verdicts, strict=True):
            if verdict.blocked:
                self._count(blocked=True)
                return self._refuse(INPUT_STAGE, Request(text, adapter), verdict)
        encoded = model.encode(request, [v.text for v in verdicts])
        model.check_window(encoded.ids, options, request.input_field)

        def judge(text: str) -> Verdict:
            return plan.policy.check_output([text])[0]

        def on_block(text: str, verdict: Verdict) -> Refusal:
            self._count(blocked=True, request=False)  # counted as a request when it started
            return self._refuse(OUTPUT_STAGE, Request(text, adapter), verdict)

        with self._generations_lock:
            if self.generations >= self.max_generations:
                raise ResourceExhausted(
                    f"deployment {self.name!r} runs {self.generations} generations, its limit "
                    f"(FORGELINE_MAX_GENERATIONS); retry later",
                    reason="TOO_MANY_GENERATIONS",
                    metadata={"deployment": self.name},
                )
            self.generations += 1
        self._count()
        guard = OutputCheck(judge, on_block) if plan.policy.output_rules else None
        looped = self.decoder is not None and self.decoder.serves(options)
        if not looped and model.batchable(options, stream) and plan.bounds.max_batch_size > 1:
            return Batched(encoded, options, adapter, tuple(verdicts), guard)
        every = OUTPUT_CHECK_EVERY if stream else 0
        # A unary answer is its last event: its pieces would only wake the caller for nothing.
        pieces = emit if stream else _drop
        run = GenerationRun(model, encoded.ids, options, adapter, guard, every, pieces)
        run.input_verdicts = verdicts
        if looped:
            try:
                self.decoder.join(run, lambda last: self._ended(last, emit))
            except BaseException:
                self.end_generation()
                raise
            return run
        threading.Thread(
            target=self._generation, args=(run, emit), name=f"generate-{self.name}", daemon=True
        ).start()
        return run

    def _generation(self, run: GenerationRun, emit: Callable[[Event], None]) -> None:
        try:
            last = run.run()
        finally:
            self.end_generation()
        emit(last)

    def _ended(self, last: Event, emit: Callable[[Event], None]) -> None:
        self.end_generation()
        emit(last)  # after the count: a client may send its next request at once

    def end_generation(self) -> None:
        with self._generations_lock:
            self.generations -= 1

    def _count(self, blocked: bool = False, request: bool = True) -> None:
        # Generations start and end in several threads at once (a micro-batch counts itself
        # in answer(), one thread at a time).
        with self._generations_lock:
            self.requests += request
            self.blocked += blocked

    async def drain(self) -> None:
        if self.decoder is not None:
            self.decoder.close()  # what it has runs to its end, in its own thread
        if self.batcher is not None:
            await self.batcher.drain()


class DeploymentStore:
    """The deployed specs, so a restarted service deploys them again (SQLite, WAL)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS deployments (name TEXT PRIMARY KEY, "
                "spec TEXT NOT NULL, create_time REAL NOT NULL)"
            )

    def save(self, spec: DeploySpec, create_time: float) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO deployments VALUES (?,?,?)",
                (spec.name, json.dumps(asdict(spec)), create_time),
            )

    def delete(self, name: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM deployments WHERE name=?", (name,))

    def all(self) -> list[tuple[DeploySpec, float]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT spec, create_time FROM deployments ORDER BY name"
            ).fetchall()
        return [(DeploySpec(**json.loads(spec)), created) for spec, created in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class Deployments:
    """The live deployments by name: deploy (replacing atomically once the new one loaded),
    undeploy (draining), predict, and restore after a restart."""

    def __init__(
        self,
        folder: Path,
        models: ModelPlanner,
        policies: PolicyLoader,
        audit: AuditRecorder,
        threads: int,
        max_generations: int,
    ) -> None:
        self.models, self._policies, self._audit = models, policies, audit
        self._max_generations = max_generations
        self._store = DeploymentStore(folder / "deployments.db")
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="serving")
        self._live: dict[str, Deployment] = {}
        self._lock = threading.Lock()

    def plan(self, spec: DeploySpec) -> DeployPlan:
        """Checks a spec completely (every problem with the name and batching at once), loading
        the policy but no model weights."""
        problems = Violations()
        if not NAME.match(spec.name):
            problems.add(
                "name",
                f"{spec.name!r}: lowercase letters, digits and '-', at most 63, "
                "starting with a letter",
            )
        if not 0 <= spec.max_batch_size <= MAX_BATCH:
            problems.add("batching.max_batch_size", f"must be in [0, {MAX_BATCH}]")
        if not 0 <= spec.max_wait_ms <= MAX_WAIT_MS:
            problems.add("batching.max_wait_ms", f"must be in [0, {MAX_WAIT_MS:g}]")
        if not 0 <= spec.max_length <= MAX_LENGTH:
            problems.add("max_sequence_length", f"must be in [0, {MAX_LENGTH}]")
        if not 0 <= spec.max_new_tokens <= MAX_NEW_TOKENS:
            problems.add("max_new_tokens", f"must be in [0, {MAX_NEW_TOKENS}]")
        problems.raise_if_any()
        model = self.models.plan(spec)
        policy = self._policies.load(spec.policy, "policy")
        bounds = BatchingBounds(
            max_batch_size=spec.max_batch_size or DEFAULT_BATCH,
            max_wait_ms=spec.max_wait_ms or DEFAULT_WAIT_MS,
            max_queued=MAX_QUEUED,
        )
        return DeployPlan(spec, model, policy, bounds)

    def deploy(self, spec: DeploySpec, progress: Callable[[float, str], None]) -> Deployment:
        """Loads ``spec`` and serves it; an earlier deployment of the name keeps serving until
        then and finishes what it queued."""
        progress(0.1, f"loading {spec.model_id}")
        deployment = Deployment(
            spec, time.time(), self._executor, self._audit, self._max_generations
        )
        deployment.load(self)
        progress(0.9, "loaded")
        with self._lock:
            old = self._live.get(spec.name)
            self._store.save(spec, deployment.create_time)
            self._live[spec.name] = deployment
        if old is not None and old.batcher is not None:
            old.batcher.close_soon()
        if old is not None and old.decoder is not None:
            old.decoder.close()
        log.info("deployed", deployment=spec.name, format=deployment.plan.model.format)
        return deployment

    def restore(self) -> int:
        """Deploys every saved spec again, in the background (each LOADING until loaded)."""
        saved = self._store.all()
        for spec, created in saved:
            deployment = Deployment(
                spec, created, self._executor, self._audit, self._max_generations
            )
            with self._lock:
                self._live.setdefault(spec.name, deployment)
            self._executor.submit(self._restore, deployment)
        return len(saved)

    def _restore(self, deployment: Deployment) -> None:
        try:
            deployment.load(self)
        except Exception as exc:
            log.warning("restore_failed", deployment=deployment.name, error=str(exc))

    def get(self, name: str, field_path: str = "deployment") -> Deployment:
        if not name:
            raise InvalidArgument.for_field(field_path, "name a deployment")
        with self._lock:
            found = self._live.get(name)
            if found is not None:
                return found
            names = ", ".join(sorted(self._live)) or "none"
        raise NotFound(
            f"no deployment {name!r}; deployed: {names}",
            reason="DEPLOYMENT_NOT_FOUND",
            metadata={"deployment": name},
        )

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._live)

    async def predict(self, name: str, texts: Sequence[str], adapter: str) -> list[Answer]:
        """Answers ``texts`` through deployment ``name`` (waiting while it loads)."""
        found = self.get(name)
        if not found.loaded.done():
            await asyncio.wrap_future(found.loaded)
        # Looked up again and queued in one step of the loop: a replacement that landed while
        # this waited is the one used, and a replaced deployment still answers what it queued.
        futures = self.get(name).submit(texts, adapter)
        return list(await asyncio.gather(*futures))

    async def generate(
        self, name: str, request: GenerateInput, stream: bool
    ) -> AsyncIterator[Event | Refusal]:
        """The events of one generation through deployment ``name`` (waiting while it loads):
        Pieces then one Finished, or one Refusal when an input filter blocked the prompt. A
        caller that stops iterating (a cancelled client) stops the generation at its next
        token."""
        found = self.get(name)
        if not found.loaded.done():
            await asyncio.wrap_future(found.loaded)
        events: asyncio.Queue[Event] = asyncio.Queue()
        emit = _mailbox(asyncio.get_running_loop()).sender(events)

        deployment = self.get(name)
        started = await asyncio.to_thread(deployment.start_generation, request, stream, emit)
        if isinstance(started, Refusal):
            yield started
            return
        if isinstance(started, Batched):
            try:
                (future,) = deployment.batcher.submit_many([started])
                generated = await future
            finally:
                deployment.end_generation()
            yield await asyncio.to_thread(finish_batched, started, generated)
            return
        try:
            while True:
                event = await events.get()
                if isinstance(event, Failed):
                    raise event.error
                yield event
                if isinstance(event, Finished):
                    return
        finally:
            started.cancel()  # a no-op once it finished

    def remove(self, name: str, field_path: str = "deployment") -> Deployment:
        """Stops serving ``name`` (drain its batcher to answer what it queued)."""
        found = self.get(name, field_path)
        with self._lock:
            if self._live.get(name) is found:
                del self._live[name]
                self._store.delete(name)
        return found

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._store.close()
