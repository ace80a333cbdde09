"""The training rows as the recipe reads them: Parquet columns to texts and labels, tokenized
examples, and a sampler that batches texts of similar length together."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from forgeline.models import SEQUENCE_CLASSIFICATION

if TYPE_CHECKING:
    from forgeline.finetune.recipe import RecipeConfig


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
