# syntax=docker/dockerfile:1
# One image for the five mediasuite processes; the command picks the process:
#   docker run --rm -p 8080:8080 mediasuite:0.1.0 mediasuite-gateway
#   docker run --rm mediasuite:0.1.0 mediasuite-cache --help
# Build it with `make image` (needs a Docker engine). Kubernetes: deploy/k8s/README.md.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: a virtualenv with the locked dependencies, then the suite itself -----------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/mediasuite

# Dependencies in their own layer, rebuilt only when pyproject.toml or the lock file changes:
# the runtime dependencies of pyproject.toml, at the versions pinned in requirements/lock.txt
# (the lock also pins the dev tools; they stay out of the image).
COPY pyproject.toml requirements/lock.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > runtime.in \
    && /opt/mediasuite/bin/pip install --requirement runtime.in --constraint lock.txt

# The suite, with the generated protobuf/gRPC code (protos/gen/python) built into the package.
COPY README.md ./
COPY protos/gen/python ./protos/gen/python
COPY services ./services
COPY gateway ./gateway
RUN /opt/mediasuite/bin/pip install --no-deps . \
    && for process in cache processing batch monitor gateway; do \
         /opt/mediasuite/bin/mediasuite-$process --check-config > /dev/null || exit 1; \
       done

# ---- runtime: the virtualenv only, a non-root user, no shell needed to start ------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --gid 10001 mediasuite \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin mediasuite
COPY --from=builder /opt/mediasuite /opt/mediasuite
ENV PATH=/opt/mediasuite/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /tmp
USER 10001:10001
# gRPC: cache 50051, processing 50052, batch 50053, monitor 50054, gateway 50055 (health);
# HTTP gateway 8080; plaintext health-only port 8086 (GRPC_HEALTH_LISTEN, for probes);
# the monitor's Prometheus /metrics 9464 (MONITOR_HTTP_LISTEN).
EXPOSE 50051 50052 50053 50054 50055 8080 8086 9464
# No ENTRYPOINT: the command is the process (Kubernetes sets `command: [mediasuite-<process>]`).
CMD ["mediasuite-gateway"]
