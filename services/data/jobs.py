"""The data service's work: ingest, upload, clean, augment, split, profile. No gRPC here.

Each long-running job has a ``plan_*`` step that checks a request up front (so bad input fails
before an operation exists) and a ``run_*`` step that does the work inside the operation. Plugins
are reached only through the registry.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeline.artifacts import Lineage
from forgeline.datasets import Dataset, DatasetRepository
from forgeline.errors import Internal, InvalidArgument, ResourceExhausted, Violations
from forgeline.modelio import safety_context
from forgeline.registry import (
    AugmentContext,
    CleanContext,
    Cleaner,
    Loader,
    LoadSource,
    PluginChoice,
    PluginRegistry,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from forgeline.artifacts import ArtifactStore
    from forgeline.operations import OperationContext
    from forgeline.paths import PathValidator
    from forgeline.settings import Settings

SERVICE = "forgeline.v1.DataService"
TEXT, LABEL = "text", "label"
EXAMPLE_CHARS = 200


@dataclass(frozen=True)
class ColumnMapping:
    text: str = ""
    label: str = ""
    keep: tuple[str, ...] = ()


@dataclass
class StepReport:
    cleaner: str
    rows_in: int
    rows_out: int
    examples: list[tuple[str, str]]
    details: dict[str, Any]
    seconds: float


@dataclass
class CleanOutcome:
    dataset: Dataset
    steps: list[StepReport]


@dataclass
class Profile:
    dataset_id: str
    num_rows: int
    columns: list[tuple[str, str]]
    label_counts: dict[str, int]
    text_length: dict[str, float]
    duplicate_rate: float
    null_counts: dict[str, int]


class DataJobs:
    def __init__(
        self,
        registry: PluginRegistry,
        datasets: DatasetRepository,
        paths: PathValidator,
        settings: Settings,
        artifacts: ArtifactStore,
    ) -> None:
        self.registry = registry
        self.datasets = datasets
        self.paths = paths
        self.settings = settings
        # The model lookup of cleaners that run a safety check (safety_filter with a classifier).
        self.safety = safety_context(artifacts)

    # --- ingest ---------------------------------------------------------------------------
    def plan_ingest(
        self, source: str, loader: PluginChoice | None
    ) -> tuple[Loader, list[LoadSource]]:
        """The loader and the resolved sources, or an error naming the field.

        A folder that no loader recognises as a whole (an HF datasets folder is recognised) is
        read file by file: every file the loader takes, sorted, each row tagged with its file
        name (column ``file``) so a folder per class or a file per class maps to labels.
        """
        is_url = source.startswith(("http://", "https://"))
        plugin = None
        if loader and loader.name:
            plugin = self.registry.create("loaders", loader.name, loader.config, "loader")
        elif is_url:
            plugin = self.registry.create("loaders", "http", {}, "loader")
        if is_url:
            if not plugin.reads_urls:
                raise InvalidArgument.for_field(
                    "loader.name", f"loader {plugin.name!r} reads files, not URLs"
                )
            return plugin, [LoadSource(url=source, max_rows=self.settings.max_rows)]
        path = self.paths.resolve(source, "source")
        if plugin is None or (path.is_dir() and not plugin.detects(path)):
            plugin, files = self._files_and_loader(path, plugin)
        else:
            files = [path]
        return plugin, [LoadSource(path=f, max_rows=self.settings.max_rows) for f in files]

    def _files_and_loader(self, path: Path, chosen: Loader | None) -> tuple[Loader, list[Path]]:
        classes = self.registry.load_kind("loaders")
        if chosen is None:
            for cls in classes:
                if cls.detects(path):
                    return self.registry.create("loaders", cls.name, {}, "loader"), [path]
        if not path.is_dir():
            known = sorted({ext for cls in classes for ext in cls.extensions})
            raise InvalidArgument.for_field(
                "loader.name",
                f"no loader recognises {path.name!r}; name one in loader.name, or use a file "
                f"ending in {', '.join(known)}",
            )
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        if chosen is not None:
            taken = [f for f in files if chosen.detects(f)]
        else:
            by_loader: dict[str, list[Path]] = {}
            for f in files:
                match = next((cls for cls in classes if cls.detects(f)), None)
                if match is not None:
                    by_loader.setdefault(match.name, []).append(f)
            if len(by_loader) > 1:
                raise InvalidArgument.for_field(
                    "loader.name",
                    f"folder {path.name!r} mixes file types ({', '.join(sorted(by_loader))}); "
                    "name the loader to use",
                )
            if by_loader:
                name, taken = next(iter(by_loader.items()))
                chosen = self.registry.create("loaders", name, {}, "loader")
            else:
                taken = []
        if not taken:
            raise InvalidArgument.for_field(
                "source", f"folder {path.name!r} holds no file a loader can read"
            )
        return chosen, taken

    def run_ingest(
        self,
        source: str,
        loader: PluginChoice | None,
        mapping: ColumnMapping,
        name: str,
        ctx: OperationContext,
    ) -> tuple[Dataset, int]:
        import pyarrow as pa

        plugin, sources = self.plan_ingest(source, loader)
        parts, rows = [], 0
        for i, load_source in enumerate(sources):
            where = load_source.url or load_source.path.name
            ctx.progress(0.7 * i / len(sources), f"reading {where} with loader {plugin.name}")
            part = plugin.load(load_source)
            rows += part.num_rows
            if rows > self.settings.max_rows:
                raise ResourceExhausted(
                    f"{source} has more than {self.settings.max_rows} rows (FORGELINE_MAX_ROWS)",
                    reason="TOO_MANY_ROWS",
                )
            if len(sources) > 1:
                part = part.append_column("file", pa.array([load_source.path.stem] * len(part)))
            parts.append(part)
        raw = pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]
        table, text_column, label_column = apply_mapping(raw, mapping)
        ctx.progress(0.7, f"read {raw.num_rows} rows; writing dataset")
        lineage = Lineage(
            producer=f"{SERVICE}/IngestDataset",
            operation=ctx.name,
            config={
                "source": source,
                "files": len(sources),
                "loader": plugin.name,
                "mapping": asdict(mapping),
                "loader_config": plugin.config.model_dump(mode="json"),
            },
        )
        dataset = self.datasets.save(
            table,
            name=name or _name_from_source(source),
            text_column=text_column,
            label_column=label_column,
            lineage=lineage,
        )
        ctx.metrics({"rows": dataset.num_rows, "files": len(sources)})
        return dataset, raw.num_rows

    # --- clean ------------------------------------------------------------------------------
    def plan_clean(self, dataset_id: str, cleaners: list[PluginChoice]) -> tuple[Dataset, list]:
        dataset = self.datasets.get(dataset_id)
        if not cleaners:
            raise InvalidArgument.for_field("cleaners", "name at least one cleaner")
        plugins = self.registry.create_all("cleaners", cleaners, "cleaners")
        return dataset, plugins

    def run_clean(
        self,
        dataset_id: str,
        cleaners: list[PluginChoice],
        output_name: str,
        seed: int,
        ctx: OperationContext,
    ) -> CleanOutcome:
        dataset, plugins = self.plan_clean(dataset_id, cleaners)
        table = self.datasets.read(dataset)
        clean_ctx = CleanContext(
            dataset.text_column or TEXT,
            dataset.label_column,
            seed,
            ctx.check_cancelled,
            registry=self.registry,
            safety=self.safety,
        )
        steps: list[StepReport] = []
        started = time.perf_counter()
        for i, cleaner in enumerate(plugins):
            ctx.progress(i / (len(plugins) + 1), f"running {cleaner.name}")
            t0 = time.perf_counter()
            result = cleaner.clean(table, clean_ctx)
            _check_kept_columns(table, result.table, cleaner.name)
            seconds = time.perf_counter() - t0
            steps.append(
                StepReport(
                    cleaner=cleaner.name,
                    rows_in=table.num_rows,
                    rows_out=result.table.num_rows,
                    examples=_short_examples(result.examples),
                    details=result.details,
                    seconds=seconds,
                )
            )
            ctx.metrics(
                {
                    f"{cleaner.name}.rows_out": result.table.num_rows,
                    f"{cleaner.name}.seconds": seconds,
                },
                step=i + 1,  # the cleaner's position in the chain, from 1 (0 means "no step")
            )
            table = result.table
        ctx.progress(len(plugins) / (len(plugins) + 1), "writing dataset")
        lineage = Lineage(
            parent_ids=[dataset.id],
            producer=f"{SERVICE}/CleanDataset",
            operation=ctx.name,
            config={"cleaners": [_plugin_config(p) for p in plugins], "seed": seed},
        )
        out = self.datasets.save(
            table,
            name=output_name or dataset.name,
            text_column=dataset.text_column,
            label_column=dataset.label_column,
            lineage=lineage,
        )
        elapsed = time.perf_counter() - started
        ctx.metrics(
            {
                "rows_in": dataset.num_rows,
                "rows_out": out.num_rows,
                "rows_per_second": dataset.num_rows / max(elapsed, 1e-9),
            }
        )
        return CleanOutcome(out, steps)

    # --- augment ----------------------------------------------------------------------------
    def plan_augment(self, dataset_id: str, augmenters: list[PluginChoice]):
        dataset = self.datasets.get(dataset_id)
        if not augmenters:
            raise InvalidArgument.for_field("augmenters", "name at least one augmenter")
        if not dataset.text_column:
            raise InvalidArgument.for_field(
                "dataset_id", f"dataset {dataset.id} has no text column to augment"
            )
        return dataset, self.registry.create_all("augmenters", augmenters, "augmenters")

    def run_augment(
        self,
        dataset_id: str,
        augmenters: list[PluginChoice],
        output_name: str,
        seed: int,
        drop_original: bool,
        ctx: OperationContext,
    ) -> tuple[Dataset, dict[str, int]]:
        import pyarrow as pa

        dataset, plugins = self.plan_augment(dataset_id, augmenters)
        table = self.datasets.read(dataset)
        aug_ctx = AugmentContext(
            dataset.text_column, dataset.label_column, seed, ctx.check_cancelled
        )
        parts = [] if drop_original else [table]
        added: dict[str, int] = {}
        for i, augmenter in enumerate(plugins):
            ctx.progress(i / (len(plugins) + 1), f"running {augmenter.name}")
            new_rows = augmenter.augment(table, aug_ctx)
            if new_rows.schema != table.schema:
                new_rows = new_rows.cast(table.schema)
            added[augmenter.name] = added.get(augmenter.name, 0) + new_rows.num_rows
            parts.append(new_rows)
        result = pa.concat_tables(parts)
        lineage = Lineage(
            parent_ids=[dataset.id],
            producer=f"{SERVICE}/AugmentDataset",
            operation=ctx.name,
            config={
                "augmenters": [_plugin_config(p) for p in plugins],
                "seed": seed,
                "drop_original": drop_original,
            },
        )
        out = self.datasets.save(
            result,
            name=output_name or dataset.name,
            text_column=dataset.text_column,
            label_column=dataset.label_column,
            lineage=lineage,
        )
        ctx.metrics({"rows_added": sum(added.values()), "rows_out": out.num_rows})
        return out, added

    # --- split ------------------------------------------------------------------------------
    def plan_split(
        self, dataset_id: str, fractions: Mapping[str, float], stratify: bool
    ) -> Dataset:
        dataset = self.datasets.get(dataset_id)
        problems = Violations()
        for key, value in fractions.items():
            if not 0.0 <= value <= 1.0:
                problems.add(f"{key}_fraction", f"must be within [0, 1], got {value}")
        if fractions["train"] <= 0:
            problems.add("train_fraction", "must be > 0")
        total = sum(fractions.values())
        if abs(total - 1.0) > 1e-6:
            problems.add("test_fraction", f"fractions must sum to 1, they sum to {total:.6g}")
        if stratify and not dataset.label_column:
            problems.add("stratify", f"dataset {dataset.id} has no label column")
        problems.raise_if_any()
        return dataset

    def run_split(
        self,
        dataset_id: str,
        fractions: Mapping[str, float],
        stratify: bool,
        seed: int,
        ctx: OperationContext,
    ) -> dict[str, Dataset]:
        import numpy as np

        dataset = self.plan_split(dataset_id, fractions, stratify)
        table = self.datasets.read(dataset)
        rng = np.random.default_rng(seed)
        if stratify:
            labels = table.column(dataset.label_column).to_numpy(zero_copy_only=False)
            groups = [np.flatnonzero(labels == value) for value in _unique(labels)]
        else:
            groups = [np.arange(table.num_rows)]
        names = [k for k in ("train", "validation", "test") if fractions[k] > 0]
        picked: dict[str, list] = {k: [] for k in names}
        for group in groups:
            order = rng.permutation(group)
            bounds = np.round(np.cumsum([fractions[k] for k in names]) * len(order)).astype(int)
            start = 0
            for key, end in zip(names, bounds, strict=True):
                picked[key].append(order[start:end])
                start = end
        out = {}
        for i, key in enumerate(names):
            ctx.progress(i / len(names), f"writing {key}")
            index = np.sort(np.concatenate(picked[key]))
            lineage = Lineage(
                parent_ids=[dataset.id],
                producer=f"{SERVICE}/SplitDataset",
                operation=ctx.name,
                config={
                    "split": key,
                    "fractions": dict(fractions),
                    "stratify": stratify,
                    "seed": seed,
                },
            )
            out[key] = self.datasets.save(
                table.take(index),
                name=f"{dataset.name}-{key}",
                text_column=dataset.text_column,
                label_column=dataset.label_column,
                lineage=lineage,
            )
        ctx.metrics({f"{k}_rows": d.num_rows for k, d in out.items()})
        return out

    # --- profile ----------------------------------------------------------------------------
    def run_profile(self, dataset_id: str, ctx: OperationContext) -> Profile:
        import numpy as np
        import pyarrow.compute as pc

        dataset = self.datasets.get(dataset_id)
        table = self.datasets.read(dataset)
        ctx.progress(0.2, "counting")
        label_counts: dict[str, int] = {}
        if dataset.label_column:
            counts = pc.value_counts(table.column(dataset.label_column)).to_pylist()
            label_counts = {str(c["values"]): int(c["counts"]) for c in counts}
        text_length: dict[str, float] = {}
        duplicate_rate = 0.0
        if dataset.text_column:
            lengths = pc.utf8_length(table.column(dataset.text_column)).to_numpy(
                zero_copy_only=False
            )
            lengths = lengths[~np.isnan(lengths.astype(float))]
            if len(lengths):
                text_length = {
                    "min": float(lengths.min()),
                    "max": float(lengths.max()),
                    "mean": float(lengths.mean()),
                    "std": float(lengths.std()),
                    "p50": float(np.percentile(lengths, 50)),
                    "p95": float(np.percentile(lengths, 95)),
                }
            ctx.progress(0.6, "measuring duplicates")
            dedup = self.registry.create("cleaners", "dedup_exact", {}, "profile")
            kept = dedup.clean(table, CleanContext(dataset.text_column, dataset.label_column))
            duplicate_rate = 1.0 - kept.table.num_rows / max(table.num_rows, 1)
        return Profile(
            dataset_id=dataset.id,
            num_rows=table.num_rows,
            columns=dataset.columns,
            label_counts=label_counts,
            text_length=text_length,
            duplicate_rate=duplicate_rate,
            null_counts={f.name: table.column(f.name).null_count for f in table.schema},
        )

    # --- upload -----------------------------------------------------------------------------
    def commit_upload(
        self,
        parts: list[pa.Table],
        name: str,
        text_column: str,
        label_column: str,
        request_id: str,
    ) -> Dataset:
        import pyarrow as pa

        if not parts:
            raise InvalidArgument.for_field("batch", "the stream carried no rows")
        try:
            table = pa.concat_tables(parts, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InvalidArgument.for_field(
                "batch", f"batches do not share a schema: {exc}"
            ) from exc
        if table.num_rows > self.settings.max_rows:
            raise ResourceExhausted(
                f"upload has {table.num_rows} rows; the limit is {self.settings.max_rows} "
                "(FORGELINE_MAX_ROWS); nothing was kept",
                reason="TOO_MANY_ROWS",
            )
        mapping = ColumnMapping(text=text_column, label=label_column)
        table, text, label = apply_mapping(table, mapping)
        lineage = Lineage(producer=f"{SERVICE}/UploadRecords", config={"name": name})
        return self.datasets.save(
            table,
            name=name,
            text_column=text,
            label_column=label,
            lineage=lineage,
            request_id=request_id,
        )

    # --- helpers ----------------------------------------------------------------------------


def apply_mapping(table: pa.Table, mapping: ColumnMapping) -> tuple[pa.Table, str, str]:
    """Renames the text and label columns to "text"/"label" and keeps the asked-for others."""
    import pyarrow as pa

    columns = table.column_names
    available = ", ".join(columns)
    text_source = mapping.text or (TEXT if TEXT in columns else "")
    label_source = mapping.label or (LABEL if LABEL in columns else "")
    problems = Violations()
    if not text_source:
        problems.add("columns.text", f"name the text column: columns are {available}")
    elif text_source not in columns:
        problems.add(
            "columns.text", f"column {text_source!r} not in source: columns are {available}"
        )
    if label_source and label_source not in columns:
        problems.add(
            "columns.label", f"column {label_source!r} not in source: columns are {available}"
        )
    for i, keep in enumerate(mapping.keep):
        if keep not in columns:
            problems.add(
                f"columns.keep[{i}]", f"column {keep!r} not in source: columns are {available}"
            )
    problems.raise_if_any()
    text = table.column(text_source)
    if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        raise InvalidArgument.for_field(
            "columns.text", f"column {text_source!r} holds {text.type}, not text"
        )
    out_names = [TEXT] + ([LABEL] if label_source else [])
    out_columns = [text] + ([table.column(label_source)] if label_source else [])
    others = mapping.keep or tuple(c for c in columns if c not in (text_source, label_source))
    for column in others:
        if column in (TEXT, LABEL):
            continue  # a source column named like a target that was mapped elsewhere
        out_names.append(column)
        out_columns.append(table.column(column))
    return pa.table(out_columns, names=out_names), TEXT, LABEL if label_source else ""


def _check_kept_columns(before: pa.Table, after: pa.Table, cleaner: str) -> None:
    missing = [c for c in before.column_names if c not in after.column_names]
    if missing:
        raise Internal(f"cleaner {cleaner!r} dropped columns {missing}; cleaners must keep them")


def _short_examples(examples: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """At most MAX_EXAMPLES examples, each text cut to EXAMPLE_CHARS (outliers are long)."""
    return [
        (text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 1] + "…", reason)
        for text, reason in examples[: Cleaner.MAX_EXAMPLES]
    ]


def _plugin_config(plugin) -> dict[str, Any]:
    return {"name": plugin.name, "config": plugin.config.model_dump(mode="json")}


def _name_from_source(source: str) -> str:
    stem = Path(source.rstrip("/").split("?")[0]).stem or "dataset"
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in stem).strip("-") or "dataset"


def _unique(values):
    import numpy as np

    return np.unique(values.astype(str)) if values.dtype == object else np.unique(values)
