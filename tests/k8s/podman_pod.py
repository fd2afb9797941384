"""The DaemonSet's container as ``podman run`` options, so a test runs the image as a node would.

:func:`podman_run_command` reads everything from the pod spec of ``k8s/daemonset.yaml``: the
command and args (with the kubelet's ``$(VAR)`` expansion), the environment (downward API and
ConfigMap values supplied by the caller), ``hostPID``, the volume mounts (hostPath volumes
mapped to the caller's directories, ``emptyDir`` as a sized tmpfs), the container's
``securityContext`` and its memory limit. A field it does not know how to reproduce fails the
translation (:class:`UnsupportedPodSpecError`) rather than being dropped, so a change to the
DaemonSet cannot silently go untested.

What is not reproduced, on purpose: the pod network (the container gets ``--network none``, its
own loopback: probes run inside it with ``podman exec``), the CPU request (``cpu.shares`` is
relative to sibling cgroups, which differ from a node's ``kubepods`` tree) and
``recursiveReadOnly: IfPossible`` (podman 4.3 has no recursive read-only bind mounts; the
kubelet falls back the same way where the runtime lacks them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Linux capability numbers (include/uapi/linux/capability.h), by Kubernetes' names.
CAPABILITIES = (
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
)

_QUANTITY = re.compile(r"^(\d+)(Ki|Mi|Gi|Ti|)$")
_UNITS = {"": 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}
_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


class UnsupportedPodSpecError(AssertionError):
    """The pod spec has a field this translation cannot reproduce: extend it."""


@dataclass(frozen=True)
class PodInputs:
    """What the cluster would supply: the downward API's values, by ``fieldPath``; ConfigMap
    values, by (ConfigMap name, key); and the host directory each ``hostPath`` is taken from
    here, by the path the manifest names."""

    field_values: Mapping[str, str]
    config_map_values: Mapping[tuple[str, str], str]
    host_paths: Mapping[str, Path]


def quantity_bytes(text: str) -> int:
    """A Kubernetes memory quantity (``384Mi``) in bytes."""
    match = _QUANTITY.match(str(text))
    if match is None:
        raise UnsupportedPodSpecError(f"memory quantity {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def capability_names(mask_hex: str) -> set[str]:
    """The capabilities set in a ``/proc/PID/status`` mask (``CapEff``)."""
    mask = int(mask_hex, 16)
    return {name for bit, name in enumerate(CAPABILITIES) if mask >> bit & 1}


def expand(text: str, env: Mapping[str, str]) -> str:
    """The kubelet's expansion of ``$(VAR)`` in command and args (``$$`` is a literal ``$``;
    an undefined variable is left as written)."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VAR.sub(one, text)


def container_env(container: Mapping[str, Any], inputs: PodInputs) -> dict[str, str]:
    """The container's environment variables, their sources resolved."""
    env: dict[str, str] = {}
    for entry in container.get("env", []):
        name = entry["name"]
        if "value" in entry:
            env[name] = expand(str(entry["value"]), env)
            continue
        source = entry.get("valueFrom", {})
        if "fieldRef" in source:
            env[name] = inputs.field_values[source["fieldRef"]["fieldPath"]]
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            env[name] = inputs.config_map_values[(ref["name"], ref["key"])]
        else:
            raise UnsupportedPodSpecError(f"env {name}: {source}")
    if container.get("envFrom"):
        raise UnsupportedPodSpecError("envFrom")
    return env


def _volume_options(
    pod: Mapping[str, Any], container: Mapping[str, Any], inputs: PodInputs
) -> list[str]:
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    options: list[str] = []
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        known = {"name", "mountPath", "readOnly", "recursiveReadOnly"}
        if set(mount) - known:
            raise UnsupportedPodSpecError(f"volumeMount {mount}")
        if mount.get("recursiveReadOnly", "Disabled") not in ("Disabled", "IfPossible"):
            raise UnsupportedPodSpecError(f"recursiveReadOnly {mount['recursiveReadOnly']}")
        target = mount["mountPath"]
        if "hostPath" in volume:
            host_path = volume["hostPath"]["path"]
            source = inputs.host_paths[host_path]
            kind = volume["hostPath"].get("type", "")
            if kind == "DirectoryOrCreate":
                source.mkdir(parents=True, exist_ok=True)
            elif kind == "Directory":
                if not source.is_dir():
                    raise AssertionError(f"hostPath {host_path} ({source}) is not a directory")
            else:
                raise UnsupportedPodSpecError(f"hostPath type {kind!r}")
            mode = "ro" if mount.get("readOnly") else "rw"
            options += ["--volume", f"{source}:{target}:{mode}"]
        elif "emptyDir" in volume:
            size = volume["emptyDir"].get("sizeLimit")
            size_option = "" if size is None else f",tmpfs-size={quantity_bytes(size)}"
            options += ["--mount", f"type=tmpfs,destination={target}{size_option}"]
        else:
            raise UnsupportedPodSpecError(f"volume {volume}")
    return options


def _security_options(pod: Mapping[str, Any], container: Mapping[str, Any]) -> list[str]:
    pod_context = pod.get("securityContext", {})
    if set(pod_context) - {"seccompProfile"}:
        raise UnsupportedPodSpecError(f"pod securityContext {pod_context}")
    context = container.get("securityContext", {})
    known = {
        "privileged",
        "runAsUser",
        "runAsGroup",
        "runAsNonRoot",
        "allowPrivilegeEscalation",
        "readOnlyRootFilesystem",
        "capabilities",
        "seccompProfile",
    }
    if set(context) - known:
        raise UnsupportedPodSpecError(f"securityContext {sorted(set(context) - known)}")
    for profile in (pod_context.get("seccompProfile"), context.get("seccompProfile")):
        if profile is not None and profile.get("type") != "RuntimeDefault":
            raise UnsupportedPodSpecError(f"seccompProfile {profile}")  # podman's default is that
    options: list[str] = []
    if context.get("privileged"):
        options.append("--privileged")
    user, group = context.get("runAsUser"), context.get("runAsGroup")
    if user is not None:
        options += ["--user", str(user) if group is None else f"{user}:{group}"]
    if context.get("runAsNonRoot") and user == 0:
        raise AssertionError("runAsNonRoot with runAsUser 0: the kubelet refuses to start it")
    if context.get("allowPrivilegeEscalation") is False:
        options += ["--security-opt", "no-new-privileges"]
    if context.get("readOnlyRootFilesystem"):
        # podman adds tmpfs on /tmp, /var/tmp and /run to a read-only container; Kubernetes
        # does not (the DaemonSet mounts its own /tmp).
        options += ["--read-only", "--read-only-tmpfs=false"]
    capabilities = context.get("capabilities", {})
    for name in capabilities.get("drop", []):
        options += ["--cap-drop", name]
    for name in capabilities.get("add", []):
        if name not in CAPABILITIES:
            raise UnsupportedPodSpecError(f"capability {name}")
        options += ["--cap-add", name]
    return options


def podman_run_command(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    image: str,
    inputs: PodInputs,
    *,
    name: str,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """``podman run`` (detached) of ``container`` of ``pod`` from ``image``, named ``name``;
    ``extra_args`` are appended to the container's args."""
    known_pod = {
        "serviceAccountName",
        "automountServiceAccountToken",
        "enableServiceLinks",
        "hostPID",
        "terminationGracePeriodSeconds",
        "tolerations",
        "securityContext",
        "containers",
        "volumes",
    }
    if set(pod) - known_pod:
        raise UnsupportedPodSpecError(f"pod spec {sorted(set(pod) - known_pod)}")
    if pod.get("hostNetwork") or pod.get("hostIPC") or pod.get("initContainers"):
        raise UnsupportedPodSpecError("hostNetwork, hostIPC or initContainers")
    known_container = {
        "name",
        "image",
        "imagePullPolicy",
        "command",
        "args",
        "env",
        "ports",
        "readinessProbe",
        "livenessProbe",
        "resources",
        "securityContext",
        "volumeMounts",
    }
    if set(container) - known_container:
        raise UnsupportedPodSpecError(f"container {sorted(set(container) - known_container)}")
    env = container_env(container, inputs)
    options = ["--detach", "--name", name, "--network", "none"]
    if pod.get("hostPID"):
        options.append("--pid=host")
    for key, value in env.items():
        options += ["--env", f"{key}={value}"]
    options += _volume_options(pod, container, inputs)
    options += _security_options(pod, container)
    limits = container.get("resources", {}).get("limits", {})
    if set(limits) - {"memory"}:
        raise UnsupportedPodSpecError(f"limits {sorted(limits)}")
    if "memory" in limits:
        # --memory-swap equal to --memory: no swap on top, as the kubelet sets it.
        limit = f"{quantity_bytes(limits['memory'])}b"
        options += ["--memory", limit, "--memory-swap", limit]
    command = [expand(str(part), env) for part in container.get("command", [])]
    if command:
        options += ["--entrypoint", json.dumps(command)]
    args = [expand(str(part), env) for part in container.get("args", [])]
    return ["podman", "run", *options, image, *args, *extra_args]
