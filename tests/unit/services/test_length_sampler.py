"""The recipe's group_by_length sampler: DistributedSampler's seeded shuffle and rank shards, cut
into batches of texts of similar length (far less padding), in a shuffled and reproducible order."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DistributedSampler  # noqa: E402

from forgeline.finetune.data import LengthGroupedSampler  # noqa: E402

BATCH = 16
ROWS = 2001  # odd: two ranks need DistributedSampler's padding repeat


def skewed_lengths(n: int, seed: int) -> list[int]:
    """Token lengths shaped like review sentences: mostly short, a long tail, capped at 64."""
    rng = random.Random(seed)
    return [min(64, max(2, round(rng.lognormvariate(2.7, 0.6)))) for _ in range(n)]


def cut(indices: list[int]) -> list[list[int]]:
    """The batches a DataLoader of BATCH makes from a sampler's indices."""
    return [indices[i : i + BATCH] for i in range(0, len(indices), BATCH)]


def padded_per_example(lengths: list[int], indices: list[int]) -> float:
    """Tokens per example once every batch is padded to its longest text."""
    return sum(len(b) * max(lengths[i] for i in b) for b in cut(indices)) / len(indices)


def epoch(lengths: list[int], world: int, rank: int, seed: int, at: int) -> list[int]:
    sampler = LengthGroupedSampler(lengths, BATCH, num_replicas=world, rank=rank, seed=seed)
    sampler.set_epoch(at)
    indices = list(sampler)
    assert len(indices) == len(sampler)
    return indices


@pytest.mark.parametrize("world", [1, 2])
@pytest.mark.parametrize("seed", [0, 7, 123])
def test_ranks_cover_the_dataset_in_grouped_shuffled_batches(world, seed):
    lengths = skewed_lengths(ROWS, seed)
    grouped = [epoch(lengths, world, rank, seed, 3) for rank in range(world)]
    random_order = []
    for rank in range(world):
        reference = DistributedSampler(range(ROWS), num_replicas=world, rank=rank, seed=seed)
        reference.set_epoch(3)
        random_order.append(list(reference))

    # Each rank gets exactly DistributedSampler's shard (its padding repeats included), so
    # together they hold every row once plus the repeats that even out the ranks.
    for mine, theirs in zip(grouped, random_order, strict=True):
        assert Counter(mine) == Counter(theirs)
    together = Counter(i for indices in grouped for i in indices)
    assert set(together) == set(range(ROWS))
    assert sum(together.values()) == math.ceil(ROWS / world) * world
    assert len({len(cut(indices)) for indices in grouped}) == 1  # DDP: the same batches per rank

    for mine, theirs in zip(grouped, random_order, strict=True):
        grouped_pad = padded_per_example(lengths, mine)
        random_pad = padded_per_example(lengths, theirs)
        assert grouped_pad < 0.6 * random_pad, (grouped_pad, random_pad)
        assert grouped_pad >= sum(lengths[i] for i in mine) / len(mine)  # never below the texts
        # The DataLoader's cuts fall on the sorted groups (the one short batch stays last).
        for batch in cut(mine):
            assert [lengths[i] for i in batch] == sorted((lengths[i] for i in batch), reverse=True)

        # Shuffled batches, not the mega-batches' descending runs (<= 2 rises with 3 of them):
        # a shuffled order rises between neighbours about as often as it falls.
        longest = [max(lengths[i] for i in b) for b in cut(mine)]
        rises = sum(b > a for a, b in zip(longest, longest[1:], strict=False))
        assert rises > len(longest) / 5, longest


def test_the_order_is_fixed_by_seed_and_epoch():
    lengths = skewed_lengths(500, 1)
    first = epoch(lengths, 2, 1, seed=5, at=0)
    assert epoch(lengths, 2, 1, seed=5, at=0) == first  # what a resumed run skips by count
    assert epoch(lengths, 2, 1, seed=5, at=1) != first
    assert epoch(lengths, 2, 1, seed=6, at=0) != first
