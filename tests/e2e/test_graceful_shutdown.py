"""SIGTERM with a slow call in flight: health goes NOT_SERVING first, no new call is accepted, the
slow call completes, and the process exits 0.

The process is built exactly like a service (``run_service`` + ``GrpcServer``); its one RPC sleeps,
which no real RPC of the suite does on demand (see tests/support/sleeper.py).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mediasuite.cache.v1 import cache_service_pb2, cache_service_pb2_grpc
from tests.support.processes import base_env, free_port, spawn, wait_serving


def test_sigterm_drains_in_flight_call_and_exits_0(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    running = spawn(
        [sys.executable, "-m", "tests.support.sleeper"],
        base_env(SLEEPER_LISTEN=address, SHUTDOWN_GRACE="10s"),
        tmp_path / "sleeper.log",
        address,
    )
    events: list[tuple[float, str]] = []
    try:
        wait_serving(running)
        with grpc.insecure_channel(address) as watch_channel, grpc.insecure_channel(address) as call_channel:
            watch = health_pb2_grpc.HealthStub(watch_channel).Watch(health_pb2.HealthCheckRequest())

            def follow_health() -> None:
                try:
                    for reply in watch:
                        events.append(
                            (
                                time.monotonic(),
                                health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status),
                            )
                        )
                except grpc.RpcError as error:
                    events.append((time.monotonic(), f"watch ended: {error.code().name}"))

            watcher = threading.Thread(target=follow_health)
            watcher.start()
            stub = cache_service_pb2_grpc.CacheServiceStub(call_channel)
            slow = stub.Get.future(cache_service_pb2.GetRequest(key="1.5"), timeout=20)
            time.sleep(0.4)  # the slow call is now in flight
            assert [status for _, status in events] == ["SERVING"]

            running.popen.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            with grpc.insecure_channel(address) as late_channel:
                late_stub = cache_service_pb2_grpc.CacheServiceStub(late_channel)
                try:
                    late_stub.Get(cache_service_pb2.GetRequest(key="0"), timeout=3)
                    late_result = "accepted"
                except grpc.RpcError as error:
                    late_result = error.code().name
            reply = slow.result()
            done_at = time.monotonic()
            assert reply.found, "the in-flight call completed normally"
            assert reply.value == b"1.5"
            assert running.popen.wait(timeout=15) == 0
            watcher.join(timeout=5)
    finally:
        if running.popen.poll() is None:
            running.popen.kill()
    assert late_result == "UNAVAILABLE", "a call made after SIGTERM is refused"
    statuses = [status for _, status in events]
    assert statuses[:2] == ["SERVING", "NOT_SERVING"]
    not_serving_at = events[1][0]
    assert not_serving_at < done_at, "health went NOT_SERVING before the in-flight call finished"
    log = running.log()
    assert "shutting down: NOT_SERVING, 1 call(s) in flight" in log
