"""The processes agree with each other and with their pods' resources, in every variant.

Settings are read through each process's own configuration code (what it uses at start) from the
pod's rendered environment, and compared with the rendered resources, so changing one side
without the other fails here. The figures below were measured on this machine (deploy/k8s/README.md,
"Sizing", says how); base/processing.yaml and base/gateway.yaml explain each setting.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gateway.config import GatewayConfig
from services.cache.config import CacheConfig
from services.processing.config import ProcessingConfig
from services.runtime.config import Env
from tests.support.k8s import VARIANTS, Container, cpu_cores, memory_bytes, rendered

MiB = 1024**2
# Resident memory of processing at rest besides its workers: the service process (80 MiB), the
# fork server (57 MiB) and multiprocessing's resource tracker (12 MiB).
PROCESSING_IDLE = 150 * MiB
# A queued call keeps its inline media twice (the request message and the bytes handed to a worker).
INLINE_COPIES = 2
# The gateway at rest (55 MiB measured), and what a request holds while it is transcoded, per byte
# of body (JSON text, parsed object, decoded bytes, protobuf message: +107 MiB for a 21 MiB body).
GATEWAY_IDLE = 64 * MiB
GATEWAY_BODY_FACTOR = 5
# Base64 of the largest inline media, plus room for the rest of the JSON request.
JSON_ENVELOPE = 64 * 1024


def _process(variant: str, name: str) -> Container:
    return rendered(variant).process_containers()[name]


def _limit(container: Container, resource: str) -> str:
    return str(container.spec["resources"]["limits"][resource])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_processing_runs_one_worker_per_core_of_its_cpu_limit(variant: str) -> None:
    container = _process(variant, "processing")
    env = container.env()
    assert int(env.get("PROCESSING_WORKERS", "0")) >= 1, (
        "PROCESSING_WORKERS must be set: 0 means the node's core count, whatever the pod's CPU limit"
    )
    config = ProcessingConfig.from_env(Env(env))
    assert config.pool.mode == "process"
    cores = cpu_cores(_limit(container, "cpu"))
    assert config.pool.workers == math.ceil(cores), (
        f"{config.pool.workers} workers for a limit of {cores} cores: one worker per core of the limit"
    )


def test_where_processing_autoscales_its_cpu_request_is_what_its_workers_use() -> None:
    """The autoscaler's target is a share of the request: with request = workers' cores, 70 % means
    the workers are 70 % busy (a smaller request would scale out while workers sit mostly idle)."""
    checked = []
    for variant in sorted(VARIANTS):
        objects = rendered(variant)
        for hpa in objects.of_kind("HorizontalPodAutoscaler"):
            if hpa["spec"]["scaleTargetRef"]["name"] != "processing":
                continue
            (metric,) = hpa["spec"]["metrics"]
            assert metric["resource"]["name"] == "cpu"
            assert metric["resource"]["target"]["type"] == "Utilization"
            container = _process(variant, "processing")
            workers = ProcessingConfig.from_env(Env(container.env())).pool.workers
            request = cpu_cores(container.spec["resources"]["requests"]["cpu"])
            assert request == cpu_cores(_limit(container, "cpu")) == workers, variant
            checked.append(variant)
    assert {"overlays/prod", "examples/prod-external-redis"} <= set(checked)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_processing_memory_fits_its_limit(variant: str) -> None:
    container = _process(variant, "processing")
    config = ProcessingConfig.from_env(Env(container.env()))
    pool = config.pool
    assert pool.worker_memory_bytes > 0, "each worker's memory is capped (PROCESSING_WORKER_MEMORY)"
    assert 0 < pool.worker_recycle_rss_bytes <= pool.worker_memory_bytes, (
        "PROCESSING_WORKER_RECYCLE_RSS below the cap, or a worker is never recycled before it is refused"
    )
    queued_inline = INLINE_COPIES * (pool.queue_size + pool.workers) * config.limits.max_inline_bytes
    needed = pool.workers * pool.worker_memory_bytes + queued_inline + PROCESSING_IDLE
    limit = memory_bytes(_limit(container, "memory"))
    assert needed <= limit, (
        f"{pool.workers} workers x {pool.worker_memory_bytes // MiB} MiB + {queued_inline // MiB} MiB of "
        f"queued inline media + {PROCESSING_IDLE // MiB} MiB = {needed // MiB} MiB > limit {limit // MiB} MiB"
    )


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_cache_memory_backend_holds_at_most_half_its_limit(variant: str, tmp_path: Path) -> None:
    container = _process(variant, "cache")
    budget = CacheConfig.from_env(Env(container.env_with_mounts(tmp_path))).memory_bytes
    limit = memory_bytes(_limit(container, "memory"))
    assert budget <= limit // 2, (
        f"CACHE_MEMORY_BYTES {budget // MiB} MiB: at most half the {limit // MiB} MiB limit "
        "(the rest is the process and calls in flight)"
    )


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_gateway_takes_the_largest_inline_media_and_two_bodies_fit_its_memory(
    variant: str, tmp_path: Path
) -> None:
    gateway = _process(variant, "gateway")
    body = GatewayConfig.from_env(Env(gateway.env_with_mounts(tmp_path))).max_body_bytes
    inline = ProcessingConfig.from_env(Env(_process(variant, "processing").env())).limits.max_inline_bytes
    assert body >= 4 * math.ceil(inline / 3) + JSON_ENVELOPE, (
        "GATEWAY_MAX_BODY_BYTES admits a call with the largest inline media processing accepts (base64)"
    )
    limit = memory_bytes(_limit(gateway, "memory"))
    assert GATEWAY_IDLE + 2 * GATEWAY_BODY_FACTOR * body <= limit, (
        "two requests at GATEWAY_MAX_BODY_BYTES at once fit in the gateway's memory limit"
    )


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_processing_and_the_cache_read_the_same_media_library(variant: str, tmp_path: Path) -> None:
    """The cache checks an entry's freshness by stat-ing its source at the path processing read it."""
    processing, cache = _process(variant, "processing"), _process(variant, "cache")
    media = ProcessingConfig.from_env(Env(processing.env())).media_root
    assert CacheConfig.from_env(Env(cache.env_with_mounts(tmp_path))).media_root == media
    for container in (processing, cache):
        mount, volume = container.mount_of(str(media))
        assert volume["persistentVolumeClaim"] == {"claimName": "media-library", "readOnly": True}
        assert mount.get("readOnly") is True, container.workload_name
    derived = ProcessingConfig.from_env(Env(processing.env())).derived_root
    mount, volume = processing.mount_of(str(derived))
    assert volume["persistentVolumeClaim"]["claimName"] == "media-derived"
    assert not mount.get("readOnly"), "processing writes its stored outputs there"
