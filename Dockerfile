# finemon container image. Two stages: build a wheel from the source tree, then
# install only that wheel (plus its runtime dependencies, as binary wheels from
# PyPI) into a virtual environment on a clean base. No source tree, no build
# tools, no pip and no pip cache end up in the final image.
#
#   docker build -t finemon:0.1.0 .
#
# BASE_IMAGE is any Debian-like image with python3 (3.11 or later) and its venv
# module: the official python:3.11-slim by default, or, where no registry is
# reachable, a Debian bookworm root filesystem made with mmdebstrap and imported
# (k8s/build-image.sh does that and builds with podman; tests/k8s/test_image.py
# runs the result the way k8s/daemonset.yaml does). Sizes: k8s/README.md.

ARG BASE_IMAGE=python:3.11-slim

# ---- build stage: source tree -> wheel ---------------------------------------
FROM ${BASE_IMAGE} AS build

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# .dockerignore is an allow-list: only pyproject.toml, README/LICENSE and src/
# reach the build context.
COPY . .
# --no-deps: build finemon's own (pure-Python) wheel only; its dependencies are
# installed as binary wheels from PyPI when the wheel is installed below.
RUN python3 -m venv /opt/build \
    && /opt/build/bin/pip wheel --no-deps --wheel-dir /wheels .

# ---- runtime stage -------------------------------------------------------------
FROM ${BASE_IMAGE}

LABEL org.opencontainers.image.title="finemon" \
      org.opencontainers.image.description="High-resolution container monitor: cgroup and /proc metrics at 1 Hz into Parquet" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    PYTHONUNBUFFERED=1

COPY --from=build /wheels /tmp/wheels
# finemon and its dependencies live in the virtual environment /opt/finemon
# (Debian's python3 refuses `pip install` outside one). pip byte-compiles the
# installed modules here, at build time, so nothing has to be written next to
# them at run time. The s3 extra (boto3) is for `finemon run --upload s3://...`:
# only the uploader process loads it; the intake extra (uvicorn, starlette,
# protobuf, zstandard) is for `finemon run --intake-port`, loaded only then.
# pip and setuptools are removed once they have done their work, and so are
# the dependencies' test suites and C headers (about 30 MB of numpy's and
# pyarrow's). The last four commands are a smoke test: the console script
# exists and the packages import.
RUN python3 -m venv /opt/finemon \
    && /opt/finemon/bin/pip install --no-cache-dir "$(ls /tmp/wheels/*.whl)[s3,intake]" \
    && /opt/finemon/bin/pip uninstall --yes pip setuptools \
    && find /opt/finemon/lib/python3*/site-packages -type d \( -name tests -o -name include \) \
        -prune -exec rm -rf {} + \
    && rm -rf /tmp/wheels /root/.cache \
    && /opt/finemon/bin/finemon --help > /dev/null \
    && /opt/finemon/bin/python -c "import finemon.cli" \
    && /opt/finemon/bin/python -c "import boto3, monitor.shipping.cli" \
    && /opt/finemon/bin/python -c "import monitor.intake.server, monitor.intake.payload"

ENV PATH=/opt/finemon/bin:$PATH \
    VIRTUAL_ENV=/opt/finemon

# The DaemonSet runs with readOnlyRootFilesystem: never try to write .pyc files
# at run time (set only after the install, so that the install precompiles).
ENV PYTHONDONTWRITEBYTECODE=1

# finemon runs as root on purpose: it reads other processes' /proc entries with
# CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH, which only take effect for uid 0. The
# Kubernetes manifest drops every other capability. See k8s/README.md.
USER 0:0
WORKDIR /data

ENTRYPOINT ["finemon"]
CMD ["run", "--output-dir", "/data"]
