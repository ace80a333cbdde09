"""Generation in the serving service: a generative model loaded for serving (a causal LM,
instruction or seq2seq model, or PEFT adapters on one), a request turned into the model's input
within its limits, and one generation run (in its own thread, or fed by the decode loop) that
hands out text as the tokens come, runs the output rules on the text produced so far, and stops
at the next token once its caller is gone. No gRPC here.

On a decoder-only model (adapters included) every greedy or sampled request, streamed or not, is
continuously batched: the deployment's decode loop (continuous.py) feeds a GenerationRun one
token per pass. A beam request, and every request when batching is off, runs its own
``model.generate`` in its own thread instead (torch runs concurrent forward passes side by side;
on adapters they take turns). On an encoder-decoder, concurrent unary greedy requests without
stop strings are micro-batched (``generate_batch``: one left-padded ``generate_texts`` call per
group sharing decoding options; every row of such a batch runs until the batch's longest ends);
its other requests run in their own threads. ``Settings.max_generations`` bounds how many
requests one deployment generates for at once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from forgeline.errors import FailedPrecondition, InvalidArgument
from forgeline.generation import (
    MAX_BATCH_SEQUENCES,
    DecodingOptions,
    Generated,
    cut_at_stop,
    decoding_options,
    generate_texts,
    generation_config,
    has_chat_template,
)
from forgeline.policy import Verdict

# The cap on new tokens per request when a deployment names none.
DEFAULT_MAX_NEW_TOKENS = 512
# New tokens a request gets when it names no max_new_tokens (within the deployment's cap).
DEFAULT_NEW_TOKENS = 64
STOP, LENGTH, SAFETY, CANCELLED = "stop", "length", "safety", "cancelled"
# How often a generation waiting for its turn on an adapter model checks it was cancelled.
TURN_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class GenerateInput:
    """A generate request in domain terms: exactly one of ``prompt`` and ``messages``
    ((role, content) pairs), the decoding fields the client set, the adapter it chose."""

    prompt: str = ""
    messages: tuple[tuple[str, str], ...] = ()
    decoding: dict[str, Any] = field(default_factory=dict)
    adapter: str = ""

    @property
    def texts(self) -> list[str]:
        """What the input filters read: the prompt, or every message's content."""
        return [c for _, c in self.messages] if self.messages else [self.prompt]

    @property
    def input_field(self) -> str:
        return "messages" if self.messages else "prompt"


@dataclass(frozen=True)
class Encoded:
    """What the model reads: as text (``special``: the tokenizer adds its special tokens to
    it, as for a raw prompt; a rendered chat carries them already) and as token ids."""

    text: str
    special: bool
    ids: list[int]


@dataclass
class OutputCheck:
    """One request's output rules: ``judge`` is the deployment's verdict on a text; the first
    block is handed to ``on_block`` (which audits it) and its refusal kept."""

    judge: Callable[[str], Verdict]
    on_block: Callable[[str, Verdict], Any]
    refusal: Any = None

    def __call__(self, text: str) -> Verdict:
        verdict = self.judge(text)
        if verdict.blocked and self.refusal is None:
            self.refusal = self.on_block(text, verdict)
        return verdict


@dataclass(frozen=True)
class Batched:
    """A unary request answered in a micro-batch (see ``batchable``)."""

    encoded: Encoded
    options: DecodingOptions
    adapter: str
    input_verdicts: tuple[Verdict, ...]
    check: OutputCheck | None


@dataclass(frozen=True)
class Piece:
    """Text the generation adds to what it already handed out."""

    text: str


@dataclass(frozen=True)
class Finished:
    """The end of a generation: why, the token counts, the whole output after the output
    rules ("" when blocked), their verdict, the blocking verdict and its refusal (with the audit
    event) when a rule blocked, the input filters' verdicts and the adapter that answered."""

    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    output: str
    output_verdict: Verdict | None
    blocked: Verdict | None = None
    refusal: Any = None
    input_verdicts: tuple[Verdict, ...] = ()
    adapter: str = ""


@dataclass(frozen=True)
class Failed:
    """The generation raised: the exception goes to the caller."""

    error: BaseException


Event = Piece | Finished | Failed


class GenerativeModel:
    """A model that generates, with its tokenizer and limits (``window``: tokens it reads at
    most, 0 unknown)."""

    def __init__(self, plan: Any, tokenizer: Any, model: Any, adapters: bool) -> None:
        self.plan, self.tokenizer, self.model = plan, tokenizer, model.eval()
        self.adapters = adapters  # a PeftModel: generate takes adapter_names
        # PEFT passes a request's adapter_names to its layers through forward hooks registered
        # on the shared model for the length of a generate call: two concurrent calls would
        # see each other's hooks. Generations on adapters therefore take turns.
        self.exclusive = threading.Lock() if adapters else None
        self.encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
        self.window = plan.window

    def options(self, decoding: dict[str, Any], cap: int) -> DecodingOptions:
        """The request's decoding options within the deployment's cap on new tokens."""
        wanted = int(decoding.get("max_new_tokens") or 0)
        if wanted > cap:
            raise InvalidArgument.for_field(
                "decoding.max_new_tokens",
                f"{wanted} new tokens is over this deployment's cap of {cap}",
            )
        values = {**decoding, "max_new_tokens": wanted or min(DEFAULT_NEW_TOKENS, cap)}
        return decoding_options(values, "decoding")

    def encode(self, request: GenerateInput, contents: Sequence[str]) -> Encoded:
        """The prompt, or the messages (with ``contents``, what the input filters left of them)
        rendered with the chat template."""
        tokenizer = self.tokenizer
        if not request.messages:
            return Encoded(contents[0], True, tokenizer(contents[0])["input_ids"])
        if not has_chat_template(tokenizer):
            raise FailedPrecondition(
                f"messages: the model of this deployment ({self.plan.model_id}) has no chat "
                f"template; send a raw prompt",
                reason="NO_CHAT_TEMPLATE",
                metadata={"field": "messages"},
            )
        roles = [role for role, _ in request.messages]
        chat = [{"role": r, "content": c} for r, c in zip(roles, contents, strict=True)]
        text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        return Encoded(text, False, tokenizer(text, add_special_tokens=False)["input_ids"])

    def batchable(self, options: DecodingOptions, stream: bool) -> bool:
        """Whether a request joins a micro-batch: unary, greedy (a sampled output would depend
        on its batch's company), no stop strings (transformers' stop-string search needs a
        tokenizer it can map), and no adapters (PEFT's per-row adapters are not in
        generate_texts)."""
        return not (stream or self.adapters or options.stop or options.strategy != "greedy")

    def generate_batch(self, items: Sequence[Batched]) -> list[Generated]:
        """One micro-batch: a left-padded ``generate_texts`` call per group of requests sharing
        decoding options and special-token handling; outputs in the items' order."""
        groups: dict[tuple[str, bool], list[int]] = {}
        for i, item in enumerate(items):
            key = (item.options.model_dump_json(), item.encoded.special)
            groups.setdefault(key, []).append(i)
        out: list[Generated | None] = [None] * len(items)
        for (_, special), index in groups.items():
            found = generate_texts(
                self.model,
                self.tokenizer,
                [items[i].encoded.text for i in index],
                items[index[0]].options,
                batch_size=min(len(index), MAX_BATCH_SEQUENCES),
                add_special_tokens=special,
            )
            for i, generated in zip(index, found, strict=True):
                out[i] = generated
        return out

    def check_window(self, ids: list[int], options: DecodingOptions, field_path: str) -> None:
        """A decoder-only model reads the prompt and what it generates in one window; an
        encoder-decoder reads the prompt in its encoder. A prompt of no tokens gives a model
        nothing to continue."""
        if not ids:
            raise InvalidArgument.for_field(
                field_path, "the prompt is 0 tokens for this model's tokenizer; give some text"
            )
        if not self.window:
            return
        if self.encoder_decoder and len(ids) > self.window:
            raise InvalidArgument.for_field(
                field_path,
                f"the prompt is {len(ids)} tokens, more than the model's window of "
                f"{self.window} tokens",
            )
        if not self.encoder_decoder and len(ids) + options.max_new_tokens > self.window:
            raise InvalidArgument.for_field(
                field_path,
                f"the prompt is {len(ids)} tokens; with max_new_tokens "
                f"{options.max_new_tokens} that is more than the model's window of "
                f"{self.window} tokens",
            )

    def warm_up(self) -> None:
        options = decoding_options({"max_new_tokens": 1}, "decoding")
        ids = self.tokenizer("warm up")["input_ids"] or [0]
        run = GenerationRun(self, ids, options, self.plan.default_adapter, None, 0, _ignore)
        last = run.run()
        if isinstance(last, Failed):
            raise last.error


def _ignore(event: Event) -> None:
    del event


class GenerationRun:
    """One request's generation. ``run`` (in a thread of its own) calls ``emit`` with Pieces as
    tokens arrive and returns one Finished (or Failed) at the end. With ``check_output`` the output
    rules judge the text produced so far every ``check_every`` tokens before it is handed out
    (0: only the whole output at the end), and a block stops generating. ``cancel`` stops it
    at the next token."""

    def __init__(
        self,
        model: GenerativeModel,
        ids: list[int],
        options: DecodingOptions,
        adapter: str,
        check_output: OutputCheck | None,
        check_every: int,
        emit: Callable[[Event], None],
    ) -> None:
        self.model, self.ids, self.options, self.adapter = model, ids, options, adapter
        self._check, self._every, self._emit = check_output, check_every, emit
        self._stop = threading.Event()  # set: generate stops at its next token
        self.cancelled = False
        self.tokens: list[int] = []
        self._ended = False  # an end-of-sequence token came
        self._stopped = False  # a stop string came
        self._blocked: Verdict | None = None
        self._sent = ""
        self._seen = 0  # tokens already judged by the output rules
        self.input_verdicts: list[Verdict] = []  # what the input filters did, for the answer
        self._config, self._end_ids = generation_config(model.model, model.tokenizer, options)
        # Stop strings are found in the decoded text as tokens come (``add``), for any
        # tokenizer: transformers' own search needs one whose tokens it can map to strings.
        self._config.stop_strings = None

    def cancel(self) -> None:
        """The caller is gone: generation stops at the next token."""
        self.cancelled = True
        self._stop.set()

    @property
    def stopped(self) -> bool:
        """It needs no more tokens: an end of sequence or a stop string came, an output rule
        blocked, or its caller is gone."""
        return self._stop.is_set()

    def run(self) -> Finished | Failed:
        """Generates with ``model.generate`` in this thread (emitting Pieces) and returns the
        last event, for the caller to emit once it has counted this generation as ended."""
        try:
            self._generate()
        except BaseException as exc:  # the caller raises it
            return Failed(exc)
        return self.finish()

    def finish(self) -> Finished | Failed:
        """The last event once no more tokens come (here, or from the decode loop that fed
        ``add``): the whole output through the output rules."""
        try:
            return self._finish()
        except BaseException as exc:
            return Failed(exc)

    def _generate(self) -> None:
        import torch
        from transformers import StoppingCriteria

        model, options = self.model, self.options
        stop = self._stop

        class Stopped(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool)

        config = self._config
        streaming = options.strategy != "beam"  # transformers streams one sequence only
        extra: dict[str, Any] = {}
        if model.adapters:
            extra["adapter_names"] = [self.adapter or "__base__"]
        if streaming:
            extra["streamer"] = _Streamer(self)
        device = next(model.model.parameters()).device
        ids = torch.tensor([self.ids], dtype=torch.long, device=device)
        if model.exclusive is not None:
            while not model.exclusive.acquire(timeout=TURN_POLL_SECONDS):
                if stop.is_set():  # cancelled while waiting for its turn
                    return
        try:
            out = self._call_generate(ids, config, Stopped(), extra)
        finally:
            if model.exclusive is not None:
                model.exclusive.release()
        if not streaming:
            row = out[0].tolist()
            start = 1 if model.encoder_decoder else len(self.ids)
            self.add(row[start:])

    def _call_generate(self, ids: Any, config: Any, stopped: Any, extra: dict[str, Any]) -> Any:
        import torch
        from transformers import StoppingCriteriaList

        options = self.options
        # Sampling draws from torch's process-wide generator (transformers takes no other): a
        # seed reproduces its output when no other sampled generation runs at the same time.
        with torch.inference_mode(), torch.random.fork_rng(devices=[]):
            if options.strategy == "sample":
                torch.manual_seed(options.seed)
            return self.model.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                generation_config=config,
                stopping_criteria=StoppingCriteriaList([stopped]),
                **extra,
            )

    def add(self, tokens: list[int]) -> None:
        """New tokens from generate: counted, decoded, judged, handed out."""
        if self._ended or self._stopped or self._blocked or self.cancelled:
            return
        for token in tokens:
            if token in self._end_ids:
                self._ended = True
                self._stop.set()
                break
            self.tokens.append(token)
        text = self.model.tokenizer.decode(self.tokens, skip_special_tokens=True)
        text, self._stopped = cut_at_stop(text, self.options.stop)
        if self._stopped:
            self._stop.set()
            return  # the rest is judged and sent by _finish
        ready = text[: len(text) - _held_back(text, self.options.stop)]
        if self._check is None:
            self._send(ready)
            return
        if not self._every or len(self.tokens) - self._seen < self._every:
            return  # the rules judge it later (every 0: the whole output only)
        self._seen = len(self.tokens)
        verdict = self._check(ready)
        if verdict.blocked:
            self._blocked = verdict
            self._stop.set()
            return
        self._send(verdict.text)

    def _send(self, text: str) -> None:
        # A rule that rewrote text already sent (a redaction) cannot be unsent: the rest waits
        # for the last message's whole output.
        if text.startswith(self._sent) and len(text) > len(self._sent):
            self._emit(Piece(text[len(self._sent) :]))
            self._sent = text

    def _finish(self) -> Finished:
        text = self.model.tokenizer.decode(self.tokens, skip_special_tokens=True)
        text, stopped = cut_at_stop(text, self.options.stop)
        verdict = None
        if self._blocked is None and self._check is not None and not self.cancelled:
            verdict = self._check(text)
            if verdict.blocked:
                self._blocked = verdict
        if self._blocked is not None:
            reason = SAFETY
        elif self.cancelled:
            reason = CANCELLED
        elif self._ended or stopped or self._stopped:
            reason = STOP
        else:
            reason = LENGTH
        output = "" if self._blocked else (verdict.text if verdict else text)
        if reason in (STOP, LENGTH):
            self._send(output)
        return Finished(
            reason,
            len(self.ids),
            len(self.tokens),
            output,
            verdict,
            blocked=self._blocked,
            refusal=self._check.refusal if self._check is not None else None,
            input_verdicts=tuple(self.input_verdicts),
            adapter=self.adapter,
        )


def _held_back(text: str, stop: Sequence[str]) -> int:
    """How many characters at the end of ``text`` must wait: the start of a stop string that
    the next tokens may complete, or an incomplete character (decoded as U+FFFD)."""
    held = len(text) - len(text.rstrip("\ufffd"))
    for s in stop:
        for n in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:n]):
                held = max(held, n)
                break
    return held


class _Streamer:
    """transformers' streamer interface: ``put`` gets the prompt (or the decoder's start token)
    first, then each new token."""

    def __init__(self, run: GenerationRun) -> None:
        self._run, self._first = run, True

    def put(self, value: Any) -> None:
        if self._first:
            self._first = False
            return
        self._run.add(value.reshape(-1).tolist())

    def end(self) -> None:
        pass


def finish_batched(item: Batched, generated: Generated) -> Finished:
    """A micro-batched request's answer: its output through the output rules."""
    verdict = item.check(generated.text) if item.check is not None else None
    blocked = verdict if verdict is not None and verdict.blocked else None
    return Finished(
        SAFETY if blocked else generated.finish_reason,
        generated.prompt_tokens,
        generated.completion_tokens,
        "" if blocked else (verdict.text if verdict else generated.text),
        verdict,
        blocked=blocked,
        refusal=item.check.refusal if item.check is not None else None,
        input_verdicts=item.input_verdicts,
        adapter=item.adapter,
    )
