"""Generation-based evaluation (EvaluateModel with ``generation``): a causal LM, instruction or
seq2seq model generates for each row's text, and generation_metrics plugins score the outputs
against the row's reference. No gRPC here.

Every check (decoding options, plugins, the reference column, the token budget against the
model's context) happens in ``plan_generation``, before a model is loaded. A document longer
than the budget is read the way its long_inputs plugin says (truncate when none is named):
single-pass strategies shorten every document and generate in batches; multi-pass ones
(chunk) generate per document through the plugin.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeline.contracts.long_inputs import LongInputStrategy, token_counter
from forgeline.datasets import STRING_TYPES, Dataset
from forgeline.errors import FailedPrecondition, InvalidArgument
from forgeline.generation import (
    DecodingOptions,
    decoding_options,
    generate_texts,
    has_chat_template,
    render_chat,
    score_texts,
)
from forgeline.models import (
    DECODER_TASKS,
    EXCERPT_CHARS,
    SEQUENCE_CLASSIFICATION,
    Evaluation,
    positions_of,
)
from forgeline.registry import PluginChoice, PluginRegistry
from forgeline.services.training.review import SystemOutputs

if TYPE_CHECKING:
    from forgeline.operations import OperationContext

DEFAULT_METRIC = "rouge"
DEFAULT_REFERENCE = "target"
DEFAULT_SAMPLES, MAX_SAMPLES = 3, 50
# Input tokens when a model's config states no position limit (T5's relative positions).
DEFAULT_BUDGET = 512


@dataclass(frozen=True)
class GenerationSpec:
    """What a client asked for (plain data; the servicer fills it from the message)."""

    decoding: dict[str, Any] = field(default_factory=dict)
    metrics: tuple[PluginChoice, ...] = ()
    reference_column: str = ""
    long_inputs: PluginChoice | None = None
    input_token_budget: int = 0
    max_examples: int = 0
    seed: int = 0
    samples: int = 0
    raw_prompt: bool = False


@dataclass
class GenerationPlan:
    spec: GenerationSpec
    options: DecodingOptions
    metrics: list[Any]
    long_inputs: LongInputStrategy
    reference_column: str
    budget: int
    samples: int
    # Tokens the model can read with max_new_tokens left to generate (0: its config says no).
    room: int = 0

    def settings(self) -> dict[str, Any]:
        """The settings the outputs were generated and scored with, for the report."""
        return {
            "decoding": self.options.model_dump(),
            "metrics": [{"name": m.name, "config": m.config.model_dump()} for m in self.metrics],
            "reference_column": self.reference_column,
            "long_inputs": {
                "name": self.long_inputs.name,
                "config": self.long_inputs.config.model_dump(),
            },
            "input_token_budget": self.budget,
            "max_examples": self.spec.max_examples,
            "seed": self.spec.seed,
        }


def plan_generation(
    spec: GenerationSpec,
    registry: PluginRegistry,
    dataset: Dataset,
    task: str,
    hf_config: Any,
    max_length: int,
) -> GenerationPlan:
    """Every check of a generation request, before any model is loaded; InvalidArgument names
    the field under "generation"."""
    if task == SEQUENCE_CLASSIFICATION:
        raise InvalidArgument.for_field(
            "generation",
            "generation-based evaluation takes a causal_lm, instruction or seq2seq model; this "
            "is a sequence_classification model (leave generation unset)",
        )
    options = decoding_options(spec.decoding, "generation.decoding")
    for name in ("input_token_budget", "max_examples", "samples"):
        if getattr(spec, name) < 0:
            raise InvalidArgument.for_field(f"generation.{name}", "must be >= 0")
    if spec.samples > MAX_SAMPLES:
        raise InvalidArgument.for_field("generation.samples", f"must be at most {MAX_SAMPLES}")
    reference = spec.reference_column or DEFAULT_REFERENCE
    types = dict(dataset.columns)
    if reference not in types:
        raise InvalidArgument.for_field(
            "generation.reference_column",
            f"no column {reference!r} in dataset {dataset.id}; columns: {list(types)}",
        )
    if types[reference] not in STRING_TYPES:
        raise InvalidArgument.for_field(
            "generation.reference_column", f"column {reference!r} is {types[reference]}, not text"
        )
    choices = list(spec.metrics) or [PluginChoice(DEFAULT_METRIC)]
    metrics = registry.create_all("generation_metrics", choices, "generation.metrics")
    long_choice = spec.long_inputs or PluginChoice("truncate")
    long_inputs = registry.create(
        "long_inputs", long_choice.name, long_choice.config, "generation.long_inputs"
    )
    budget, room = _budget(spec, options, hf_config, max_length)
    return GenerationPlan(
        spec=spec,
        options=options,
        metrics=metrics,
        long_inputs=long_inputs,
        reference_column=reference,
        budget=budget,
        samples=spec.samples or DEFAULT_SAMPLES,
        room=room,
    )


def _budget(
    spec: GenerationSpec, options: DecodingOptions, hf_config: Any, max_length: int
) -> tuple[int, int]:
    """Input tokens per generation (what was asked, else what the model's context leaves),
    and the room a decoder-only model has for its prompt once max_new_tokens are kept for the
    output (0: no limit known). An encoder's input and the decoder's output do not share
    positions, and relative-position encoders (T5, LongT5) read past their nominal length, so
    an encoder-decoder takes whatever budget is asked (its config's length by default)."""
    if getattr(hf_config, "is_encoder_decoder", False):
        default = spec.input_token_budget or positions_of(hf_config) or DEFAULT_BUDGET
        return (min(default, max_length) if max_length else default), 0
    positions = positions_of(hf_config)
    room = positions - options.max_new_tokens if positions else 0
    if positions and room < 1:
        raise InvalidArgument.for_field(
            "generation.decoding.max_new_tokens",
            f"{options.max_new_tokens} new tokens leave no room for input in the model's "
            f"{positions} positions",
        )
    budget = spec.input_token_budget
    if budget:
        if room and budget > room:
            raise InvalidArgument.for_field(
                "generation.input_token_budget",
                f"{budget} input tokens do not fit the model: its {positions} positions less "
                f"{options.max_new_tokens} new tokens leave {room}",
            )
        return budget, room
    budget = room or DEFAULT_BUDGET
    return (min(budget, max_length) if max_length else budget), room


def subset(rows: int, max_examples: int, seed: int) -> list[int]:
    """The rows evaluated: all, or a seeded random ``max_examples`` of them in dataset order."""
    if not max_examples or max_examples >= rows:
        return list(range(rows))
    return sorted(random.Random(seed).sample(range(rows), max_examples))


def run_generation(
    plan: GenerationPlan,
    model: Any,
    tokenizer: Any,
    task: str,
    texts: list[str],
    references: list[str],
    batch_size: int,
    ctx: OperationContext,
    keep: Callable[[SystemOutputs], str] | None = None,
) -> Evaluation:
    """Generates for every text and scores the outputs against ``references``; ``keep``
    stores every output (the full texts, not the samples' excerpts) and returns the id that
    ``Evaluation.outputs_id`` reports."""
    rows = subset(len(texts), plan.spec.max_examples, plan.spec.seed)
    texts = [texts[i] for i in rows]
    references = [references[i] for i in rows]
    # A decoder-only model with a chat template (an instruction model, an imported -Instruct
    # one) reads the text as the user's turn; the template's own special tokens must not be
    # doubled by the tokenizer.
    chat = task in DECODER_TASKS and not plan.spec.raw_prompt and has_chat_template(tokenizer)
    # calls: to the model through generate_batch; inputs: texts generated for in all.
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "calls": 0, "inputs": 0}

    count_tokens = token_counter(tokenizer)

    def generate_batch(inputs: list[str]) -> list[str]:
        prompts = [render_chat(tokenizer, t) if chat else t for t in inputs]
        outputs = generate_texts(
            model, tokenizer, prompts, plan.options, batch_size, add_special_tokens=not chat
        )
        usage["calls"] += 1
        usage["inputs"] += len(inputs)
        usage["prompt_tokens"] += sum(o.prompt_tokens for o in outputs)
        usage["completion_tokens"] += sum(o.completion_tokens for o in outputs)
        return [o.text for o in outputs]

    # The budget counts the text; the prompt around it (a chat template, a BOS token) must fit
    # in the model's positions as well.
    frame = len(
        tokenizer(render_chat(tokenizer, "") if chat else "", add_special_tokens=not chat)[
            "input_ids"
        ]
    )
    budget = min(plan.budget, plan.room - frame) if plan.room else plan.budget
    if budget < 1:
        raise FailedPrecondition(
            f"generation.decoding.max_new_tokens: the model's prompt template takes {frame} "
            f"tokens, leaving no room for the text",
            reason="NO_ROOM_FOR_INPUT",
            metadata={"field": "generation.decoding.max_new_tokens"},
        )
    strategy = plan.long_inputs
    started = time.perf_counter()
    outputs: list[str] = []
    single_pass = strategy.single_pass
    for start in range(0, len(texts), batch_size):
        ctx.progress(0.3 + 0.6 * start / max(len(texts), 1), f"generating {start}/{len(texts)}")
        part = texts[start : start + batch_size]
        if single_pass:
            shortened = [strategy.shorten(t, budget, count_tokens).text for t in part]
            outputs.extend(generate_batch(shortened))
        else:  # several passes per document (chunk): the plugin drives generation
            for text in part:
                outputs.append(strategy.generate(text, budget, count_tokens, generate_batch).text)
    seconds = time.perf_counter() - started
    ctx.progress(0.95, f"scoring {len(outputs)} outputs")
    metrics = score_texts(plan.metrics, outputs, references)
    samples = [
        {
            "row": rows[i],
            "source_excerpt": texts[i][:EXCERPT_CHARS],
            "reference": references[i],
            "output": outputs[i],
        }
        for i in range(min(plan.samples, len(outputs)))
    ]
    settings = {
        **plan.settings(),
        "input_token_budget": budget,
        "chat_template": chat,
        "rows": len(rows),
        "seconds": seconds,
        **usage,
    }
    outputs_id = keep(SystemOutputs(rows, texts, references, outputs)) if keep else ""
    return Evaluation(
        num_examples=len(rows),
        loss=0.0,
        metrics=metrics,
        generation=settings,
        samples=samples,
        outputs_id=outputs_id,
    )


def model_config(folder: Path) -> Any:
    """The Hugging Face config of a model folder (no weights read)."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(folder, local_files_only=True)
