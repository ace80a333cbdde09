"""The training rows as the recipe reads them: Parquet columns to texts and labels, tokenized
examples (for the generative tasks with their loss labels: a response's tokens only, a target's
ids, the truncation rule, and prompts shortened by a long_inputs plugin), and a sampler that
batches texts of similar length together."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from forgeline.contracts.long_inputs import token_counter
from forgeline.models import INSTRUCTION, SEQ2SEQ, SEQUENCE_CLASSIFICATION

if TYPE_CHECKING:
    from forgeline.contracts.long_inputs import LongInputStrategy
    from forgeline.finetune.recipe import RecipeConfig

# The share of max_length the last response keeps when a row must be truncated (it keeps more
# when its context leaves more room): the instruction task's truncation rule.
RESPONSE_SHARE = 0.5
IGNORE = -100  # the label torch's cross-entropy skips


def read_rows(
    path: str, text_column: str, label_column: str, task: str
) -> tuple[list[str], list[str] | None]:
    """Texts (null as "") and, for classification, labels as strings."""
    import pyarrow.parquet as pq

    columns = [text_column] + ([label_column] if task == SEQUENCE_CLASSIFICATION else [])
    table = pq.read_table(path, columns=columns)
    texts = [t or "" for t in table.column(text_column).to_pylist()]
    if task != SEQUENCE_CLASSIFICATION:
        return texts, None
    return texts, [str(v) for v in table.column(label_column).to_pylist()]


def encode(config: RecipeConfig, tokenizer) -> list[dict[str, Any]]:
    """The training rows as tokenized examples (labels as class indexes or token ids)."""
    texts, labels = read_rows(
        config.train_path, config.text_column, config.label_column, config.task
    )
    encoded = tokenizer(texts, truncation=True, max_length=config.max_length)
    if labels is not None:
        index = {label: i for i, label in enumerate(config.labels)}
        targets = [index[v] for v in labels]
    else:
        targets = None
    examples = []
    for i in range(len(texts)):
        example = {k: encoded[k][i] for k in encoded.keys()}
        if targets is not None:
            example["labels"] = targets[i]
        examples.append(example)
    return examples


@dataclass
class Encoded:
    """Tokenized examples of a generative task, how many rows had to be truncated, and how
    many prompts a long_inputs plugin shortened."""

    examples: list[dict[str, Any]] = field(default_factory=list)
    truncated: int = 0
    shortened: int = 0


def encode_generative(
    task: str,
    path: str,
    columns: dict[str, str],
    tokenizer,
    max_length: int,
    *,
    long_inputs: LongInputStrategy | None = None,
    input_token_budget: int = 0,
) -> Encoded:
    """The rows of the Parquet file ``path`` as examples with ``labels`` (IGNORE where no loss
    is taken): instruction rows through ``encode_conversation``, seq2seq rows as source ids and
    target ids, each cut at ``max_length`` from its end (the tokenizer keeps its end token).
    With ``long_inputs``, each prompt (source text) is first replaced by the plugin's shortened
    input (``shorten_prompts``), so the model learns from exactly what it will read."""
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=list(columns.values()))
    rows = {role: table.column(name).to_pylist() for role, name in columns.items()}
    encoded = Encoded()
    if long_inputs is not None:
        role = "text" if task == SEQ2SEQ else "prompt"
        budgets = prompt_budgets(task, tokenizer, rows, max_length, input_token_budget)
        rows[role], encoded.shortened = shorten_prompts(
            long_inputs, [t or "" for t in rows[role]], budgets, tokenizer
        )
    if task == INSTRUCTION:
        if "messages" in rows:
            conversations = rows["messages"]
        else:
            conversations = [
                [{"role": "user", "content": p or ""}, {"role": "assistant", "content": r or ""}]
                for p, r in zip(rows["prompt"], rows["response"], strict=True)
            ]
        for conversation in conversations:
            example, cut = encode_conversation(tokenizer, conversation, max_length)
            encoded.examples.append(example)
            encoded.truncated += cut
        return encoded
    if task != SEQ2SEQ:
        raise ValueError(f"task {task!r} is not a generative task with labels")
    sources = [t or "" for t in rows["text"]]
    targets = [t or "" for t in rows["target"]]
    full_sources = tokenizer(sources)["input_ids"]
    full_targets = tokenizer(text_target=targets)["input_ids"]
    inputs = tokenizer(sources, truncation=True, max_length=max_length)
    labels = tokenizer(text_target=targets, truncation=True, max_length=max_length)["input_ids"]
    for i in range(len(sources)):
        example = {k: inputs[k][i] for k in inputs.keys()}
        example["labels"] = labels[i]
        encoded.examples.append(example)
        long = max(len(full_sources[i]), len(full_targets[i])) > max_length
        encoded.truncated += long
    return encoded


def prompt_budgets(
    task: str, tokenizer, rows: dict[str, list], max_length: int, input_token_budget: int = 0
) -> list[int]:
    """The tokens each row's prompt (source text) may keep: the room its row leaves within
    ``max_length`` (``input_token_budget`` when that is smaller), at least 1. A seq2seq source
    has the encoder to itself, less the special tokens the tokenizer adds. An instruction
    prompt shares the sequence with the template's tokens and the response, which keeps its
    part under the truncation rule (up to ``RESPONSE_SHARE`` of ``max_length``): with the
    prompt within its room, a row whose response fits its share is not truncated."""
    if task == SEQ2SEQ:
        room = max_length - tokenizer.num_special_tokens_to_add()
        rooms = [room] * len(rows["text"])
    else:
        count = token_counter(tokenizer)
        share = math.ceil(max_length * RESPONSE_SHARE)
        frame = _frame_tokens(tokenizer)
        rooms = [max_length - frame - min(count(r or ""), share) for r in rows["response"]]
    if input_token_budget:
        rooms = [min(room, input_token_budget) for room in rooms]
    return [max(room, 1) for room in rooms]


def _frame_tokens(tokenizer) -> int:
    """The tokens a prompt/response row takes beside its two texts: the chat template's turns
    (or the newline and the special tokens without one) and the end token."""
    empty = [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}]
    text, _ = render_conversation(tokenizer, empty)
    ids = tokenizer(text, add_special_tokens=not tokenizer.chat_template)["input_ids"]
    return len(ids) + (0 if tokenizer.chat_template else 1)


def shorten_prompts(
    strategy: LongInputStrategy, prompts: list[str], budgets: list[int], tokenizer
) -> tuple[list[str], int]:
    """Each prompt as ``strategy`` shortens it to its budget (one that fits comes back
    whole), and how many were shortened."""
    count = token_counter(tokenizer)
    out, shortened = [], 0
    for prompt, budget in zip(prompts, budgets, strict=True):
        result = strategy.shorten(prompt, budget, count)
        out.append(result.text)
        shortened += result.kept_tokens < result.total_tokens
    return out, shortened


def render_conversation(tokenizer, conversation: list[dict[str, str]]) -> tuple[str, list]:
    """A conversation as the text the model reads and the character spans of its assistant
    turns (each with the template's end-of-turn marks, so the model learns to stop). With a chat
    template, a turn's span runs from the end of the conversation before it rendered with
    ``add_generation_prompt`` (the assistant header is context, not loss) to the end of the
    conversation through it. Without one, a prompt/response pair reads prompt, a newline, then
    the response (``encode_conversation`` ends it with the eos token)."""
    if not tokenizer.chat_template:
        if [t["role"] for t in conversation] != ["user", "assistant"]:
            raise ValueError("a conversation needs the tokenizer's chat template")
        prefix = conversation[0]["content"] + "\n"
        text = prefix + conversation[1]["content"]
        return text, [(len(prefix), len(text))]

    def render(turns: list[dict[str, str]], generation: bool) -> str:
        return tokenizer.apply_chat_template(
            turns, tokenize=False, add_generation_prompt=generation
        )

    text = render(conversation, False)
    spans = []
    for i, turn in enumerate(conversation):
        if turn["role"] != "assistant":
            continue
        start = len(render(conversation[:i], True)) if i else 0
        through = render(conversation[: i + 1], False)
        if not text.startswith(through):
            raise ValueError("the chat template renders a conversation's turns differently")
        spans.append((start, len(through)))
    return text, spans


def encode_conversation(
    tokenizer, conversation: list[dict[str, str]], max_length: int
) -> tuple[dict[str, list[int]], bool]:
    """One conversation as input ids and labels (the assistant turns' tokens; IGNORE elsewhere),
    and whether it was truncated. The rule for a conversation longer than ``max_length``: the
    last response (from its first token to the end) keeps up to ``RESPONSE_SHARE`` of the budget,
    or all the room its context leaves if that is more, and is cut at its end; the context
    before it keeps the rest of the budget and is cut from its start (what is nearest the
    response is kept). A row is never dropped."""
    text, spans = render_conversation(tokenizer, conversation)
    encoding = tokenizer(
        text,
        add_special_tokens=not tokenizer.chat_template,  # a template writes its own
        return_offsets_mapping=True,
    )
    ids = list(encoding["input_ids"])
    # A token belongs to a turn when its characters overlap the turn's span (special tokens a
    # tokenizer adds, with empty offsets, never do).
    labels = [
        token if any(a < end and b > start for start, end in spans) and b > a else IGNORE
        for token, (a, b) in zip(ids, encoding["offset_mapping"], strict=True)
    ]
    eos = tokenizer.eos_token_id
    if not tokenizer.chat_template and eos is not None:  # the response ends with eos, learned
        if ids[-1] != eos:
            ids.append(eos)
        labels[len(ids) - 1 :] = [eos]
    if len(ids) <= max_length:
        return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}, False
    last = spans[-1][0]
    first = next(
        (i for i, (a, b) in enumerate(encoding["offset_mapping"]) if b > last and b > a),
        len(ids),
    )
    keep_response = min(
        len(ids) - first, max(max_length - first, math.ceil(max_length * RESPONSE_SHARE))
    )
    keep_context = max_length - keep_response
    window = list(range(first - keep_context, first)) + list(range(first, first + keep_response))
    ids = [ids[i] for i in window]
    labels = [labels[i] for i in window]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}, True


class LengthGroupedSampler:
    """A torch Sampler (the protocol DataLoader takes: ``__iter__``, ``__len__``, plus
    ``set_epoch``) putting texts of similar length into the same batch, so a batch pads to
    about its own texts' length rather than to the longest of a random draw (Hugging Face
    Trainer's ``group_by_length``): ~2.2x fewer tokens per epoch on short review sentences.

    It draws DistributedSampler's seeded permutation for the epoch and takes the rank's shard the
    same way (padded by repeating the first indices, so every rank runs the same number of
    batches, which DDP needs); it then cuts the shard into mega-batches of ``mega_batch``
    batches, sorts each by length (longest first), cuts it into batches and shuffles the order of
    the batches with the same generator. Which texts share a batch changes, what an epoch sees
    does not; one (seed, epoch) always gives the same order (resuming skips batches by count).
    """

    def __init__(
        self,
        lengths: list[int],
        batch_size: int,
        *,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 0,
        mega_batch: int = 50,
    ) -> None:
        self.lengths, self.batch_size, self.mega_batch = lengths, batch_size, mega_batch
        self.num_replicas, self.rank, self.seed, self.epoch = num_replicas, rank, seed, 0
        self.num_samples = math.ceil(len(lengths) / num_replicas)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        import torch

        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)  # DistributedSampler's draw, exactly
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        total = self.num_samples * self.num_replicas
        order = (order * math.ceil(total / len(order)))[:total]
        shard = order[self.rank : total : self.num_replicas]
        size = self.batch_size * self.mega_batch
        batches = []
        for start in range(0, len(shard), size):
            group = sorted(shard[start : start + size], key=self.lengths.__getitem__, reverse=True)
            batches += [
                group[i : i + self.batch_size] for i in range(0, len(group), self.batch_size)
            ]
        # The one short batch stays last, so the DataLoader's cuts fall on these batches.
        last = batches.pop() if len(batches[-1]) < self.batch_size else []
        shuffled = torch.randperm(len(batches), generator=generator).tolist()
        return iter([i for j in shuffled for i in batches[j]] + last)
