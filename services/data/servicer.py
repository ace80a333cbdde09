"""forgeline.v1.DataService over gRPC: translates messages to DataJobs calls and back, no more."""

from __future__ import annotations

import asyncio

import pyarrow as pa

from forgeline.convert import artifact, from_struct, plugin_choice, struct
from forgeline.datasets import Dataset, DatasetRepository
from forgeline.errors import InvalidArgument, ResourceExhausted, excerpt
from forgeline.names import artifact_name
from forgeline.operations import MethodSpec, page_offset
from forgeline.parsecheck import DataWarning
from forgeline.registry import PluginChoice
from forgeline.server import Kernel, ServiceDefinition
from forgeline.services.data.jobs import SERVICE, ColumnMapping, DataJobs
from forgeline.v1 import data_service_pb2 as pb
from forgeline.v1 import data_service_pb2_grpc

# Idempotency keys are stored with the dataset; a UUID is 36 characters.
MAX_REQUEST_ID_CHARS = 256


def build(kernel: Kernel) -> list[ServiceDefinition]:
    """The entry point of ``forgeline.services: data``."""
    jobs = DataJobs(
        kernel.registry,
        DatasetRepository(kernel.artifacts),
        kernel.paths,
        kernel.settings,
        kernel.artifacts,
    )
    servicer = DataServicer(kernel, jobs)
    return [
        ServiceDefinition(
            full_name=SERVICE,
            servicer=servicer,
            add_to_server=data_service_pb2_grpc.add_DataServiceServicer_to_server,
            methods=servicer.method_specs(),
        )
    ]


def dataset_pb(dataset: Dataset) -> pb.Dataset:
    return pb.Dataset(
        artifact=artifact(dataset.record),
        name=dataset.name,
        version=dataset.record.version,
        num_rows=dataset.num_rows,
        columns=[pb.Column(name=n, type=t) for n, t in dataset.columns],
        text_column=dataset.text_column,
        label_column=dataset.label_column,
    )


def _warnings_pb(warnings: list[DataWarning]) -> list[pb.DataWarning]:
    return [pb.DataWarning(code=w.code, message=w.message) for w in warnings]


def _choices(specs) -> list[PluginChoice]:
    return [plugin_choice(s) for s in specs]


def _choice(spec) -> PluginChoice | None:
    return plugin_choice(spec) if spec.name else None


def _fractions(request: pb.SplitDatasetRequest) -> dict[str, float]:
    return {
        "train": request.train_fraction,
        "validation": request.validation_fraction,
        "test": request.test_fraction,
    }


class DataServicer(data_service_pb2_grpc.DataServiceServicer):
    def __init__(self, kernel: Kernel, jobs: DataJobs) -> None:
        self._kernel = kernel
        self._jobs = jobs

    # --- long-running methods: declared once; the kernel makes their handlers ---------------
    def method_specs(self) -> list[MethodSpec]:
        jobs = self._jobs

        def ingest(r: pb.IngestDatasetRequest, ctx) -> pb.IngestDatasetResponse:
            mapping = ColumnMapping(r.columns.text, r.columns.label, tuple(r.columns.keep))
            done = jobs.run_ingest(r.source, _choice(r.loader), mapping, r.name, ctx)
            return pb.IngestDatasetResponse(
                dataset=dataset_pb(done.dataset),
                rows_read=done.rows_read,
                warnings=_warnings_pb(done.warnings),
            )

        def clean(r: pb.CleanDatasetRequest, ctx) -> pb.CleanDatasetResponse:
            outcome = jobs.run_clean(r.dataset_id, _choices(r.cleaners), r.output_name, r.seed, ctx)
            return pb.CleanDatasetResponse(
                dataset=dataset_pb(outcome.dataset),
                steps=[
                    pb.CleaningStepReport(
                        cleaner=s.cleaner,
                        rows_in=s.rows_in,
                        rows_out=s.rows_out,
                        examples=[pb.CleaningExample(text=t, reason=w) for t, w in s.examples],
                        details=struct(s.details),
                        seconds=s.seconds,
                    )
                    for s in outcome.steps
                ],
                metrics=outcome.metrics,
            )

        def augment(r: pb.AugmentDatasetRequest, ctx) -> pb.AugmentDatasetResponse:
            dataset, added = jobs.run_augment(
                r.dataset_id, _choices(r.augmenters), r.output_name, r.seed, r.drop_original, ctx
            )
            return pb.AugmentDatasetResponse(dataset=dataset_pb(dataset), rows_added=added)

        def split(r: pb.SplitDatasetRequest, ctx) -> pb.SplitDatasetResponse:
            parts = jobs.run_split(r.dataset_id, _fractions(r), r.stratify, r.seed, ctx)
            return pb.SplitDatasetResponse(**{k: dataset_pb(d) for k, d in parts.items()})

        def profile(r: pb.ProfileDatasetRequest, ctx) -> pb.ProfileDatasetResponse:
            p = jobs.run_profile(r.dataset_id, ctx)
            return pb.ProfileDatasetResponse(
                profile=pb.DatasetProfile(
                    dataset_id=p.dataset_id,
                    num_rows=p.num_rows,
                    columns=[pb.Column(name=n, type=t) for n, t in p.columns],
                    label_counts=p.label_counts,
                    text_length=pb.LengthStats(**p.text_length),
                    duplicate_rate=p.duplicate_rate,
                    null_counts=p.null_counts,
                    warnings=_warnings_pb(p.warnings),
                )
            )

        return [
            MethodSpec(
                "IngestDataset",
                ingest,
                lambda r: jobs.plan_ingest(r.source, _choice(r.loader), r.name),
            ),
            MethodSpec(
                "CleanDataset",
                clean,
                lambda r: jobs.plan_clean(
                    r.dataset_id, _choices(r.cleaners), r.output_name, r.seed
                ),
            ),
            MethodSpec(
                "AugmentDataset",
                augment,
                lambda r: jobs.plan_augment(
                    r.dataset_id, _choices(r.augmenters), r.output_name, r.seed
                ),
            ),
            MethodSpec(
                "SplitDataset",
                split,
                lambda r: jobs.plan_split(r.dataset_id, _fractions(r), r.stratify, r.seed),
            ),
            MethodSpec("ProfileDataset", profile, lambda r: jobs.dataset(r.dataset_id)),
        ]

    # --- streaming and quick methods -------------------------------------------------------
    async def UploadRecords(self, request_iterator, context):
        """Rows are kept in memory until the commit message; a stream that ends without one
        (gRPC ends a cancelled, killed or timed-out client's stream like a finished one) is
        dropped, and nothing was ever staged on disk."""
        limit = self._kernel.settings.max_upload_bytes
        header, parts, received, committed = None, [], 0, False
        async for message in request_iterator:
            received += message.ByteSize()
            if received > limit:
                raise ResourceExhausted(
                    f"upload exceeds {limit} bytes (FORGELINE_MAX_UPLOAD_BYTES); nothing was kept",
                    reason="UPLOAD_TOO_LARGE",
                )
            payload = message.WhichOneof("payload")
            if payload == "header":
                if header is not None:
                    raise InvalidArgument.for_field("header", "send the header once, first")
                header = message.header
                _check_header(header)
                existing = await asyncio.to_thread(
                    self._jobs.datasets.find_upload, header.request_id
                )
                if existing is not None:
                    return pb.UploadRecordsResponse(dataset=dataset_pb(existing))
                continue
            if header is None:
                raise InvalidArgument.for_field("header", "the first message must be the header")
            if payload == "commit":
                committed = True
                break
            if payload is None:
                raise InvalidArgument.for_field(
                    f"batch[{len(parts)}]", "the message carries no header, batch or commit"
                )
            parts.append(await asyncio.to_thread(_batch_table, message.batch, len(parts)))
        if header is None:
            raise InvalidArgument.for_field("header", "the stream was empty")
        if not committed:
            raise InvalidArgument.for_field(
                "commit",
                "the stream ended without a commit message; nothing was kept (end an upload "
                "with UploadRecordsRequest(commit=UploadCommit()))",
                reason="UPLOAD_NOT_COMMITTED",
            )
        dataset = await asyncio.to_thread(
            self._jobs.commit_upload,
            parts,
            header.name,
            header.text_column,
            header.label_column,
            header.request_id,
        )
        return pb.UploadRecordsResponse(dataset=dataset_pb(dataset))

    async def ReadRows(self, request, context):
        if request.offset < 0 or request.limit < 0:
            raise InvalidArgument.for_field("offset", "offset and limit must be >= 0")
        if request.batch_size < 0:
            raise InvalidArgument.for_field("batch_size", "must be >= 0")
        if request.format not in pb.RowFormat.values():
            raise InvalidArgument.for_field(
                "format",
                f"unknown row format {request.format}; use ROW_FORMAT_STRUCT or "
                "ROW_FORMAT_ARROW_IPC",
            )
        dataset = await asyncio.to_thread(self._jobs.dataset, request.dataset_id)
        unknown = [c for c in request.columns if c not in dataset.column_names]
        if unknown:
            raise InvalidArgument.for_field(
                "columns",
                f"{excerpt(', '.join(unknown))} not in dataset {dataset.id}: columns are "
                f"{excerpt(', '.join(dataset.column_names), 400)}",
            )
        batches = await asyncio.to_thread(
            lambda: list(
                self._jobs.datasets.batches(
                    dataset,
                    offset=request.offset,
                    limit=request.limit,
                    batch_size=request.batch_size or 1000,
                    columns=list(request.columns),
                )
            )
        )
        arrow = request.format == pb.ROW_FORMAT_ARROW_IPC
        for offset, batch in batches:
            if arrow:
                yield pb.ReadRowsResponse(offset=offset, arrow_ipc=_ipc_bytes(batch))
            else:
                yield pb.ReadRowsResponse(
                    offset=offset, rows=[struct(row) for row in batch.to_pylist()]
                )

    async def ListDatasets(self, request, context):
        if request.page_size < 0:
            raise InvalidArgument.for_field("page_size", f"must be >= 0, got {request.page_size}")
        if request.name:
            artifact_name(request.name, "name")
        offset = page_offset(request.page_token)
        size = min(request.page_size or 50, 500)
        found = await asyncio.to_thread(
            self._jobs.datasets.list, name=request.name, offset=offset, limit=size + 1
        )
        return pb.ListDatasetsResponse(
            datasets=[dataset_pb(d) for d in found[:size]],
            next_page_token=str(offset + size) if len(found) > size else "",
        )

    async def GetDataset(self, request, context):
        if not request.dataset_id:
            raise InvalidArgument.for_field("dataset_id", "a dataset id or name is required")
        dataset = await asyncio.to_thread(self._jobs.dataset, request.dataset_id)
        return pb.GetDatasetResponse(dataset=dataset_pb(dataset))


def _check_header(header: pb.UploadHeader) -> None:
    if not header.name:
        raise InvalidArgument.for_field("header.name", "a dataset name is required")
    artifact_name(header.name, "header.name")
    if len(header.request_id) > MAX_REQUEST_ID_CHARS:
        raise InvalidArgument.for_field(
            "header.request_id", f"at most {MAX_REQUEST_ID_CHARS} characters"
        )


def _batch_table(batch: pb.RecordBatch, index: int) -> pa.Table:
    """One uploaded batch as a table; the field path names the bad batch."""
    where = f"batch[{index}]"
    if batch.arrow_ipc and batch.rows:
        raise InvalidArgument.for_field(where, "send rows or arrow_ipc, not both")
    if batch.arrow_ipc:
        try:
            table = pa.ipc.open_stream(batch.arrow_ipc).read_all()
            table.validate(full=True)  # offsets and UTF-8 inside the buffers, not only framing
        except (pa.ArrowException, OSError) as exc:  # garbage framing raises OSError
            raise InvalidArgument.for_field(
                f"{where}.arrow_ipc", f"not a valid Arrow IPC stream: {excerpt(str(exc), 200)}"
            ) from exc
        return table
    rows = [from_struct(row) for row in batch.rows]
    try:
        return _integral_floats_to_int(pa.Table.from_pylist(rows))
    except pa.ArrowException as exc:
        raise InvalidArgument.for_field(
            f"{where}.rows", f"rows do not share a schema: {excerpt(str(exc), 200)}"
        ) from exc


def _integral_floats_to_int(table: pa.Table) -> pa.Table:
    """Struct numbers arrive as doubles (JSON); a column of whole numbers becomes int64 again."""
    import pyarrow.compute as pc

    for i, column in enumerate(table.columns):
        if pa.types.is_floating(column.type) and column.null_count == 0 and len(column):
            if pc.all(pc.equal(column, pc.floor(column))).as_py():
                table = table.set_column(i, table.field(i).name, column.cast(pa.int64()))
    return table


def _ipc_bytes(batch: pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()
