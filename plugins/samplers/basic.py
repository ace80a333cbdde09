"""Replay samplers: reservoir (uniform over the stream), class_balanced and diverse (k-means)."""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.samplers import ReplayPool, Sampler
from forgeline.errors import InvalidArgument


def generator(seed: int) -> Any:
    """A numpy Generator for any integer seed (numpy itself refuses negative ones)."""
    import numpy as np

    return np.random.default_rng(seed if seed >= 0 else [1, -seed])


def added_order(pool: ReplayPool) -> Any:
    """The pool's positions in the order they were added: by timestamp, ties by position."""
    import numpy as np

    if len(pool.timestamps) != len(pool):
        raise InvalidArgument.for_field(
            "pool.timestamps", f"{len(pool.timestamps)} timestamps for {len(pool)} samples"
        )
    return np.argsort(np.asarray(pool.timestamps, dtype=np.float64), kind="stable")


class Reservoir(Sampler):
    """Reservoir sampling (Algorithm R) over the samples as added: each equally likely to replay."""

    name = "reservoir"

    class Config(PluginConfig):
        pass

    def sample(self, pool: ReplayPool, k: int, seed: int) -> list[int]:
        import numpy as np

        n = len(pool)
        order = added_order(pool)
        if k <= 0:
            return []
        if k >= n:
            return list(range(n))
        reservoir = order[:k].copy()
        # Algorithm R: the i-th item of the stream (0-based, i >= k) replaces slot j, drawn
        # uniformly from [0, i], when j < k. Drawn at once; each slot keeps its last writer.
        steps = np.arange(k, n)
        slots = generator(seed).integers(0, steps + 1)
        kept = slots < k
        last = np.full(k, -1, dtype=np.int64)
        np.maximum.at(last, slots[kept], steps[kept])
        replaced = last >= 0
        reservoir[replaced] = order[last[replaced]]
        return [int(p) for p in reservoir]


class ClassBalanced(Sampler):
    """As equal a count per label as possible; when a label runs out, the others fill in.

    Labels take turns in sorted order; each label's samples come in a seeded random order (or
    newest first)."""

    name = "class_balanced"

    class Config(PluginConfig):
        recent_first: bool = Field(
            False,
            description="Prefer the newest samples within each class instead of a random order.",
        )

    def sample(self, pool: ReplayPool, k: int, seed: int) -> list[int]:
        n = len(pool)
        order = added_order(pool)
        if k <= 0:
            return []
        if k >= n:
            return list(range(n))
        by_label: dict[str, list[int]] = {}
        for position in order:  # each class's positions, oldest first
            by_label.setdefault(str(pool.labels[position]), []).append(int(position))
        rng = generator(seed)
        queues = []
        for label in sorted(by_label):
            positions = by_label[label]
            if self.config.recent_first:
                queues.append(positions[::-1])
            else:
                queues.append([positions[i] for i in rng.permutation(len(positions))])
        chosen: list[int] = []
        depth = 0
        while len(chosen) < k:
            for queue in queues:
                if depth < len(queue):
                    chosen.append(queue[depth])
                    if len(chosen) == k:
                        break
            depth += 1
        return chosen


class Diverse(Sampler):
    """Spreads the replay over the embedding space: the sample nearest each k-means centroid.

    Seeded k-means++ then spherical k-means (faiss) with one cluster per sample to choose."""

    name = "diverse"

    class Config(PluginConfig):
        iterations: int = Field(
            20, ge=1, le=300, description="K-means iterations (after k-means++ seeding)."
        )

    def sample(self, pool: ReplayPool, k: int, seed: int) -> list[int]:
        import numpy as np

        n = len(pool)
        if k <= 0:
            return []
        if k >= n:
            return list(range(n))
        vectors = np.ascontiguousarray(pool.vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != n or vectors.shape[1] == 0:
            raise InvalidArgument.for_field(
                "pool.vectors",
                f"expected {n} rows of one embedding each, got an array of shape {vectors.shape}",
            )
        if not np.isfinite(vectors).all():
            raise InvalidArgument.for_field("pool.vectors", "embeddings must be finite")
        rng = generator(seed)
        centroids = self.kmeans(vectors, k, rng)
        chosen = self.nearest(vectors, centroids)
        if len(chosen) < k:
            chosen += farthest_first(vectors, chosen, k - len(chosen))
        return chosen

    def kmeans(self, vectors: Any, k: int, rng: Any) -> Any:
        import faiss

        init = kmeans_plus_plus(vectors, k, rng)
        kmeans = faiss.Kmeans(
            vectors.shape[1],
            k,
            niter=self.config.iterations,
            seed=int(rng.integers(0, 2**31 - 1)),
            spherical=True,  # the rows are unit length: cluster by cosine
            min_points_per_centroid=1,  # few points per centroid is the point here: no warning
            verbose=False,
        )
        kmeans.train(vectors, init_centroids=init)
        return kmeans.centroids

    @staticmethod
    def nearest(vectors: Any, centroids: Any) -> list[int]:
        """For each centroid, tightest first, the nearest sample not already chosen (among its
        few nearest; a centroid whose neighbours are all taken gets none)."""
        import faiss
        import numpy as np

        index = faiss.IndexFlatL2(vectors.shape[1])
        index.add(vectors)
        distances, neighbours = index.search(
            np.ascontiguousarray(centroids, dtype=np.float32), min(len(vectors), 16)
        )
        chosen: list[int] = []
        taken: set[int] = set()
        for c in np.argsort(distances[:, 0], kind="stable"):
            for p in neighbours[c]:
                if p >= 0 and int(p) not in taken:
                    chosen.append(int(p))
                    taken.add(int(p))
                    break
        return chosen


def kmeans_plus_plus(vectors: Any, k: int, rng: Any) -> Any:
    """Greedy k-means++ seeding (as scikit-learn's): each next centre is, of 2 + log(k) samples
    drawn with probability proportional to their squared distance from the nearest centre so
    far, the one that most lowers the total (uniform among the unchosen when all are at 0)."""
    import numpy as np

    n = len(vectors)
    trials = 2 + int(math.log(k))
    norms = squared_norms(vectors)
    picks = [int(rng.integers(n))]
    closest = squared_distances(vectors, norms, [picks[0]])[:, 0]
    closest[picks[0]] = 0.0
    for _ in range(1, k):
        total = closest.sum()
        if total > 0:
            candidates = rng.choice(n, size=trials, p=closest / total)
            lowered = np.minimum(closest[:, None], squared_distances(vectors, norms, candidates))
            best = int(np.argmin(lowered.sum(axis=0)))
            pick, closest = int(candidates[best]), lowered[:, best].copy()
        else:  # fewer distinct vectors than clusters: any unchosen duplicate
            pick = int(rng.choice(np.setdiff1d(np.arange(n), picks)))
        picks.append(pick)
        closest[pick] = 0.0
    return vectors[picks].copy()


def farthest_first(vectors: Any, chosen: list[int], count: int) -> list[int]:
    """``count`` more samples, each the farthest from everything chosen so far (ties: the
    earliest position)."""
    import faiss
    import numpy as np

    norms = squared_norms(vectors)
    closest = np.full(len(vectors), np.inf)
    if chosen:
        index = faiss.IndexFlatL2(vectors.shape[1])
        index.add(vectors[chosen])
        distances, _ = index.search(vectors, 1)
        closest = distances[:, 0].astype(np.float64)
    closest[chosen] = -1.0
    extra: list[int] = []
    for _ in range(count):
        pick = int(np.argmax(closest))
        extra.append(pick)
        np.minimum(closest, squared_distances(vectors, norms, [pick])[:, 0], out=closest)
        closest[pick] = -1.0
    return extra


def squared_norms(vectors: Any) -> Any:
    import numpy as np

    return np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64)


def squared_distances(vectors: Any, norms: Any, positions: Any) -> Any:
    """Squared L2 distances from every row to each row in ``positions``: (rows, positions)."""
    import numpy as np

    dots = (vectors @ vectors[positions].T).astype(np.float64)
    return np.maximum(norms[:, None] + norms[positions][None, :] - 2.0 * dots, 0.0)
