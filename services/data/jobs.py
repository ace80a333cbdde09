"""The data service's work: ingest, upload, clean, augment, split, profile. No gRPC here.

Each long-running job has a ``plan_*`` step that checks a request up front (so bad input fails
before an operation exists) and a ``run_*`` step that does the work inside the operation. Plugins
are reached only through the registry.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeline.artifacts import Lineage
from forgeline.datasets import Dataset, DatasetRepository
from forgeline.errors import (
    ForgelineError,
    Internal,
    InvalidArgument,
    ResourceExhausted,
    Violations,
    excerpt,
)
from forgeline.modelio import safety_context
from forgeline.names import MAX_NAME_CHARS, artifact_name, artifact_ref
from forgeline.parsecheck import DataWarning, table_warnings
from forgeline.paths import MAX_PATH_CHARS
from forgeline.registry import (
    AugmentContext,
    CleanContext,
    Cleaner,
    Loader,
    LoadSource,
    PluginChoice,
    PluginRegistry,
    ReferencedDataset,
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
# Seeds reach numpy and scikit-learn, which take 0 to 2**32 - 1.
MAX_SEED = 2**32 - 1


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
class IngestOutcome:
    dataset: Dataset
    rows_read: int
    # What looks wrong about the parse (the dataset is kept).
    warnings: list[DataWarning]


@dataclass
class CleanOutcome:
    dataset: Dataset
    steps: list[StepReport]
    # The steps' numeric details keyed for gates (see _step_metrics).
    metrics: dict[str, float]


@dataclass
class Profile:
    dataset_id: str
    num_rows: int
    columns: list[tuple[str, str]]
    label_counts: dict[str, int]
    text_length: dict[str, float]
    duplicate_rate: float
    null_counts: dict[str, int]
    warnings: list[DataWarning]


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
    def dataset(self, ref: str, field: str = "dataset_id") -> Dataset:
        """The dataset ``ref`` names (an id, a name or name@version), or an error naming
        ``field``."""
        return self.datasets.get(artifact_ref(ref, field), field)

    def plan_ingest(
        self, source: str, loader: PluginChoice | None, name: str = ""
    ) -> tuple[Loader, list[LoadSource]]:
        """The loader and the resolved sources, or an error naming the field.

        A folder that no loader recognises as a whole (an HF datasets folder is recognised) is
        read file by file: every file the loader takes, sorted, each row tagged with its file
        name (column ``file``) so a folder per class or a file per class maps to labels.
        """
        if name:
            artifact_name(name, "name")
        if len(source) > MAX_PATH_CHARS:
            raise InvalidArgument.for_field(
                "source", f"is {len(source):,} characters; at most {MAX_PATH_CHARS:,}"
            )
        with self._paths_named_relative():
            return self._plan_ingest(source, loader)

    def _plan_ingest(
        self, source: str, loader: PluginChoice | None
    ) -> tuple[Loader, list[LoadSource]]:
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
            return plugin, [self._load_source(url=source)]
        path = self.paths.resolve(source, "source")
        if plugin is None or (path.is_dir() and not plugin.detects(path)):
            plugin, files = self._files_and_loader(path, plugin)
        else:
            files = [path]
        return plugin, [self._load_source(path=f) for f in files]

    def _load_source(self, **where: Any) -> LoadSource:
        """A source under this service's limits; ``http_allow`` also for a file listing URLs."""
        return LoadSource(
            max_rows=self.settings.max_rows,
            http_allow=tuple(self.settings.http_allow),
            paths=self.paths,
            **where,
        )

    @contextmanager
    def _paths_named_relative(self) -> Iterator[None]:
        """Errors leave naming server paths relative to their root: a loader names the
        absolute path it opened, which is nothing a client should learn."""
        try:
            yield
        except ForgelineError as exc:
            raise self.paths.redact_error(exc) from None

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
        files = self.paths.walk(path, "source")
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
    ) -> IngestOutcome:
        import pyarrow as pa

        plugin, sources = self.plan_ingest(source, loader, name)
        parts, rows, warnings = [], 0, []
        for i, load_source in enumerate(sources):
            where = load_source.url or load_source.path.name
            ctx.progress(0.7 * i / len(sources), f"reading {where} with loader {plugin.name}")
            with self._paths_named_relative():
                part = plugin.load(load_source)
                found = plugin.check_parse(load_source, part)
            rows += part.num_rows
            if rows > self.settings.max_rows:
                raise ResourceExhausted(
                    f"{excerpt(source)} has more than {self.settings.max_rows} rows "
                    "(FORGELINE_MAX_ROWS)",
                    reason="TOO_MANY_ROWS",
                )
            if len(sources) > 1:
                found = [DataWarning(w.code, f"{where}: {w.message}") for w in found]
                part = part.append_column("file", pa.array([load_source.path.stem] * len(part)))
            warnings.extend(found)
            parts.append(part)
        raw = pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]
        table, text_column, label_column = apply_mapping(raw, mapping, "source")
        warnings.extend(_mapping_warnings(raw, text_column))
        warnings.extend(table_warnings(table, text_column, label_column))
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
                # ProfileDataset repeats them: a parse that looked wrong stays visible.
                "warnings": [w.to_json() for w in warnings],
            },
        )
        dataset = self.datasets.save(
            table,
            name=name or _name_from_source(source),
            text_column=text_column,
            label_column=label_column,
            lineage=lineage,
        )
        ctx.metrics({"rows": dataset.num_rows, "files": len(sources), "warnings": len(warnings)})
        return IngestOutcome(dataset, raw.num_rows, warnings)

    # --- clean ------------------------------------------------------------------------------
    def plan_clean(
        self, dataset_id: str, cleaners: list[PluginChoice], output_name: str = "", seed: int = 0
    ) -> tuple[Dataset, list]:
        dataset = self.dataset(dataset_id)
        _check_output(output_name, seed)
        if not cleaners:
            raise InvalidArgument.for_field("cleaners", "name at least one cleaner")
        plugins = self.registry.create_all("cleaners", cleaners, "cleaners")
        self._references(plugins)
        return dataset, plugins

    def _references(self, plugins: list[Cleaner]) -> dict[str, Dataset]:
        """The other datasets the cleaners name (Cleaner.references), by reference; a missing
        one is an error naming its config field."""
        found: dict[str, Dataset] = {}
        for i, cleaner in enumerate(plugins):
            for field, ref in cleaner.references().items():
                if ref not in found:
                    found[ref] = self.dataset(ref, f"cleaners[{i}].config.{field}")
        return found

    def run_clean(
        self,
        dataset_id: str,
        cleaners: list[PluginChoice],
        output_name: str,
        seed: int,
        ctx: OperationContext,
    ) -> CleanOutcome:
        dataset, plugins = self.plan_clean(dataset_id, cleaners, output_name, seed)
        table = self.datasets.read(dataset)
        references = self._references(plugins)
        clean_ctx = CleanContext(
            dataset.text_column or TEXT,
            dataset.label_column,
            seed,
            ctx.check_cancelled,
            registry=self.registry,
            safety=self.safety,
            datasets={
                ref: ReferencedDataset(d.id, self.datasets.read(d), d.text_column, d.label_column)
                for ref, d in references.items()
            },
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
                    **{f"{cleaner.name}.{k}": v for k, v in _numbers(result.details).items()},
                },
                step=i + 1,  # the cleaner's position in the chain, from 1 (0 means "no step")
            )
            table = result.table
        ctx.progress(len(plugins) / (len(plugins) + 1), "writing dataset")
        lineage = Lineage(
            parent_ids=[dataset.id, *(d.id for d in references.values() if d.id != dataset.id)],
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
        return CleanOutcome(out, steps, _step_metrics(steps))

    # --- augment ----------------------------------------------------------------------------
    def plan_augment(
        self,
        dataset_id: str,
        augmenters: list[PluginChoice],
        output_name: str = "",
        seed: int = 0,
    ):
        dataset = self.dataset(dataset_id)
        _check_output(output_name, seed)
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

        dataset, plugins = self.plan_augment(dataset_id, augmenters, output_name, seed)
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
        self, dataset_id: str, fractions: Mapping[str, float], stratify: bool, seed: int = 0
    ) -> Dataset:
        dataset = self.dataset(dataset_id)
        problems = Violations()
        _check_seed(seed, problems)
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

        dataset = self.plan_split(dataset_id, fractions, stratify, seed)
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
                # cut so the part's name is still a valid name (forgeline.names)
                name=f"{dataset.name[: MAX_NAME_CHARS - len(key) - 1]}-{key}",
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

        dataset = self.dataset(dataset_id)
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
            warnings=_profile_warnings(dataset, table),
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
        table, text, label = apply_mapping(table, mapping, "batch")
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


def apply_mapping(
    table: pa.Table, mapping: ColumnMapping, source_field: str
) -> tuple[pa.Table, str, str]:
    """Renames the text and label columns to "text"/"label" and keeps the asked-for others.
    ``source_field`` is the request field a table with two columns of one name is blamed on."""
    import pyarrow as pa

    columns = table.column_names
    twice = next((c for c in columns if columns.count(c) > 1), None)
    if twice is not None:
        raise InvalidArgument.for_field(
            source_field,
            f"{columns.count(twice)} columns are named {excerpt(twice)}; rename all but one",
            reason="DUPLICATE_COLUMN",
        )
    available = _listed(columns)
    text_source = mapping.text or (TEXT if TEXT in columns else "")
    label_source = mapping.label or (LABEL if LABEL in columns else "")
    problems = Violations()
    # No text column is a tabular dataset (census rows, scores): kept, and ingest says so.
    if text_source and text_source not in columns:
        problems.add(
            "columns.text",
            f"column {excerpt(text_source)} not in source: columns are {available}",
        )
    if label_source and label_source not in columns:
        problems.add(
            "columns.label",
            f"column {excerpt(label_source)} not in source: columns are {available}",
        )
    for i, keep in enumerate(mapping.keep):
        if keep not in columns:
            problems.add(
                f"columns.keep[{i}]",
                f"column {excerpt(keep)} not in source: columns are {available}",
            )
    problems.raise_if_any()
    out_names, out_columns = [], []
    if text_source:
        text = table.column(text_source)
        if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
            raise InvalidArgument.for_field(
                "columns.text", f"column {excerpt(text_source)} holds {text.type}, not text"
            )
        out_names.append(TEXT)
        out_columns.append(text)
    if label_source:
        out_names.append(LABEL)
        out_columns.append(table.column(label_source))
    others = mapping.keep or tuple(c for c in columns if c not in (text_source, label_source))
    for column in others:
        if column in (TEXT, LABEL):
            continue  # a source column named like a target that was mapped elsewhere
        out_names.append(column)
        out_columns.append(table.column(column))
    table = pa.table(out_columns, names=out_names)
    return table, TEXT if text_source else "", LABEL if label_source else ""


def _numbers(details: Mapping[str, Any]) -> dict[str, float]:
    """The numbers among a cleaner's details (not flags, not text)."""
    return {
        key: float(value)
        for key, value in details.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def _step_metrics(steps: list[StepReport]) -> dict[str, float]:
    """Every step's numeric details keyed ``<cleaner>_<detail>`` so a pipeline gate can name
    one (gates read dotted identifiers); a cleaner that runs more than once in the chain is
    keyed ``<cleaner>_<step>_<detail>`` instead, the step counted from 1."""
    runs = Counter(step.cleaner for step in steps)
    metrics: dict[str, float] = {}
    for position, step in enumerate(steps, start=1):
        prefix = step.cleaner if runs[step.cleaner] == 1 else f"{step.cleaner}_{position}"
        for key, value in _numbers(step.details).items():
            metrics[f"{prefix}_{key}"] = value
    return metrics


def _profile_warnings(dataset: Dataset, table: pa.Table) -> list[DataWarning]:
    """The warnings of the ingest that made ``dataset`` (kept in its lineage), then what its
    rows show now, each once."""
    lineage = dataset.record.lineage
    ingested = lineage.producer == f"{SERVICE}/IngestDataset"
    found = [DataWarning.from_json(w) for w in lineage.config.get("warnings", []) if ingested]
    found += table_warnings(table, dataset.text_column, dataset.label_column)
    return list(dict.fromkeys(found))


def _mapping_warnings(raw: pa.Table, text_column: str) -> list[DataWarning]:
    """NO_TEXT_COLUMN when the source had no text column and none was named: fine for tabular
    data, a mistake for text data, so it is said rather than refused."""
    if text_column:
        return []
    return [
        DataWarning(
            "NO_TEXT_COLUMN",
            f"no column is the text (none is named 'text' and columns.text is empty): the "
            f"dataset keeps its columns ({_listed(raw.column_names)}) as a table; name the "
            "text column in columns.text for cleaners and training that read text",
        )
    ]


def _listed(columns: list[str], most: int = 20) -> str:
    """Column names for a message: the first ``most``, each excerpted, and how many more."""
    shown = ", ".join(c if len(c) <= 40 else excerpt(c, 40) for c in columns[:most])
    return shown + (f" and {len(columns) - most} more" if len(columns) > most else "")


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
    """A valid dataset name (forgeline.names) made from the source's file name."""
    stem = Path(source.rstrip("/").split("?")[0]).stem
    name = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in stem)
    return name.strip("-_")[:MAX_NAME_CHARS].rstrip("-_") or "dataset"


def _check_output(output_name: str, seed: int) -> None:
    """The output name (when one is given) and the seed of a clean or augment request."""
    if output_name:
        artifact_name(output_name, "output_name")
    problems = Violations()
    _check_seed(seed, problems)
    problems.raise_if_any()


def _check_seed(seed: int, problems: Violations) -> None:
    if not 0 <= seed <= MAX_SEED:
        problems.add("seed", f"must be within [0, {MAX_SEED}], got {seed}")


def _unique(values):
    import numpy as np

    return np.unique(values.astype(str)) if values.dtype == object else np.unique(values)
