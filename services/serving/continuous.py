"""Continuous batching: every generation a decoder-only deployment runs advances one token per
forward pass of one decode loop, whatever its length, arrival time or decoding options.

The loop runs in one thread per deployment (started by the first request, gone when nothing is
left to generate). Each pass it first admits the requests that arrived since the last one: their
prompts are read in one prefill pass of their own (left-padded), and their rows join the batch's
key/value cache (the shorter of the two caches padded on the left, the padding masked out), so a
new request waits for one pass, never for the longest generation to end. Then one decode pass
feeds every row its last token. A row that ends (an end-of-sequence token, a stop string, its
max_new_tokens, an output rule's block, its caller gone) leaves the batch at once: its cache rows
are dropped and the columns no row uses any more are cut, so it costs no further compute.

Each row picks its token from its own logits with its own processors (repetition penalty over
its prompt and output; temperature, top-k and top-p when sampled) and, sampled, its own
generator seeded by the request's seed: an output does not depend on its company. Tokens go
through the request's GenerationRun (generate.py), which streams them, finds stop strings and
runs the output rules exactly as when it drives ``model.generate`` itself.

Served here: decoder-only models whose cache is all full-attention layers and whose forward
takes ``cache``, ``position_ids`` and ``logits_to_keep``, and PEFT adapters on one (each row on
its request's adapter, PEFT's mixed batch), greedy or sampled (beam search and encoder-decoders
keep their own paths). A long prompt's prefill holds the other
rows for that pass (no chunked prefill). No gRPC here."""

from __future__ import annotations

import contextlib
import inspect
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from forgeline.errors import Unavailable
from forgeline.generation import MAX_BATCH_SEQUENCES, DecodingOptions
from forgeline.services.serving.generate import Failed, Finished, GenerationRun, GenerativeModel

Done = Callable[[Finished | Failed], None]


def continuous_batching(model: GenerativeModel) -> bool:
    """Whether the decode loop can serve ``model`` (see the module's docstring)."""
    if model.encoder_decoder:
        return False
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    inner = model.model.get_base_model() if model.adapters else model.model
    try:
        layers = DynamicCache(config=inner.config).layers
    except Exception:  # a config the cache cannot read: the model keeps its own path
        return False
    if any(type(layer) is not DynamicLayer for layer in layers):
        return False  # sliding-window or other layers: their caches cannot be re-padded here
    taken = inspect.signature(inner.forward).parameters
    return {"cache", "position_ids", "attention_mask", "logits_to_keep"} <= set(taken)


@dataclass
class LoopStats:
    """Forward passes run (prefills and decode steps) and the rows they advanced:
    ``rows / passes`` is the mean batch."""

    passes: int = 0
    rows: int = 0


@dataclass(eq=False)
class _Row:
    run: GenerationRun
    done: Done
    processors: Any  # transformers' LogitsProcessorList (empty: plain argmax)
    generator: Any  # torch.Generator when sampled
    history: list[int]  # prompt + output: what the repetition penalty reads
    produced: int = 0
    next_token: int = -1
    ended: bool = False

    @property
    def plain(self) -> bool:
        """Greedy without processors: its token is the argmax of its logits."""
        return self.generator is None and not self.processors

    def pick(self, logits: Any) -> int:
        """The row's next token from its logits (1, vocabulary)."""
        import torch

        scores = logits.float()
        if self.processors:
            scores = self.processors(torch.tensor([self.history]), scores)
        if self.generator is None:
            return int(scores.argmax(-1))
        probabilities = torch.softmax(scores, dim=-1)
        return int(torch.multinomial(probabilities, 1, generator=self.generator))


@dataclass
class _Batch:
    """The rows being generated, their cache and attention mask (rows x cached positions, 0 for
    padding), in the same order."""

    rows: list[_Row] = field(default_factory=list)
    cache: Any = None
    mask: Any = None


class DecodeLoop:
    """The continuous batcher of one deployment: at most ``max_rows`` rows per pass, the rest
    wait for a row to end."""

    def __init__(self, model: GenerativeModel, name: str, max_rows: int) -> None:
        self.model, self.name = model, name
        self.max_rows = max(1, min(max_rows, MAX_BATCH_SEQUENCES))
        self.stats = LoopStats()
        self._cond = threading.Condition()
        self._waiting: deque[_Row] = deque()
        self._thread: threading.Thread | None = None
        self._closed = False
        tokenizer = model.tokenizer
        self._pad = tokenizer.pad_token_id
        if self._pad is None:
            self._pad = tokenizer.eos_token_id or 0

    @staticmethod
    def serves(options: DecodingOptions) -> bool:
        return options.strategy != "beam"

    def join(self, run: GenerationRun, done: Done) -> None:
        """Queues ``run`` for the next pass; ``done`` gets its last event (in the loop's
        thread) once it ended."""
        row = _Row(run, done, _processors(run.options), _generator(run.options), list(run.ids))
        with self._cond:
            if self._closed:
                raise Unavailable(
                    f"deployment {self.name!r} is being replaced or removed; retry",
                    reason="DEPLOYMENT_CLOSED",
                    metadata={"deployment": self.name},
                )
            self._waiting.append(row)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name=f"decode-{self.name}", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def close(self) -> None:
        """Takes no more requests; the ones it has are generated to their end."""
        with self._cond:
            self._closed = True

    def _loop(self) -> None:
        import torch

        batch = _Batch()
        while True:
            with self._cond:
                if not batch.rows and not self._waiting:
                    self._thread = None
                    return
                room = self.max_rows - len(batch.rows)
                new = [self._waiting.popleft() for _ in range(min(room, len(self._waiting)))]
            try:
                with torch.inference_mode():
                    if new:
                        self._admit(batch, new)
                    self._drop_stopped(batch)
                    if batch.rows:
                        self._step(batch)
            except BaseException as exc:  # every row of this pass hears of it; the loop goes on
                for row in [*batch.rows, *new]:
                    if not row.ended:
                        row.ended = True
                        row.done(Failed(exc))
                batch = _Batch()

    # --- passes ---------------------------------------------------------------------------------

    def _forward(self, rows: list[_Row], ids: Any, mask: Any, positions: Any, cache: Any) -> Any:
        """One pass over ``rows`` (in order); the logits of each row's last position."""
        model = self.model
        extra: dict[str, Any] = {}
        if model.adapters:  # PEFT's mixed batch: each row on its own adapter
            extra["adapter_names"] = [row.run.adapter or "__base__" for row in rows]
        with model.exclusive or contextlib.nullcontext():  # adapters' hooks are model-wide
            out = model.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
                **extra,
            )
        self.stats.passes += 1
        self.stats.rows += ids.shape[0]
        return out.logits[:, -1, :]

    def _admit(self, batch: _Batch, new: list[_Row]) -> None:
        """One prefill pass over the new rows' prompts; their first tokens picked and their
        cache joined to the batch's."""
        import torch
        from transformers import DynamicCache

        live = []
        for row in new:
            if row.run.stopped:  # cancelled while it waited
                self._end(row)
            else:
                live.append(row)
        if not live:
            return
        device = next(self.model.model.parameters()).device
        width = max(len(row.run.ids) for row in live)
        ids = torch.full((len(live), width), self._pad, dtype=torch.long)
        mask = torch.zeros((len(live), width), dtype=torch.long)
        for i, row in enumerate(live):
            ids[i, width - len(row.run.ids) :] = torch.tensor(row.run.ids, dtype=torch.long)
            mask[i, width - len(row.run.ids) :] = 1
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        logits = self._forward(live, ids, mask, positions, cache)
        _merge(batch, cache, mask, live)
        self._advance(batch, live, logits)

    def _step(self, batch: _Batch) -> None:
        """One decode pass: every row reads its last token."""
        import torch

        mask = batch.mask
        tokens = torch.tensor([[row.next_token] for row in batch.rows], device=mask.device)
        positions = mask.sum(dim=1, keepdim=True)  # the real tokens before this one
        batch.mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        logits = self._forward(batch.rows, tokens, batch.mask, positions, batch.cache)
        self._advance(batch, batch.rows, logits)

    def _advance(self, batch: _Batch, rows: list[_Row], logits: Any) -> None:
        """Each of ``rows`` (the logits' rows, in order) takes its next token; the ones that
        ended leave the batch."""
        ended = []
        plain = logits.argmax(-1).tolist()  # every greedy row without processors, in one op
        for i, row in enumerate(rows):
            token = plain[i] if row.plain else row.pick(logits[i : i + 1])
            row.produced += 1
            row.history.append(token)
            row.next_token = token
            row.run.add([token])
            if row.run.stopped or row.produced >= row.run.options.max_new_tokens:
                ended.append(row)
        if ended:
            _keep(batch, [row for row in batch.rows if row not in ended])
            for row in ended:
                self._end(row)

    def _drop_stopped(self, batch: _Batch) -> None:
        """Rows cancelled (or blocked) since the last pass leave before the next one."""
        stopped = [row for row in batch.rows if row.run.stopped]
        if stopped:
            _keep(batch, [row for row in batch.rows if row not in stopped])
            for row in stopped:
                self._end(row)

    @staticmethod
    def _end(row: _Row) -> None:
        row.ended = True
        row.done(row.run.finish())


def _merge(batch: _Batch, cache: Any, mask: Any, rows: list[_Row]) -> None:
    """Appends ``rows`` (with their cache and mask) to the batch, left-padding whichever cache
    is shorter."""
    import torch
    import torch.nn.functional as F

    if not batch.rows:
        batch.rows, batch.cache, batch.mask = list(rows), cache, mask
        return
    width = max(batch.mask.shape[1], mask.shape[1])

    def padded(t: Any, dim_from_end: int) -> Any:
        missing = width - t.shape[-dim_from_end]
        if not missing:
            return t
        return F.pad(t, (0, 0) * (dim_from_end - 1) + (missing, 0))

    batch.mask = torch.cat([padded(batch.mask, 1), padded(mask, 1)], dim=0)
    for mine, theirs in zip(batch.cache.layers, cache.layers, strict=True):
        mine.keys = torch.cat([padded(mine.keys, 2), padded(theirs.keys, 2)], dim=0)
        mine.values = torch.cat([padded(mine.values, 2), padded(theirs.values, 2)], dim=0)
    batch.rows.extend(rows)


def _keep(batch: _Batch, rows: list[_Row]) -> None:
    """Keeps only ``rows`` (in batch order) and cuts the leading columns none of them uses."""
    import torch

    if not rows:
        batch.rows, batch.cache, batch.mask = [], None, None
        return
    index = [i for i, row in enumerate(batch.rows) if row in rows]
    at = torch.tensor(index, device=batch.mask.device)
    mask = batch.mask.index_select(0, at)
    used = mask.any(dim=0).nonzero()
    start = int(used[0]) if len(used) else 0
    batch.mask = mask[:, start:]
    for layer in batch.cache.layers:
        layer.keys = layer.keys.index_select(0, at)[:, :, start:, :]
        layer.values = layer.values.index_select(0, at)[:, :, start:, :]
    batch.rows = [batch.rows[i] for i in index]


def _processors(options: DecodingOptions) -> Any:
    """transformers' own logits processors for ``options``, in generate's order."""
    from transformers import (
        LogitsProcessorList,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    found = LogitsProcessorList()
    if options.repetition_penalty != 1.0:
        found.append(RepetitionPenaltyLogitsProcessor(options.repetition_penalty))
    if options.strategy == "sample":
        if options.temperature != 1.0:
            found.append(TemperatureLogitsWarper(options.temperature))
        if options.top_k:
            found.append(TopKLogitsWarper(options.top_k))
        if options.top_p < 1.0:
            found.append(TopPLogitsWarper(options.top_p))
    return found


def _generator(options: DecodingOptions) -> Any:
    if options.strategy != "sample":
        return None
    import torch

    return torch.Generator().manual_seed(options.seed)
