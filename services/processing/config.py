"""Configuration of the processing service, read from the environment at start."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from services.processing.limits import Limits
from services.runtime.config import ConfigError, Env, ServerConfig
from services.runtime.suite import process

__all__ = ["DEFAULT_PRESETS", "CacheSettings", "PoolSettings", "ProcessingConfig", "parse_presets"]

DEFAULT_PRESETS = "tiny=64,small=160,medium=320,large=640,gallery=1280"
_PRESET = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def parse_presets(text: str) -> dict[str, int]:
    """``"tiny=64,small=160"`` -> {"tiny": 64, "small": 160}; ValueError on a malformed entry."""
    presets: dict[str, int] = {}
    for part in text.split(","):
        name, sep, edge = part.strip().partition("=")
        name = name.strip().lower()
        if not sep or not _PRESET.match(name) or not edge.strip().isdigit() or int(edge) < 1:
            raise ValueError(part)
        presets[name] = int(edge)
    return presets


@dataclass(frozen=True)
class PoolSettings:
    """How CPU work is run: worker count and kind, queue bound, worker recycling."""

    workers: int
    mode: str
    queue_size: int
    worker_memory_bytes: int
    worker_max_tasks: int
    worker_recycle_rss_bytes: int


@dataclass(frozen=True)
class CacheSettings:
    """Where the cache service is and how patiently it is asked."""

    enabled: bool
    address: str
    timeout_seconds: float
    retry_after_seconds: float


@dataclass(frozen=True)
class ProcessingConfig:
    """Everything the processing process reads from its environment."""

    server: ServerConfig
    media_root: Path
    derived_root: Path
    limits: Limits
    presets: dict[str, int]
    pool: PoolSettings
    cache: CacheSettings

    @classmethod
    def from_env(cls, env: Env) -> ProcessingConfig:
        """Read and check every variable; ConfigError names the first one at fault."""
        server = ServerConfig.from_env(env, "processing", process("processing").port)
        media_root = env.path(
            "PROCESSING_MEDIA_ROOT", "var/media", "directory media paths are relative to (read only)"
        )
        derived_root = env.path(
            "PROCESSING_DERIVED_ROOT", "var/derived", "directory stored outputs are written to"
        )
        limits = Limits(
            max_pixels=env.integer(
                "PROCESSING_MAX_PIXELS",
                100_000_000,
                "largest image (width x height, from the header) decoded; more is a decompression bomb",
                min=1,
            ),
            max_file_bytes=env.size(
                "PROCESSING_MAX_FILE_BYTES",
                256 * 1024**2,
                "largest media file read from the media root",
                min=1,
            ),
            max_inline_bytes=env.size(
                "PROCESSING_MAX_INLINE_BYTES",
                32 * 1024**2,
                "largest media sent inline in a request",
                min=1,
                max=server.max_message_bytes,
            ),
            max_frames=env.integer(
                "PROCESSING_MAX_FRAMES",
                10_000,
                "most frames of an animation or video decoded in one operation",
                min=1,
            ),
            max_extract_frames=env.integer(
                "PROCESSING_MAX_EXTRACT_FRAMES", 100, "most frames ExtractFrames returns in one call", min=1
            ),
            max_output_dimension=env.integer(
                "PROCESSING_MAX_OUTPUT_DIMENSION",
                8192,
                "largest width or height of an output image asked for",
                min=16,
            ),
            operation_timeout_seconds=env.duration(
                "PROCESSING_OPERATION_TIMEOUT",
                30.0,
                "time one operation may run in a worker before it is stopped (DEADLINE_EXCEEDED)",
                min=0.001,
            ),
            max_probe_many=env.integer(
                "PROCESSING_MAX_PROBE_MANY", 256, "most items one ProbeMany call may name", min=1
            ),
            inline_output_max_bytes=env.size(
                "PROCESSING_INLINE_OUTPUT_MAX",
                4 * 1024**2,
                "outputs up to this size are returned inline when the caller lets the service decide",
                min=0,
                max=server.max_message_bytes,
            ),
            max_message_bytes=server.max_message_bytes,
        )
        preset_text = env.text(
            "PROCESSING_PRESETS",
            DEFAULT_PRESETS,
            "thumbnail presets, name=long edge in pixels, comma separated",
        )
        try:
            presets = parse_presets(preset_text)
        except ValueError:
            raise ConfigError(
                "PROCESSING_PRESETS", preset_text, 'name=pixels pairs such as "tiny=64,gallery=1280"'
            ) from None
        for name, edge in presets.items():
            if edge > limits.max_output_dimension:
                raise ConfigError(
                    "PROCESSING_PRESETS",
                    preset_text,
                    f"edges up to PROCESSING_MAX_OUTPUT_DIMENSION={limits.max_output_dimension} ({name})",
                )
        workers = env.integer(
            "PROCESSING_WORKERS", 0, "worker count; 0 means one per CPU core", min=0, max=256
        ) or (os.cpu_count() or 1)
        pool = PoolSettings(
            workers=workers,
            mode=env.text(
                "PROCESSING_WORKER_MODE",
                "process",
                "run CPU work in worker processes (isolated, killable) or threads",
                choices=("process", "thread"),
            ),
            queue_size=env.integer(
                "PROCESSING_QUEUE_SIZE",
                64,
                "operations waiting for a worker; more are refused RESOURCE_EXHAUSTED",
                min=0,
            ),
            worker_memory_bytes=env.size(
                "PROCESSING_WORKER_MEMORY",
                4 * 1024**3,
                "address-space limit of each worker process (0: none); past it an operation fails cleanly",
                min=0,
            ),
            worker_max_tasks=env.integer(
                "PROCESSING_WORKER_MAX_TASKS",
                1000,
                "operations a worker runs before it is replaced (0: no limit)",
                min=0,
            ),
            worker_recycle_rss_bytes=env.size(
                "PROCESSING_WORKER_RECYCLE_RSS",
                1024**3,
                "a worker whose resident memory passed this after an operation is replaced (0: never)",
                min=0,
            ),
        )
        cache = CacheSettings(
            enabled=env.flag("PROCESSING_CACHE", True, "use the cache service for results (cache-aside)"),
            address=env.address(
                "CACHE_ADDR", process("cache").default_address, "address of the cache service for clients"
            ),
            timeout_seconds=env.duration(
                "PROCESSING_CACHE_TIMEOUT", 0.25, "deadline of each call to the cache service", min=0.001
            ),
            retry_after_seconds=env.duration(
                "PROCESSING_CACHE_RETRY_AFTER",
                5.0,
                "after the cache fails or is unavailable, calls skip it for this long",
                min=0.0,
            ),
        )
        return cls(server, media_root, derived_root, limits, presets, pool, cache)
