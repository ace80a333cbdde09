"""Generating text with a Hugging Face model, the way every service that generates does it:
decoding options (greedy, beam, seeded sampling, stop strings) checked before any work,
batched generation with the padding side the architecture needs, and token counts per item.

In the kernel because evaluation (training), serving and the benchmarks generate; a batched
output must equal the one-at-a-time output, so the padding rule lives in one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from forgeline.errors import FieldViolation, InvalidArgument

MAX_NEW_TOKENS = 4096
MAX_STOP_STRINGS = 16
MAX_STOP_LENGTH = 200
# The most sequences one generate call decodes at once: prompts x beams (beam search keeps
# num_beams hypotheses per prompt). The key/value cache, the logits over the vocabulary and
# the padded inputs all grow with it (SmolLM2-135M in fp32: 45 KiB of cache per token per
# sequence, so 64 sequences of 2,048 tokens hold 5.6 GiB; 0.19 MiB of logits per sequence per
# step), so a client's batch size must not be what decides a service's memory: above the cap
# a request is refused, naming its field.
MAX_BATCH_SEQUENCES = 64
DEFAULT_BATCH_SIZE = 8


class DecodingOptions(BaseModel):
    """How a model picks its next tokens. Fields that belong to another strategy must keep
    their defaults, so a request never silently ignores what its caller asked for."""

    model_config = ConfigDict(extra="forbid")

    strategy: Literal["greedy", "beam", "sample"] = Field(
        "greedy",
        description="greedy: the most likely token each step (deterministic); beam: beam search "
        "over num_beams hypotheses; sample: draw from the distribution shaped by temperature, "
        "top_p and top_k, reproducibly for a seed.",
    )
    num_beams: int = Field(
        4, ge=2, le=16, description="beam: hypotheses kept at each step (2..16)."
    )
    temperature: float = Field(
        1.0,
        gt=0,
        le=10,
        description="sample: divides the logits; below 1 sharpens, above 1 flattens (must be > 0).",
    )
    top_p: float = Field(
        1.0,
        gt=0,
        le=1,
        description="sample: nucleus sampling, keep the smallest set of tokens whose "
        "probability reaches top_p (1: all).",
    )
    top_k: int = Field(
        0, ge=0, le=100_000, description="sample: keep only the k most likely tokens (0: all)."
    )
    seed: int = Field(
        0,
        ge=0,
        le=2**32 - 1,
        description="sample: the random seed; the same seed, prompts and batch size give the "
        "same outputs.",
    )
    max_new_tokens: int = Field(
        64,
        ge=1,
        le=MAX_NEW_TOKENS,
        description=f"At most this many tokens generated per prompt (1..{MAX_NEW_TOKENS}).",
    )
    repetition_penalty: float = Field(
        1.0,
        gt=0,
        le=10,
        description="Divides the score of tokens already in the text (CTRL's penalty; 1: none, "
        "above 1 discourages repeating).",
    )
    stop: list[str] = Field(
        default_factory=list,
        max_length=MAX_STOP_STRINGS,
        description="Generation of an item stops at the first of these strings, which is cut "
        f"from the output with everything after it (at most {MAX_STOP_STRINGS}, each 1.."
        f"{MAX_STOP_LENGTH} characters).",
    )

    @field_validator("stop")
    @classmethod
    def _stop_strings(cls, values: list[str]) -> list[str]:
        for value in values:
            if not value or len(value) > MAX_STOP_LENGTH:
                raise ValueError(f"each stop string must be 1..{MAX_STOP_LENGTH} characters")
        return values

    @model_validator(mode="after")
    def _strategy_fields(self) -> DecodingOptions:
        # A field of another strategy set away from its default is a caller's mistake
        # (e.g. a temperature with greedy decoding): say so rather than ignore it.
        owners = {
            "num_beams": "beam",
            "temperature": "sample",
            "top_p": "sample",
            "top_k": "sample",
            "seed": "sample",
        }
        for name, owner in owners.items():
            if owner != self.strategy and name in self.model_fields_set:
                if getattr(self, name) != type(self).model_fields[name].default:
                    raise ValueError(
                        f"{name} applies to strategy {owner!r} only, not {self.strategy!r}"
                    )
        return self


def decoding_options(values: Mapping[str, Any], field_path: str) -> DecodingOptions:
    """``values`` as DecodingOptions; every bad field is named under ``field_path`` (e.g.
    "generation.decoding.temperature") in one InvalidArgument."""
    try:
        return DecodingOptions.model_validate(dict(values))
    except ValidationError as exc:
        violations = []
        for err in exc.errors():
            where = ".".join(map(str, err["loc"]))
            message = err["msg"].removeprefix("Value error, ")
            if not where:  # a model validator: its message starts with the field it means
                where = message.split(" ", 1)[0]
            violations.append(FieldViolation(f"{field_path}.{where}", message))
        raise InvalidArgument(
            "; ".join(f"{v.field}: {v.description}" for v in violations),
            violations=violations,
        ) from exc


def generation_batch_size(
    requested: int, options: DecodingOptions, field_path: str = "batch_size"
) -> int:
    """The prompts one generate call takes: ``requested``, or when 0 the default (8) lowered
    until its sequences (prompts x beams) fit MAX_BATCH_SEQUENCES. A requested size whose
    sequences exceed the cap is refused, InvalidArgument naming ``field_path``."""
    beams = options.num_beams if options.strategy == "beam" else 1
    if requested < 0:
        raise InvalidArgument.for_field(field_path, "must be >= 0 (0: the default)")
    if not requested:
        return max(1, min(DEFAULT_BATCH_SIZE, MAX_BATCH_SEQUENCES // beams))
    if requested * beams > MAX_BATCH_SEQUENCES:
        per = f" x {beams} beams" if beams > 1 else ""
        raise InvalidArgument.for_field(
            field_path,
            f"{requested} prompts{per} is over the limit of {MAX_BATCH_SEQUENCES} sequences "
            f"generated at once (memory grows with it); use at most "
            f"{max(1, MAX_BATCH_SEQUENCES // beams)}",
        )
    return requested


@dataclass(frozen=True)
class Generated:
    """One prompt's output. ``prompt_tokens`` is what the model read (after any truncation to
    ``max_input_tokens``); ``completion_tokens`` the tokens it generated, up to and not
    counting its end-of-sequence token; ``finish_reason`` "stop" (end of sequence or a stop
    string) or "length" (max_new_tokens reached)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    truncated: bool = False


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render_chat(tokenizer: Any, prompt: str) -> str:
    """``prompt`` as the user's turn of a chat, ready for the assistant's answer, when the
    tokenizer has a chat template (an instruction model); the prompt unchanged otherwise. The
    rendered text carries the template's special tokens: tokenize it with
    ``add_special_tokens=False``."""
    if not has_chat_template(tokenizer):
        return prompt
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )


def cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """``text`` up to the first of the ``stop`` strings, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def generate_texts(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    options: DecodingOptions,
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    max_input_tokens: int = 0,
    add_special_tokens: bool = True,
) -> list[Generated]:
    """``model``'s output for every prompt, ``batch_size`` prompts at a time, in eval mode
    without gradients.

    Decoder-only models are padded on the LEFT (their output continues the last real token;
    with right padding a short prompt would continue from pad tokens), encoder-decoders on the
    right. A prompt over ``max_input_tokens`` (0: no limit) keeps its last tokens for a
    decoder-only model (the chat template's assistant marker is at the end) and its first for an
    encoder-decoder. Sampling draws from a generator seeded by ``options.seed`` and the batch's
    position, without touching the process's global random state. A ``batch_size`` whose
    sequences (prompts x beams) exceed MAX_BATCH_SEQUENCES is refused (InvalidArgument naming
    batch_size): callers check it with ``generation_batch_size`` before any work."""
    import torch

    if batch_size < 1:
        raise InvalidArgument.for_field("batch_size", "must be >= 1")
    generation_batch_size(batch_size, options)
    encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
    side = "right" if encoder_decoder else "left"
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id
    config = _generation_config(model, tokenizer, options, pad_id)
    stop_ids = _end_ids(config)
    # With stop strings, generation ends at one (the text is cut below as well); transformers
    # needs the tokenizer to find them in tokens.
    extra: dict[str, Any] = {"tokenizer": tokenizer} if options.stop else {}
    model.eval()
    device = next(model.parameters()).device
    out: list[Generated] = []
    for start in range(0, len(prompts), batch_size):
        rows, truncated = [], []
        for prompt in prompts[start : start + batch_size]:
            ids = tokenizer(prompt, add_special_tokens=add_special_tokens)["input_ids"]
            cut = bool(max_input_tokens) and len(ids) > max_input_tokens
            if cut:
                ids = ids[:max_input_tokens] if encoder_decoder else ids[-max_input_tokens:]
            rows.append(ids)
            truncated.append(cut)
        batch = _pad(rows, pad_id, side)
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            if options.strategy == "sample":
                torch.manual_seed(options.seed + start)
            generated = model.generate(**batch, generation_config=config, **extra)
        if not encoder_decoder:
            generated = generated[:, batch["input_ids"].shape[1] :]
        elif config.decoder_start_token_id is not None:
            generated = generated[:, 1:]  # the decoder's start token, not an output
        for ids, row, was_cut in zip(rows, generated.tolist(), truncated, strict=True):
            tokens, ended = _completion(row, stop_ids, pad_id)
            text = tokenizer.decode(tokens, skip_special_tokens=True)
            text, stopped = cut_at_stop(text, options.stop)
            reason = "stop" if ended or stopped else "length"
            out.append(Generated(text, len(ids), len(tokens), reason, was_cut))
    return out


def _pad(rows: list[list[int]], pad_id: int, side: str) -> dict[str, Any]:
    """Token rows as input_ids + attention_mask tensors, padded on ``side``."""
    import torch

    width = max((len(r) for r in rows), default=0)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if not row:
            continue
        span = slice(width - len(row), width) if side == "left" else slice(0, len(row))
        ids[i, span] = torch.tensor(row, dtype=torch.long)
        mask[i, span] = 1
    return {"input_ids": ids, "attention_mask": mask}


def generation_config(model: Any, tokenizer: Any, options: DecodingOptions) -> tuple[Any, set[int]]:
    """The GenerationConfig ``generate_texts`` uses for ``options`` and the token ids that end a
    sequence: for callers that drive ``model.generate`` themselves (serving streams tokens)."""
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id
    config = _generation_config(model, tokenizer, options, pad_id)
    return config, _end_ids(config)


def _generation_config(model: Any, tokenizer: Any, options: DecodingOptions, pad_id: int):
    """A GenerationConfig of exactly ``options`` (not the model's own sampling defaults, which
    would make "greedy" sample), keeping the model's special token ids."""
    from transformers import GenerationConfig

    own = getattr(model, "generation_config", None)
    eos = getattr(own, "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    sample = options.strategy == "sample"
    return GenerationConfig(
        max_new_tokens=options.max_new_tokens,
        do_sample=sample,
        num_beams=options.num_beams if options.strategy == "beam" else 1,
        temperature=options.temperature if sample else None,
        top_p=options.top_p if sample else None,
        top_k=options.top_k if sample else None,
        repetition_penalty=options.repetition_penalty,
        pad_token_id=pad_id,
        eos_token_id=eos,
        bos_token_id=getattr(own, "bos_token_id", None),
        decoder_start_token_id=getattr(own, "decoder_start_token_id", None),
        stop_strings=list(options.stop) or None,
    )


def _end_ids(config: Any) -> set[int]:
    eos = config.eos_token_id
    if eos is None:
        return set()
    return set(eos) if isinstance(eos, list) else {int(eos)}


def _completion(row: list[int], end_ids: set[int], pad_id: int) -> tuple[list[int], bool]:
    """The generated tokens of one row up to its end-of-sequence token (excluded), and whether
    it ended so; a row that stopped early is padded after its end."""
    for i, token in enumerate(row):
        if token in end_ids:
            return row[:i], True
    end = len(row)
    while end and row[end - 1] == pad_id:
        end -= 1
    return row[:end], end < len(row)


def score_texts(
    metrics: list[Any], predictions: list[str], references: list[str]
) -> dict[str, float]:
    """Every generation_metrics plugin's corpus scores of ``predictions`` against
    ``references``, keyed "<plugin>_<key>" (e.g. "rouge_rougeL": an underscore, so a pipeline
    gate can name it in a field path). One function for models and baselines, so both are
    measured the same way."""
    scores: dict[str, float] = {}
    for metric in metrics:
        for key, value in metric.score(predictions, references).corpus.items():
            scores[f"{metric.name}_{key}"] = float(value)
    return scores
