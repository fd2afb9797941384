# finemon container image. Two stages: build a wheel from the source tree, then
# install only that wheel (plus its runtime dependencies, as binary wheels from
# PyPI) into a clean python:3.11-slim. No source tree and no pip cache end up
# in the final image.
#
#   docker build -t finemon:0.1.0 .
#
# The Kubernetes deployment is in k8s/ (see k8s/README.md, which also shows an
# equivalent `docker run`). This file has not been built on the development
# machines (they have no Docker engine); tests/k8s checks its key lines.

# ---- build stage: source tree -> wheel ---------------------------------------
FROM python:3.11-slim AS build

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
RUN pip wheel --no-deps --wheel-dir /wheels .

# ---- runtime stage -------------------------------------------------------------
FROM python:3.11-slim

LABEL org.opencontainers.image.title="finemon" \
      org.opencontainers.image.description="High-resolution container monitor: cgroup and /proc metrics at 1 Hz into Parquet" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    PYTHONUNBUFFERED=1

COPY --from=build /wheels /tmp/wheels
# pip byte-compiles the installed modules here, at build time, so nothing has
# to be written next to them at run time. The s3 extra (boto3) is for
# `finemon run --upload s3://...`: only the uploader process loads it. The
# last three commands are a smoke test: the console script exists and the
# packages import.
RUN pip install --no-cache-dir "$(ls /tmp/wheels/*.whl)[s3]" \
    && rm -rf /tmp/wheels \
    && command -v finemon \
    && python -c "import monitor.cli" \
    && python -c "import boto3, monitor.upload"

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
