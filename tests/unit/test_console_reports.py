"""Where the console reads a run's report: the folder the gateway wrote on this machine, or, when
the gateway's artifact store is shared (an S3 bucket here, moto's real S3 API on loopback), a
copy fetched from it and checked against its digest; without that store, a precise refusal."""

from __future__ import annotations

import uuid

import pytest

from forgeline.artifacts import ArtifactStore, Lineage
from forgeline.convert import artifact
from forgeline.errors import DataLoss, FailedPrecondition
from forgeline.services.http.console.routes import local_report


def commit_report(store: ArtifactStore, tmp_path) -> object:
    folder = tmp_path / f"report-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    (folder / "report.json").write_text('{"run": "operations/abc"}\n')
    (folder / "report.html").write_text("<html><body>the report</body></html>")
    return store.commit_dir(folder, kind="report", name="report-q", metadata={}, lineage=Lineage())


def test_a_report_written_on_this_machine_is_read_where_it_lies(tmp_path):
    store = ArtifactStore(tmp_path / "home")
    try:
        report = artifact(commit_report(store, tmp_path))
        folder = local_report(report, None)
        assert folder == store.get(report.id).path
        assert (folder / "report.json").read_text() == '{"run": "operations/abc"}\n'
    finally:
        store.close()


def test_a_report_in_a_shared_bucket_is_fetched_once_and_checked(tmp_path, s3_bucket):
    base, query = s3_bucket["uri"].split("?")
    uri = f"{base}-{uuid.uuid4().hex[:8]}?{query}"
    gateway = ArtifactStore(tmp_path / "gateway-machine", shared=uri)
    face = ArtifactStore(tmp_path / "face-machine", shared=uri)  # its own cache, the bucket
    try:
        report = artifact(commit_report(gateway, tmp_path))
        assert report.uri.startswith("s3://")
        with pytest.raises(FailedPrecondition) as refused:
            local_report(report, None)  # a face that was not told where the store is
        assert refused.value.reason == "REPORT_NOT_LOCAL"
        assert "FORGELINE_ARTIFACT_URI" in str(refused.value) and report.id in str(refused.value)

        folder = local_report(report, face)
        assert folder.is_relative_to(tmp_path / "face-machine")
        assert "the report" in (folder / "report.html").read_text()
        (folder / "report.html").write_text("<html>edited</html>")  # the cached copy, altered
        with pytest.raises(DataLoss):
            local_report(report, face)
    finally:
        gateway.close()
        face.close()
