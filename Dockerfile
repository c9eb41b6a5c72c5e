# syntax=docker/dockerfile:1.7
# The fraud-detection dataflow image: `python -m bytewax.run dataflow:flow` with the package,
# its pinned runtime dependencies (deploy/image-requirements.txt, including the compiled-model
# extra lleaves/llvmlite) and the default model. Configuration is by environment only
# (FRAUD_*, BYTEWAX_*: see deploy/entrypoint.sh and docs/deploy-gke.md); no secret is baked in.
#
#   docker build -t fraud-detection:0.1.0 .      (needs scoring/default_model/ from `fraud train`)
#
# Works with waxctl / the bytewax Helm chart (`-i REPO -t TAG`): their containers run
# `sh ./entrypoint.sh` and `sh ./entrypoint-recovery.sh` in the image's WORKDIR, /app.
# To pin the base image by digest too: --build-arg PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:...

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# ---- build: wheels of every pinned dependency, the package's wheel, a virtual environment ----
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Dependencies first: this layer is rebuilt only when the pins change. Binary wheels only, so
# the build stage needs no compiler either.
COPY deploy/image-requirements.txt deploy/image-requirements.txt
RUN python -m pip wheel --only-binary=:all: --wheel-dir /wheels \
        --requirement deploy/image-requirements.txt
# Then the package itself (the build context holds only what .dockerignore lets through).
COPY . .
RUN python -m pip wheel --no-deps --wheel-dir /wheels/app . \
 && python -m venv /opt/venv \
 && wheel="$(find /wheels/app -name 'fraud_detection-*.whl' -print -quit)" \
 && /opt/venv/bin/python -m pip install --no-index --find-links /wheels \
        --requirement deploy/image-requirements.txt "${wheel}[compiled]" \
 && /opt/venv/bin/python -m pip check

# ---- runtime: no compilers, no pip cache, non-root ---------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="fraud-detection" \
      org.opencontainers.image.description="Real-time card fraud detection: a Bytewax dataflow (Kafka -> Hazelcast, LightGBM)"
# libgomp1: the OpenMP runtime LightGBM's wheel links against (not in the slim image).
# Versions come from the pinned Debian release of the base image.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install --yes --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 fraud \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/fraud --create-home \
        --shell /usr/sbin/nologin fraud \
 && mkdir -p /var/lib/fraud \
 && chown 10001:10001 /var/lib/fraud
COPY --from=build /opt/venv /opt/venv
# The default model (`fraud train --out scoring/default_model`). The wheel carries it too
# (package data): the workers score with it until `fraud model publish` ships a newer version.
# FRAUD_MODEL_DIR is deliberately NOT set here: it pins a model and turns hot reload off
# (scoring/registry.py). `-e FRAUD_MODEL_DIR=/app/model` pins this one.
COPY scoring/default_model/ /app/model/
COPY --chmod=0755 deploy/entrypoint.sh deploy/entrypoint-recovery.sh /app/
COPY --chmod=0644 deploy/launch_dataflow.py deploy/apply_sql.py /app/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OMP_NUM_THREADS=1 \
    FRAUD_STATE_DIR=/var/lib/fraud \
    FRAUD_DATAFLOW=dataflow:flow \
    BYTEWAX_DATAFLOW_API_ENABLED=true \
    BYTEWAX_DATAFLOW_API_PORT=3030 \
    BYTEWAX_DATAFLOW_API_CACHE_PATH=/tmp
WORKDIR /app
USER 10001:10001
# 9999: bytewax process-to-process (timely) port; 3030: bytewax API with /metrics (binds 0.0.0.0).
EXPOSE 9999 3030
# Kubernetes ignores HEALTHCHECK and uses the probes in k8s/ (httpGet /metrics on port 3030);
# this one is for `docker run`.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/metrics' % os.environ.get('BYTEWAX_DATAFLOW_API_PORT', '3030'), timeout=4)"]
ENTRYPOINT ["/app/entrypoint.sh"]
CMD ["run"]
