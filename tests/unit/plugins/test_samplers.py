"""The built-in replay samplers: what each one promises beyond the common contract (reservoir is
uniform over the stream, class_balanced evens out the labels, diverse covers the clusters)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from pydantic import ValidationError

from forgeline.contracts.samplers import ReplayPool
from forgeline.errors import InvalidArgument
from forgeline.plugins.samplers.basic import ClassBalanced, Diverse, Reservoir, farthest_first


def unit_rows(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def random_pool(labels: list[str], seed: int = 0, timestamps=None) -> ReplayPool:
    rng = np.random.default_rng(seed)
    vectors = unit_rows(rng.normal(size=(len(labels), 8)))
    if timestamps is None:
        timestamps = [float(i) for i in range(len(labels))]
    return ReplayPool(list(labels), vectors, list(timestamps))


def permuted(pool: ReplayPool, perm: np.ndarray) -> ReplayPool:
    """The same samples (timestamps included) stored at other positions: new[i] = old[perm[i]]."""
    return ReplayPool(
        [pool.labels[p] for p in perm], pool.vectors[perm], [pool.timestamps[p] for p in perm]
    )


# --- reservoir -----------------------------------------------------------------------------------


def test_reservoir_picks_every_sample_equally_often():
    n, k, draws = 100, 10, 5000
    p = k / n
    # Shuffled timestamps: the stream order is not the storage order.
    stream = np.random.default_rng(5).permutation(n)
    pool = random_pool(["x"] * n, timestamps=np.argsort(stream))  # stream[i] is added i-th
    counts = np.zeros(n, dtype=np.int64)
    sampler = Reservoir()
    for seed in range(draws):
        counts[sampler.sample(pool, k, seed)] += 1
    assert counts.sum() == k * draws
    # Each count is Binomial(5000, 0.1): mean 500, sd ~21. Five sd either side holds for all
    # 100 positions with probability > 0.9999; a sampler that favours early or late samples
    # is far outside.
    mean, sd = draws * p, math.sqrt(draws * p * (1 - p))
    assert counts.min() >= mean - 5 * sd, (counts.argmin(), counts.min())
    assert counts.max() <= mean + 5 * sd, (counts.argmax(), counts.max())
    # No subtler tilt overall: chi-square (99 degrees of freedom: mean 99, sd 14).
    chi2 = float(((counts - mean) ** 2 / (mean * (1 - p))).sum())
    assert chi2 < 99 + 5 * 14, chi2
    # The first k added (the initial reservoir) and the last k are not favoured either: how many
    # of a group of k a draw holds is hypergeometric (variance k p (1-p) (n-k)/(n-1)). An
    # off-by-one in Algorithm R (replace with probability k/(i-1)) keeps the first k 10% less.
    group_sd = math.sqrt(draws * k * p * (1 - p) * (n - k) / (n - 1))
    for group in (stream[:k], stream[-k:]):
        assert abs(counts[group].sum() - k * mean) <= 5 * group_sd, counts[group]


def test_reservoir_follows_the_order_samples_were_added_not_their_positions():
    pool = random_pool(["x"] * 60)
    perm = np.random.default_rng(1).permutation(60)
    moved = permuted(pool, perm)
    for seed in range(5):
        expected = Reservoir().sample(pool, 7, seed)
        assert [int(perm[p]) for p in Reservoir().sample(moved, 7, seed)] == expected


def test_reservoir_breaks_timestamp_ties_by_position():
    ordered = random_pool(["x"] * 40)
    same_time = random_pool(["x"] * 40, timestamps=[3.0] * 40)
    for seed in range(5):
        assert Reservoir().sample(same_time, 6, seed) == Reservoir().sample(ordered, 6, seed)


# --- class_balanced ------------------------------------------------------------------------------


def interleaved(**sizes: int) -> list[str]:
    """Labels of the given sizes, mixed by a fixed shuffle."""
    labels = [label for label, size in sizes.items() for _ in range(size)]
    return [labels[i] for i in np.random.default_rng(2).permutation(len(labels))]


def label_counts(pool: ReplayPool, positions: list[int]) -> Counter:
    return Counter(pool.labels[p] for p in positions)


def test_class_balanced_evens_out_the_labels_when_every_class_has_enough():
    pool = random_pool(interleaved(cat=50, dog=30, eel=20))
    for seed in range(3):
        for k in range(1, 61):  # every class can give k/3
            counts = label_counts(pool, ClassBalanced().sample(pool, k, seed))
            values = [counts.get(label, 0) for label in ("cat", "dog", "eel")]
            assert sum(values) == k
            assert max(values) - min(values) <= 1, (k, counts)
    # Labels take turns in sorted order, so the first ones get the remainder.
    assert label_counts(pool, ClassBalanced().sample(pool, 5, 0)) == {"cat": 2, "dog": 2, "eel": 1}


def test_class_balanced_fills_in_from_the_others_when_a_class_runs_out():
    pool = random_pool(interleaved(ant=50, bee=30, cow=3))
    counts = label_counts(pool, ClassBalanced().sample(pool, 30, 4))
    assert counts["cow"] == 3  # all it has
    assert counts["ant"] + counts["bee"] == 27 and abs(counts["ant"] - counts["bee"]) <= 1
    counts = label_counts(pool, ClassBalanced().sample(pool, 70, 4))
    assert counts == {"ant": 37, "bee": 30, "cow": 3}


def test_class_balanced_draws_each_class_at_random():
    pool = random_pool(interleaved(cat=50, dog=30, eel=6))
    eels = {p for p in range(len(pool)) if pool.labels[p] == "eel"}
    seen = Counter()
    for seed in range(300):
        chosen = ClassBalanced().sample(pool, 3, seed)
        assert label_counts(pool, chosen) == {"cat": 1, "dog": 1, "eel": 1}
        seen.update(p for p in chosen if p in eels)
    assert set(seen) == eels  # every eel gets its turn, none always
    assert max(seen.values()) < 100  # 300 draws, 6 eels: 50 each on average


def test_class_balanced_recent_first_takes_the_newest_of_each_class():
    labels = interleaved(cat=20, dog=20, eel=20)
    timestamps = np.random.default_rng(8).permutation(60).astype(float)
    pool = random_pool(labels, timestamps=timestamps)
    sampler = ClassBalanced(ClassBalanced.Config(recent_first=True))
    chosen = sampler.sample(pool, 6, seed=0)
    for label in ("cat", "dog", "eel"):
        members = [p for p in range(60) if labels[p] == label]
        newest = sorted(members, key=lambda p: timestamps[p])[-2:]
        assert sorted(p for p in chosen if labels[p] == label) == sorted(newest)
    assert [sampler.sample(pool, 6, seed) for seed in (1, 2)] == [chosen, chosen]
    # Equal timestamps: the one stored later was added later.
    tied = random_pool(["a", "a", "a", "b", "b"], timestamps=[1.0] * 5)
    assert sorted(sampler.sample(tied, 2, seed=0)) == [2, 4]


def test_class_balanced_refuses_a_pool_without_a_timestamp_per_sample():
    pool = ReplayPool(["a", "b", "a"], unit_rows(np.eye(3)), [1.0, 2.0])
    with pytest.raises(InvalidArgument) as exc:
        ClassBalanced().sample(pool, 2, seed=0)
    assert exc.value.violations[0].field == "pool.timestamps"


# --- diverse -------------------------------------------------------------------------------------

BLOB_SIZES = (100, 40, 20, 10, 5)


def blobs(seed: int = 0) -> tuple[ReplayPool, np.ndarray]:
    """Five tight blobs around orthogonal directions, stored blob by blob (the first 100
    positions are all blob 0), and each sample's blob."""
    rng = np.random.default_rng(seed)
    dims = 16
    blob = np.repeat(np.arange(len(BLOB_SIZES)), BLOB_SIZES)
    centres = np.eye(dims)[blob]
    vectors = unit_rows(centres + rng.normal(scale=0.02, size=(len(blob), dims)))
    labels = ["same"] * len(blob)
    return ReplayPool(labels, vectors, [float(i) for i in range(len(blob))]), blob


@pytest.mark.parametrize("seed", range(8))
def test_diverse_takes_one_sample_from_each_well_separated_cluster(seed):
    pool, blob = blobs(seed)
    chosen = Diverse().sample(pool, 5, seed)
    assert sorted(blob[chosen]) == [0, 1, 2, 3, 4], blob[chosen]
    # ... and the most central one: nearest the (unit) mean of its blob.
    for p in chosen:
        members = np.flatnonzero(blob == blob[p])
        mean = pool.vectors[members].mean(axis=0)
        mean /= np.linalg.norm(mean)
        distances = np.linalg.norm(pool.vectors[members] - mean, axis=1)
        assert p in members[np.argsort(distances)[:3]]


def test_diverse_covers_every_cluster_when_k_is_larger():
    pool, blob = blobs(3)
    for seed in range(4):
        chosen = Diverse().sample(pool, 12, seed)
        assert len(set(chosen)) == 12
        assert set(blob[chosen]) == {0, 1, 2, 3, 4}


def test_diverse_is_deterministic_for_a_seed_and_config():
    pool, _ = blobs(1)
    few = Diverse(Diverse.Config(iterations=1))
    assert few.sample(pool, 30, 9) == few.sample(pool, 30, 9)
    assert Diverse().sample(pool, 30, 9) == Diverse().sample(pool, 30, 9)


def test_diverse_iterations_are_bounded():
    assert Diverse.Config().iterations == 20
    for bad in (0, 301):
        with pytest.raises(ValidationError):
            Diverse.Config(iterations=bad)


def test_diverse_refuses_vectors_that_do_not_match_the_pool():
    pool = ReplayPool(["a"] * 4, unit_rows(np.eye(3)), [0.0] * 4)
    with pytest.raises(InvalidArgument) as exc:
        Diverse().sample(pool, 2, seed=0)
    assert exc.value.violations[0].field == "pool.vectors"


def test_farthest_first_fills_with_the_samples_farthest_from_those_chosen():
    vectors = unit_rows([[1, 0], [0.99, 0.14], [0, 1], [-1, 0], [-0.99, 0.14]])
    assert farthest_first(vectors, [0], 2) == [3, 2]
    assert farthest_first(vectors, [], 1) == [0]


# --- all three -----------------------------------------------------------------------------------


@pytest.mark.parametrize("sampler", [Reservoir(), ClassBalanced(), Diverse()], ids=str)
def test_any_integer_seed_works(sampler):
    pool = random_pool(interleaved(cat=20, dog=10))
    for seed in (-1, -(2**40), 2**40):
        chosen = sampler.sample(pool, 5, seed)
        assert chosen == sampler.sample(pool, 5, seed)
        assert len(set(chosen)) == 5
