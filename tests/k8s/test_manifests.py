"""Offline checks of the Kubernetes deployment (k8s/) and of the container image (Dockerfile).

Every object in k8s/*.yaml is validated against the Kubernetes OpenAPI schema bundled with
``kubernetes-validate`` (no cluster, no network), then the properties the DaemonSet depends on
are asserted one by one: scheduling on every node, the host views it reads, least privilege,
identity from the downward API and a command line that uses only documented ``finemon`` flags.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import utils as kv_utils
from kubernetes_validate import validate as kv_validate
from packaging.version import Version

from common.version import __version__

REPO = Path(__file__).resolve().parents[2]
K8S_DIR = REPO / "k8s"
KUSTOMIZATION = K8S_DIR / "kustomization.yaml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"

# Kubernetes version whose schema the manifests are validated against. If the installed
# kubernetes-validate predates it, the newest schema it bundles is used instead.
TARGET_K8S_VERSION = "1.37"

# The documented command-line interface of `finemon run` (its PSS options are not listed:
# add them here when the DaemonSet starts passing any).
FINEMON_SUBCOMMANDS = frozenset({"run"})
FINEMON_FLAGS = frozenset(
    {
        "--output-dir",
        "--interval",
        "--rotation-seconds",
        "--flush-seconds",
        "--compression-level",
        "--size-limit",
        "--identifier",
        "--node-name",
        "--cluster-name",
        "--duration",
        "--window-seconds",
        "--prometheus-port",
        "--prometheus-series",
        "--cgroup-root",
        "--proc-root",
        "--log-root",
        "--log-level",
    }
)

# Host path -> path inside the container; each must be mounted read-only.
HOST_READ_ONLY_MOUNTS = {
    "/sys/fs/cgroup": "/host/sys/fs/cgroup",
    "/proc": "/host/proc",
    "/var/log/pods": "/host/var/log/pods",
    "/var/log/containers": "/host/var/log/containers",
}
DATA_HOST_PATH = "/var/lib/finemon"
DATA_MOUNT_PATH = "/data"
EXPECTED_ROOT_ARGS = {
    "--cgroup-root": "/host/sys/fs/cgroup",
    "--proc-root": "/host/proc",
    "--log-root": "/host/var/log",
    "--output-dir": DATA_MOUNT_PATH,
}
EXPECTED_CAPABILITIES = {"SYS_PTRACE", "DAC_READ_SEARCH"}
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
SAMPLE_TAINTS = [
    {"key": key, "value": value, "effect": effect}
    for key, value in (
        ("node-role.kubernetes.io/control-plane", ""),
        ("node.kubernetes.io/not-ready", ""),
        ("node.kubernetes.io/unreachable", ""),
        ("node.kubernetes.io/disk-pressure", ""),
        ("nvidia.com/gpu", "present"),
        ("dedicated", "batch"),
    )
    for effect in TAINT_EFFECTS
]


# --------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any attempt to open a network connection fail: these checks are offline."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("tests/k8s must not use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def schema_version() -> str:
    latest = kv_utils.latest_version()
    if Version(latest) >= Version(TARGET_K8S_VERSION):
        return TARGET_K8S_VERSION
    return kv_utils.major_minor(latest)


def resource_files() -> list[Path]:
    """Every YAML file in k8s/ except the kustomization itself."""
    files = sorted([*K8S_DIR.glob("*.yaml"), *K8S_DIR.glob("*.yml")])
    return [path for path in files if path.name not in {"kustomization.yaml", "kustomization.yml"}]


def load_documents(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def all_objects() -> list[tuple[str, dict[str, Any]]]:
    return [(path.name, doc) for path in resource_files() for doc in load_documents(path)]


def kustomization() -> dict[str, Any]:
    docs = load_documents(KUSTOMIZATION)
    assert len(docs) == 1
    return docs[0]


def objects_of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in all_objects() if doc.get("kind") == kind]


@pytest.fixture(scope="module")
def daemonset() -> dict[str, Any]:
    found = objects_of_kind("DaemonSet")
    assert len(found) == 1, "expected exactly one DaemonSet in k8s/"
    return found[0]


@pytest.fixture(scope="module")
def pod_spec(daemonset: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = daemonset["spec"]["template"]["spec"]
    return spec


@pytest.fixture(scope="module")
def container(pod_spec: dict[str, Any]) -> dict[str, Any]:
    containers = pod_spec["containers"]
    assert len(containers) == 1, "the DaemonSet runs a single finemon container"
    found: dict[str, Any] = containers[0]
    return found


def all_containers(pod_spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from pod_spec.get(key, [])


def volumes_by_name(pod_spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {volume["name"]: volume for volume in pod_spec.get("volumes", [])}


def mounts_by_path(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {mount["mountPath"]: mount for mount in container.get("volumeMounts", [])}


def parse_flags(args: list[str]) -> dict[str, str]:
    """Map each ``--flag`` of a ``finemon run`` argument list to its value (``--f=v`` too)."""
    flags: dict[str, str] = {}
    position = 1  # args[0] is the subcommand
    while position < len(args):
        token = args[position]
        assert token.startswith("--"), f"unexpected positional argument {token!r}"
        if "=" in token:
            name, value = token.split("=", 1)
            position += 1
        else:
            assert position + 1 < len(args), f"flag {token} has no value"
            name, value = token, args[position + 1]
            position += 2
        assert name not in flags, f"flag {name} passed twice"
        flags[name] = value
    return flags


def finemon_args(container: dict[str, Any]) -> list[str]:
    command = container.get("command", [])
    args: list[str] = list(container.get("args", []))
    # Either the image ENTRYPOINT (finemon) is kept, or it is restated as command.
    assert command in ([], ["finemon"]), f"unexpected command {command!r}"
    assert args, "the DaemonSet must pass its own finemon arguments"
    return args


def tolerates(toleration: dict[str, Any], taint: dict[str, str]) -> bool:
    """Kubernetes' ToleratesTaint rule."""
    effect = toleration.get("effect", "")
    if effect and effect != taint["effect"]:
        return False
    key = toleration.get("key", "")
    if key and key != taint["key"]:
        return False
    operator = toleration.get("operator", "Equal")
    if operator == "Exists":
        return True
    return operator == "Equal" and toleration.get("value", "") == taint.get("value", "")


_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T|m)?$")
_SUFFIX = {
    None: 1,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def quantity(value: str | int | float) -> float:
    match = _QUANTITY.match(str(value))
    assert match, f"unparseable quantity {value!r}"
    return float(match.group(1)) * _SUFFIX[match.group(2)]


# --------------------------------------------------------------------------- schema


def test_k8s_directory_has_the_expected_files() -> None:
    names = {path.name for path in resource_files()}
    assert {"namespace.yaml", "daemonset.yaml"} <= names
    assert KUSTOMIZATION.is_file()
    assert (K8S_DIR / "README.md").is_file()


@pytest.mark.parametrize("path", resource_files(), ids=lambda path: path.name)
def test_manifest_objects_validate_against_kubernetes_schema(path: Path) -> None:
    docs = load_documents(path)
    assert docs, f"{path.name} holds no object"
    version = schema_version()
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= doc.keys()
        validated = kv_validate(doc, version, strict=True)
        assert Version(validated) >= Version("1.30")


def test_strict_schema_validation_rejects_a_misspelt_field(daemonset: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(daemonset))
    broken["spec"]["template"]["spec"]["hostPid"] = True
    with pytest.raises(Exception, match="hostPid"):
        kv_validate(broken, schema_version(), strict=True)


def test_every_object_lives_in_the_finemon_namespace() -> None:
    for name, doc in all_objects():
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == "finemon"
        else:
            assert doc["metadata"].get("namespace") == "finemon", name


# --------------------------------------------------------------------------- kustomization


def test_kustomization_lists_exactly_the_resource_files() -> None:
    listed = kustomization().get("resources", [])
    assert len(listed) == len(set(listed)), "a resource is listed twice"
    assert set(listed) == {path.name for path in resource_files()}
    for entry in listed:
        assert (K8S_DIR / entry).is_file(), f"{entry} is listed but does not exist"


def test_kustomization_namespace_labels_and_image() -> None:
    kust = kustomization()
    assert kust["apiVersion"].startswith("kustomize.config.k8s.io/")
    assert kust["kind"] == "Kustomization"
    assert kust["namespace"] == "finemon"
    assert kust.get("labels") or kust.get("commonLabels")
    for label in kust.get("labels", []):
        # DaemonSet selectors are immutable: common labels must stay out of them.
        assert not label.get("includeSelectors", False)
    images = {image["name"]: image for image in kust["images"]}
    assert "finemon" in images
    assert str(images["finemon"].get("newTag", "")).strip()


def test_daemonset_image_is_the_one_kustomize_rewrites(container: dict[str, Any]) -> None:
    name = container["image"].split("@")[0].rsplit(":", 1)[0]
    assert name == "finemon"


def test_cluster_name_comes_from_the_kustomization(container: dict[str, Any]) -> None:
    env = {item["name"]: item for item in container["env"]}
    ref = env["CLUSTER_NAME"]["valueFrom"]["configMapKeyRef"]
    generators = {gen["name"]: gen for gen in kustomization().get("configMapGenerator", [])}
    assert ref["name"] in generators, "CLUSTER_NAME must come from a configMapGenerator"
    literals = dict(
        literal.split("=", 1) for literal in generators[ref["name"]].get("literals", [])
    )
    assert literals.get(ref["key"], "").strip(), "the kustomization must set CLUSTER_NAME"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) not found")
def test_kustomize_build_renders_valid_objects() -> None:
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S_DIR)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]
    version = schema_version()
    for doc in rendered:
        kv_validate(doc, version, strict=True)
    configmaps = [doc for doc in rendered if doc["kind"] == "ConfigMap"]
    daemonsets = [doc for doc in rendered if doc["kind"] == "DaemonSet"]
    assert len(configmaps) == 1
    assert len(daemonsets) == 1
    (ds_container,) = daemonsets[0]["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item for item in ds_container["env"]}
    # kustomize rewrote the reference to the generated (hash-suffixed) ConfigMap.
    ref = env["CLUSTER_NAME"]["valueFrom"]["configMapKeyRef"]
    assert ref["name"] == configmaps[0]["metadata"]["name"]
    image = next(img for img in kustomization()["images"] if img["name"] == "finemon")
    assert ds_container["image"] == f"{image.get('newName', 'finemon')}:{image['newTag']}"
    for doc in rendered:
        assert doc["metadata"].get("namespace", "finemon") == "finemon"


# --------------------------------------------------------------------------- scheduling


def test_tolerates_every_taint(pod_spec: dict[str, Any]) -> None:
    tolerations = pod_spec.get("tolerations", [])
    assert {"operator": "Exists"} in tolerations
    for taint in SAMPLE_TAINTS:
        assert any(tolerates(tol, taint) for tol in tolerations), taint


def test_no_node_restrictions(pod_spec: dict[str, Any]) -> None:
    assert not pod_spec.get("nodeSelector")
    assert not pod_spec.get("affinity", {}).get("nodeAffinity")
    assert not pod_spec.get("nodeName")


def test_no_system_priority_class_outside_kube_system(
    daemonset: dict[str, Any], pod_spec: dict[str, Any]
) -> None:
    if daemonset["metadata"]["namespace"] != "kube-system":
        assert not str(pod_spec.get("priorityClassName", "")).startswith("system-")


def test_termination_grace_period(pod_spec: dict[str, Any]) -> None:
    assert pod_spec["terminationGracePeriodSeconds"] == 60


# --------------------------------------------------------------------------- host access


def test_host_pid_but_no_other_host_namespace(pod_spec: dict[str, Any]) -> None:
    assert pod_spec["hostPID"] is True
    assert not pod_spec.get("hostNetwork", False)
    assert not pod_spec.get("hostIPC", False)


@pytest.mark.parametrize(("host_path", "mount_path"), sorted(HOST_READ_ONLY_MOUNTS.items()))
def test_host_view_mounted_read_only(
    pod_spec: dict[str, Any], container: dict[str, Any], host_path: str, mount_path: str
) -> None:
    mounts = mounts_by_path(container)
    assert mount_path in mounts, f"{mount_path} is not mounted"
    mount = mounts[mount_path]
    assert mount.get("readOnly") is True
    volume = volumes_by_name(pod_spec)[mount["name"]]
    assert volume["hostPath"]["path"] == host_path


def test_data_host_path_is_writable(pod_spec: dict[str, Any], container: dict[str, Any]) -> None:
    mount = mounts_by_path(container)[DATA_MOUNT_PATH]
    assert not mount.get("readOnly", False)
    volume = volumes_by_name(pod_spec)[mount["name"]]
    assert volume["hostPath"] == {"path": DATA_HOST_PATH, "type": "DirectoryOrCreate"}


def test_only_the_expected_host_paths(pod_spec: dict[str, Any], container: dict[str, Any]) -> None:
    host_paths = {
        volume["hostPath"]["path"] for volume in pod_spec.get("volumes", []) if "hostPath" in volume
    }
    assert host_paths == {*HOST_READ_ONLY_MOUNTS, DATA_HOST_PATH}
    volumes = volumes_by_name(pod_spec)
    for mount in container["volumeMounts"]:
        writable_host = "hostPath" in volumes[mount["name"]] and not mount.get("readOnly")
        if writable_host:
            assert mount["mountPath"] == DATA_MOUNT_PATH


def test_log_mounts_share_the_log_root(container: dict[str, Any]) -> None:
    flags = parse_flags(finemon_args(container))
    mounts = mounts_by_path(container)
    log_root = flags["--log-root"]
    for name in ("pods", "containers"):
        assert f"{log_root}/{name}" in mounts


# --------------------------------------------------------------------------- identity


def test_downward_api_identity(container: dict[str, Any]) -> None:
    env = {item["name"]: item for item in container["env"]}
    expected = {
        "POD_NAME": "metadata.name",
        "NODE_NAME": "spec.nodeName",
        "POD_NAMESPACE": "metadata.namespace",
    }
    for name, field_path in expected.items():
        assert env[name]["valueFrom"]["fieldRef"]["fieldPath"] == field_path
    assert "CLUSTER_NAME" in env


def test_identity_flags_use_the_env(container: dict[str, Any]) -> None:
    flags = parse_flags(finemon_args(container))
    assert flags["--identifier"] == "$(POD_NAME)"
    assert flags["--node-name"] == "$(NODE_NAME)"
    assert flags["--cluster-name"] == "$(CLUSTER_NAME)"


def test_every_variable_reference_is_defined(container: dict[str, Any]) -> None:
    # The kubelet leaves an undefined $(VAR) verbatim, which would silently become the value.
    defined = {item["name"] for item in container["env"]}
    for token in [*container.get("command", []), *container["args"]]:
        for name in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", token):
            assert name in defined, f"$({name}) is not defined in env"


def test_no_service_account_token(pod_spec: dict[str, Any]) -> None:
    assert pod_spec.get("automountServiceAccountToken") is False
    for account in objects_of_kind("ServiceAccount"):
        assert account.get("automountServiceAccountToken") is False


# --------------------------------------------------------------------------- command line


def test_args_pass_the_host_roots(container: dict[str, Any]) -> None:
    flags = parse_flags(finemon_args(container))
    for flag, value in EXPECTED_ROOT_ARGS.items():
        assert flags[flag] == value
    mounts = mounts_by_path(container)
    assert flags["--cgroup-root"] in mounts
    assert flags["--proc-root"] in mounts
    assert flags["--output-dir"] in mounts


def test_args_use_only_documented_flags(container: dict[str, Any]) -> None:
    args = finemon_args(container)
    assert args[0] in FINEMON_SUBCOMMANDS
    used = set(parse_flags(args))
    assert used <= FINEMON_FLAGS, f"undocumented flags: {sorted(used - FINEMON_FLAGS)}"


def test_args_match_the_intended_sampling_settings(container: dict[str, Any]) -> None:
    flags = parse_flags(finemon_args(container))
    assert float(flags["--interval"]) == 1.0
    assert int(flags["--rotation-seconds"]) == 90
    assert int(flags["--flush-seconds"]) == 10
    assert int(flags["--compression-level"]) == 3
    assert flags["--size-limit"] == "1GiB"
    assert int(flags["--window-seconds"]) == 60


# --------------------------------------------------------------------------- probes, resources


def test_metrics_port_series_and_probes(container: dict[str, Any]) -> None:
    ports = {port["name"]: port for port in container["ports"]}
    assert ports["metrics"]["containerPort"] == 9090
    flags = parse_flags(finemon_args(container))
    assert int(flags["--prometheus-port"]) == ports["metrics"]["containerPort"]
    # The probes ask /healthz, which never renders the metrics.
    for kind in ("readinessProbe", "livenessProbe"):
        probe = container[kind]["httpGet"]
        assert probe["path"] == "/healthz", kind
        assert probe["port"] in ("metrics", 9090), kind
    # A cluster Prometheus scrapes the default series set.
    assert flags["--prometheus-series"] == "default"


def test_resources_requests_and_memory_limit_without_cpu_limit(container: dict[str, Any]) -> None:
    resources = container["resources"]
    requests, limits = resources["requests"], resources["limits"]
    assert quantity(requests["cpu"]) > 0
    assert quantity(requests["memory"]) > 0
    assert quantity(limits["memory"]) >= quantity(requests["memory"])
    assert "cpu" not in limits, "a CPU limit would throttle finemon when the node is busy"


# --------------------------------------------------------------------------- security context


def test_nothing_is_privileged(pod_spec: dict[str, Any]) -> None:
    for each in all_containers(pod_spec):
        assert each.get("securityContext", {}).get("privileged", False) is False


def test_container_security_context(pod_spec: dict[str, Any], container: dict[str, Any]) -> None:
    context = container["securityContext"]
    assert context["runAsUser"] == 0
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    seccomp = context.get("seccompProfile") or pod_spec.get("securityContext", {}).get(
        "seccompProfile"
    )
    assert seccomp == {"type": "RuntimeDefault"}


def test_capabilities_are_exactly_ptrace_and_dac_read_search(container: dict[str, Any]) -> None:
    capabilities = container["securityContext"]["capabilities"]
    assert capabilities["drop"] == ["ALL"]
    added = capabilities["add"]
    assert len(added) == len(set(added))
    assert {cap.removeprefix("CAP_") for cap in added} == EXPECTED_CAPABILITIES


def test_namespace_admits_the_pod_under_pod_security() -> None:
    (namespace,) = objects_of_kind("Namespace")
    labels = namespace["metadata"].get("labels", {})
    # hostPID, hostPath and the added capabilities are outside the baseline standard.
    assert labels.get("pod-security.kubernetes.io/enforce") == "privileged"


# --------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and continuations joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, rest = full.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    assert not pending, "Dockerfile ends with a line continuation"
    return instructions


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def test_dockerfile_is_multi_stage_on_python_311_slim_by_default() -> None:
    instructions = dockerfile_instructions()
    bases = [args.split()[0] for keyword, args in instructions if keyword == "FROM"]
    assert len(bases) >= 2
    # Every stage on the base the build argument names; python:3.11-slim unless it is given.
    assert set(bases) == {"${BASE_IMAGE}"}
    first_from = next(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    assert ("ARG", "BASE_IMAGE=python:3.11-slim") in instructions[:first_from]


def test_build_script_passes_the_base_and_tags_the_deployed_version() -> None:
    """k8s/build-image.sh builds with the Dockerfile's build argument, and its default tag
    (finemon:<package version>) is the image kustomize deploys."""
    script = (K8S_DIR / "build-image.sh").read_text()
    assert '--build-arg "BASE_IMAGE=' in script
    assert "tag=${1:-finemon:$version}" in script
    image = next(img for img in kustomization()["images"] if img["name"] == "finemon")
    assert (image.get("newName", "finemon"), image["newTag"]) == ("finemon", __version__)


def test_dockerfile_builds_a_wheel_and_installs_it() -> None:
    runs = [args for keyword, args in dockerfile_instructions() if keyword == "RUN"]
    assert any("pip wheel" in run and "--no-deps" in run for run in runs)
    final_runs = [
        args for keyword, args in final_stage(dockerfile_instructions()) if keyword == "RUN"
    ]
    assert any(
        "pip install" in run and "--no-cache-dir" in run and ".whl" in run for run in final_runs
    )


def test_dockerfile_entrypoint_and_cmd() -> None:
    final = final_stage(dockerfile_instructions())
    entrypoints = [json.loads(args) for keyword, args in final if keyword == "ENTRYPOINT"]
    commands = [json.loads(args) for keyword, args in final if keyword == "CMD"]
    assert entrypoints[-1] == ["finemon"]
    assert commands[-1] == ["run", "--output-dir", "/data"]
    assert commands[-1][0] in FINEMON_SUBCOMMANDS
    assert set(parse_flags(commands[-1])) <= FINEMON_FLAGS


def test_dockerfile_runtime_environment() -> None:
    env_text = " ".join(
        args for keyword, args in final_stage(dockerfile_instructions()) if keyword == "ENV"
    )
    assert re.search(r"\bPYTHONDONTWRITEBYTECODE=1\b", env_text)
    all_env = " ".join(args for keyword, args in dockerfile_instructions() if keyword == "ENV")
    assert "DEBIAN_FRONTEND=noninteractive" in all_env


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    """Translate one .dockerignore pattern (Go filepath.Match plus ``**``) to a regex."""
    pattern = pattern.strip("/")
    out = ""
    position = 0
    while position < len(pattern):
        char = pattern[position]
        if pattern.startswith("**/", position):
            out += "(?:.*/)?"
            position += 3
            continue
        if pattern.startswith("**", position):
            out += ".*"
            position += 2
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.index("]", position)
            out += pattern[position : end + 1]
            position = end + 1
            continue
        else:
            out += re.escape(char)
        position += 1
    return re.compile(f"^{out}$")


def dockerignore_excludes(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    rules = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        rules.append((negated, _dockerignore_regex(line.removeprefix("!"))))
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negated, regex in rules:
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "README.md",
        "src/finemon/cli.py",
        "src/monitor/__init__.py",
        "src/common/version.py",
    ],
)
def test_dockerignore_keeps_what_the_wheel_needs(path: str) -> None:
    assert not dockerignore_excludes(path)


@pytest.mark.parametrize(
    "path",
    [
        ".git/HEAD",
        "tests/k8s/test_manifests.py",
        "benchmarks/x.py",
        "k8s/daemonset.yaml",
        "finemon-data/dt=2024-01-01/x.parquet",
        "src/monitor/__pycache__/cli.cpython-311.pyc",
        "src/finemon.egg-info/PKG-INFO",
        ".venv/bin/python",
    ],
)
def test_dockerignore_drops_everything_else(path: str) -> None:
    assert dockerignore_excludes(path)


def test_dockerignore_context_holds_the_package_sources() -> None:
    sources = [path.relative_to(REPO).as_posix() for path in (REPO / "src").rglob("*.py")]
    assert sources
    assert not [path for path in sources if dockerignore_excludes(path)]


# --------------------------------------------------------------------------- S3 upload component

UPLOAD_COMPONENT = K8S_DIR / "components" / "s3-upload" / "kustomization.yaml"


def upload_overlay(directory: Path) -> Path:
    """The overlay that k8s/README.md shows for uploads, written in ``directory`` (kustomize
    refuses an overlay inside the base it loads, so it cannot live under k8s/)."""
    readme = (K8S_DIR / "README.md").read_text()
    match = re.search(r"```yaml overlay\n(.*?)```", readme, re.S)
    assert match, "k8s/README.md shows the S3 overlay in a ```yaml overlay block"
    text = match.group(1)
    # The README's overlay sits beside a checkout's k8s/ folder, as ../k8s.
    text = text.replace("../k8s", str(K8S_DIR))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "kustomization.yaml").write_text(text)
    return directory


def test_upload_component_is_a_component_adding_valid_flags() -> None:
    component = yaml.safe_load(UPLOAD_COMPONENT.read_text())
    assert component["kind"] == "Component"
    assert component["apiVersion"] == "kustomize.config.k8s.io/v1alpha1"
    text = UPLOAD_COMPONENT.read_text()
    assert "eks.amazonaws.com/role-arn" in text
    added = [
        op["value"]
        for patch in component["patches"]
        if patch["target"]["kind"] == "DaemonSet"
        for op in yaml.safe_load(patch["patch"])
        if op["path"].endswith("/args/-")
    ]
    assert added == ["--upload", "$(FINEMON_UPLOAD_URL)", "--upload-delete"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) not found")
def test_upload_overlay_renders_valid_objects_and_flags(tmp_path: Path) -> None:
    import argparse

    from monitor.config import Environment, add_run_arguments, build_config

    overlay = upload_overlay(tmp_path / "finemon-s3")
    # kustomize needs relative paths from the overlay to the base.
    text = (overlay / "kustomization.yaml").read_text()
    relative = Path(*[".."] * len(overlay.parts[1:])) / K8S_DIR.relative_to("/")
    (overlay / "kustomization.yaml").write_text(text.replace(str(K8S_DIR), str(relative)))
    result = subprocess.run(
        ["kubectl", "kustomize", str(overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]
    version = schema_version()
    for doc in rendered:
        kv_validate(doc, version, strict=True)
        assert doc["metadata"].get("namespace", "finemon") == "finemon"
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in rendered:
        by_kind.setdefault(doc["kind"], []).append(doc)
    (account,) = by_kind["ServiceAccount"]
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith(
        "arn:aws:iam::"
    )
    assert account["automountServiceAccountToken"] is False
    (upload_map,) = [
        cm for cm in by_kind["ConfigMap"] if cm["metadata"]["name"].startswith("finemon-upload-")
    ]
    (daemonset,) = by_kind["DaemonSet"]
    (ds_container,) = daemonset["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item for item in ds_container["env"]}
    for name in ("FINEMON_UPLOAD_URL", "AWS_REGION"):
        ref = env[name]["valueFrom"]["configMapKeyRef"]
        assert ref["name"] == upload_map["metadata"]["name"]  # the generated, hashed name
        assert upload_map["data"][ref["key"]]
    # The arguments, with the variables the kubelet expands, are a valid finemon run.
    values = {
        "POD_NAME": "finemon-abcde",
        "NODE_NAME": "node-1",
        "CLUSTER_NAME": "prod",
        **upload_map["data"],
    }
    args = [re.sub(r"\$\((\w+)\)", lambda m: values[m.group(1)], a) for a in ds_container["args"]]
    assert args[0] == "run"
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    parsed = parser.parse_args(args[1:])
    parsed.proc_root = "/proc"  # the host paths exist only in the pod
    parsed.cgroup_root = None
    config = build_config(parsed, Environment.from_os({}))
    assert config.upload is not None
    assert config.upload.url == upload_map["data"]["FINEMON_UPLOAD_URL"]
    assert config.upload.delete


def test_the_image_installs_the_s3_and_intake_extras() -> None:
    final_runs = [
        args for keyword, args in final_stage(dockerfile_instructions()) if keyword == "RUN"
    ]
    extras = [
        set(found.split(","))
        for run in final_runs
        if "pip install" in run
        for found in re.findall(r"\.whl\)\[([a-z0-9,]+)\]", run)
    ]
    assert extras and {"s3", "intake"} <= extras[0]


# --------------------------------------------------------------------------- intake component

INTAKE_COMPONENT = K8S_DIR / "components" / "intake" / "kustomization.yaml"


def _apply_adds(document: dict[str, Any], ops: list[dict[str, Any]]) -> None:
    """Apply the JSON patch ``add`` operations of a component (the only kind it uses)."""
    for op in ops:
        assert op["op"] == "add"
        *parents, last = op["path"].strip("/").split("/")
        node: Any = document
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if last == "-":
            node.append(op["value"])
        else:
            node[last] = op["value"]


def test_intake_component_serves_the_intake_on_a_host_port(daemonset: dict[str, Any]) -> None:
    import argparse
    import copy

    from monitor.config import Environment, add_run_arguments, build_config

    component = yaml.safe_load(INTAKE_COMPONENT.read_text())
    assert component["kind"] == "Component"
    assert component["apiVersion"] == "kustomize.config.k8s.io/v1alpha1"
    patched = copy.deepcopy(daemonset)
    for patch in component["patches"]:
        assert patch["target"] == {"kind": "DaemonSet", "name": "finemon"}
        _apply_adds(patched, yaml.safe_load(patch["patch"]))
    kv_validate(patched, schema_version(), strict=True)
    (container,) = patched["spec"]["template"]["spec"]["containers"]
    ports = {port["name"]: port for port in container["ports"]}
    assert ports["intake"] == {
        "name": "intake",
        "containerPort": 9126,
        "hostPort": 9126,
        "protocol": "TCP",
    }
    values = {"POD_NAME": "finemon-abcde", "NODE_NAME": "node-1", "CLUSTER_NAME": "prod"}
    args = [re.sub(r"\$\((\w+)\)", lambda m: values[m.group(1)], a) for a in container["args"]]
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    parsed = parser.parse_args(args[1:])
    parsed.proc_root = "/proc"  # the host paths exist only in the pod
    parsed.cgroup_root = None
    config = build_config(parsed, Environment.from_os({}))
    assert config.intake is not None
    assert (config.intake.port, config.intake.address) == (9126, "0.0.0.0")
