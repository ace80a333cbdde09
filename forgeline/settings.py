"""The one typed settings object per process (FORGELINE_* environment variables).

Nothing else reads os.environ. Validated at start: a bad value stops the process with the
variable named, before any port opens.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from forgeline.service_spec import default_port


class Settings(BaseSettings):
    """Every knob of a forgeline process. Env: FORGELINE_<FIELD>, lists as JSON or commas."""

    model_config = SettingsConfigDict(env_prefix="FORGELINE_", extra="ignore")

    home: Path = Field(
        default=Path.home() / ".forgeline",
        description="Root of the embedded stores: operations.db, artifacts/.",
    )
    artifact_uri: str = Field(
        default="",
        description="Where artifacts live when several machines share them: a shared mount "
        "(a path or file:// URI) or an S3-compatible bucket, s3://bucket/prefix with pyarrow's "
        "options in the query (e.g. ?endpoint_override=minio:9000&scheme=http; credentials from "
        "the AWS_* variables). A Ray run's inputs, checkpoints and output go beside them, under "
        "runs/. Empty: FORGELINE_HOME/artifacts on this machine.",
    )
    data_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Folders client-given paths may point into. Empty: the current directory.",
    )
    host: str = Field(default="127.0.0.1", description="Interface services listen on.")
    port: int | None = Field(default=None, description="Port override for `forgeline serve`.")
    log_level: str = Field(default="INFO", description="Log level.")
    log_json: bool = Field(default=True, description="JSON log lines (services).")
    auth_token: str = Field(
        default="", description="When set, every call must carry 'authorization: Bearer <token>'."
    )
    tls_cert: Path | None = Field(default=None, description="PEM server certificate.")
    tls_key: Path | None = Field(default=None, description="PEM server private key.")
    tls_client_ca: Path | None = Field(
        default=None, description="PEM CA; when set, clients must present a certificate (mTLS)."
    )
    max_message_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="Largest gRPC message in either direction."
    )
    max_upload_bytes: int = Field(
        default=2 * 1024**3, ge=1024, description="Largest total UploadRecords stream."
    )
    max_rows: int = Field(default=50_000_000, ge=1, description="Largest dataset in rows.")
    max_predict_texts: int = Field(
        default=256, ge=1, description="Most texts one Predict call may carry."
    )
    max_generations: int = Field(
        default=8,
        ge=1,
        description="Most generations (Generate and GenerateStream) one serving deployment runs "
        "at once; more are refused with RESOURCE_EXHAUSTED.",
    )
    worker_threads: int = Field(
        default=4, ge=1, description="Threads running operations and blocking calls."
    )
    grace_seconds: float = Field(
        default=10.0, ge=0, description="On SIGTERM, how long in-flight calls get to finish."
    )
    call_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="The gateway's deadline for one call to a service (a submit, a status poll, "
        "one read of events). Submits answer at once; a service's slow start-up (Ray) is "
        "reported inside its operation.",
    )
    call_retry_seconds: float = Field(
        default=60.0,
        ge=0,
        description="How long the gateway retries a call that is safe to send again (every "
        "call of a step: submits carry a request id) while its service is unreachable or "
        "gives no answer within call_timeout_seconds.",
    )
    ray_connect_timeout_seconds: float = Field(
        default=120.0,
        gt=0,
        description="How long an operation waits for Ray (the cluster at RAY_ADDRESS, or the "
        "local head its service starts) before it fails UNAVAILABLE.",
    )
    addresses: dict[str, str] = Field(
        default_factory=dict,
        description='Where clients find services, e.g. {"data": "10.0.0.5:50051"}. '
        "Missing: 127.0.0.1 on the default port.",
    )
    gateway: str = Field(
        default="",
        description="Where the CLI finds the gateway (FORGELINE_GATEWAY). Empty: "
        "addresses['gateway'], else 127.0.0.1:50050.",
    )
    ray_ship_code: bool = Field(
        default=True,
        description="Ship forgeline's code (and that of every installed plugin package) to a "
        "Ray cluster in the job's runtime environment, so the cluster's image needs only the "
        "dependencies. Off: the cluster's image has this forgeline installed.",
    )
    ray_runtime_env: dict[str, Any] = Field(
        default_factory=dict,
        description='Merged into the Ray job\'s runtime environment, e.g. {"pip": ["x==1"]} '
        'for a cluster that reaches a package index, or {"env_vars": {...}}.',
    )
    plugins_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="If set, only these plugins ('kind:name' or 'name') are available.",
    )
    plugins_required: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Plugins whose load failure stops the service."
    )
    plugins_autoload: bool = Field(
        default=True, description="False: only forgeline's own plugins (plus allowed) load."
    )
    http_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts the HTTP loader may fetch although they are loopback, link-local, "
        "private or otherwise non-public (refused by default, after DNS and on every "
        "redirect): IP addresses, CIDR networks (10.0.0.0/8, fd00::/8) or exact host names.",
    )
    tracker_destinations: dict[str, str] = Field(
        default_factory=dict,
        description='Where a tracker plugin writes, by tracker name, e.g. {"mlflow": '
        '"http://mlflow:5000"}. Only the operator names a place to write; a tracker not '
        "listed writes into its run's own folder under FORGELINE_HOME/trackers.",
    )

    @field_validator("data_roots", "plugins_allow", "plugins_required", "http_allow", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("http_allow")
    @classmethod
    def _check_allow_list(cls, value: list[str]) -> list[str]:
        from forgeline.outbound import AllowList

        AllowList.parse(value)  # a bad entry stops the process, naming it
        return value

    @cached_property
    def roots(self) -> list[Path]:
        """Resolved data roots. The artifact folder is not one: artifacts are reached by id, and
        forgeline.paths refuses FORGELINE_HOME even where a data root holds it."""
        return [p.expanduser().resolve() for p in self.data_roots] or [Path.cwd().resolve()]

    @property
    def artifacts_dir(self) -> Path:
        return self.home.expanduser() / "artifacts"

    def operations_db(self, service: str) -> Path:
        """Each service keeps its own operations (a restart recovers only its own)."""
        return self.home.expanduser() / "services" / service / "operations.db"

    def address_for(self, service: str) -> str:
        if service == "gateway" and self.gateway:
            return self.gateway
        return self.addresses.get(service) or f"127.0.0.1:{default_port(service)}"

    def port_for(self, service: str) -> int:
        """The port to listen on: the override, else the one the service's spec declares."""
        return self.port or default_port(service)
