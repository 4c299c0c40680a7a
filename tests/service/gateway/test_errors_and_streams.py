"""Every gRPC status maps to grpc-gateway's HTTP status; streams arrive complete and in order as
NDJSON, SSE and WebSocket; a client that leaves cancels the upstream call."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import websockets

from mediasuite.monitor.v1 import monitor_service_pb2_grpc
from tests.conftest import ServerFactory
from tests.support.gateway import (
    EchoState,
    LiveMonitor,
    RunningGateway,
    binding,
    echo_binding,
    make,
    running_gateway,
)

# grpc-gateway's runtime.HTTPStatusFromCode, written out independently of the implementation.
EXPECTED = {
    1: 499,  # CANCELLED
    2: 500,  # UNKNOWN
    3: 400,  # INVALID_ARGUMENT
    4: 504,  # DEADLINE_EXCEEDED
    5: 404,  # NOT_FOUND
    6: 409,  # ALREADY_EXISTS
    7: 403,  # PERMISSION_DENIED
    8: 429,  # RESOURCE_EXHAUSTED
    9: 400,  # FAILED_PRECONDITION
    10: 409,  # ABORTED
    11: 400,  # OUT_OF_RANGE
    12: 501,  # UNIMPLEMENTED
    13: 500,  # INTERNAL
    14: 503,  # UNAVAILABLE
    15: 500,  # DATA_LOSS
    16: 401,  # UNAUTHENTICATED
}


@dataclass
class Setup:
    gateway: RunningGateway
    state: EchoState
    monitor: LiveMonitor


@pytest.fixture
async def setup(grpc_server: ServerFactory) -> AsyncIterator[Setup]:
    state = EchoState()
    monitor = make(LiveMonitor)
    bindings = [
        echo_binding(state),
        binding(
            "mediasuite.monitor.v1.MonitorService",
            monitor_service_pb2_grpc.add_MonitorServiceServicer_to_server,
            monitor,
        ),
    ]
    async with (
        grpc_server(bindings) as server,
        running_gateway({"echo": server.address, "monitor": server.address}, echo=True) as running,
    ):
        yield Setup(running, state, monitor)


async def test_every_grpc_code_maps_to_grpc_gateways_http_status(setup: Setup) -> None:
    async with httpx.AsyncClient(base_url=setup.gateway.url, timeout=10) as client:
        for code, status in EXPECTED.items():
            reply = await client.get(f"/v1/fail/{code}")
            assert reply.status_code == status, (code, reply.text)
            body = reply.json()
            assert body["code"] == code
            assert set(body) == {"code", "message", "details"}
            assert body["message"]
    # rich details survive the trip: BadRequest from the runtime's InvalidArgument
    async with httpx.AsyncClient(base_url=setup.gateway.url, timeout=10) as client:
        body = (await client.get("/v1/fail/3")).json()
    assert body["message"] == "shelf.name must not be empty"
    assert body["details"] == [
        {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{"field": "shelf.name", "description": "shelf.name must not be empty"}],
        }
    ]


async def test_ndjson_delivers_every_message_in_order(setup: Setup) -> None:
    async with httpx.AsyncClient(base_url=setup.gateway.url, timeout=10) as client:
        reply = await client.get("/v1/count/50")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in reply.text.splitlines()]
    assert lines == [{"result": {"index": i}} for i in range(1, 51)]


async def test_ndjson_error_after_messages_is_the_last_line(setup: Setup) -> None:
    async with httpx.AsyncClient(base_url=setup.gateway.url, timeout=10) as client:
        reply = await client.post("/v1/count", json={"n": 10, "failAfter": 3, "failCode": 9})
    assert reply.status_code == 200  # headers were sent with the first message
    lines = [json.loads(line) for line in reply.text.splitlines()]
    assert lines[:3] == [{"result": {"index": i}} for i in (1, 2, 3)]
    assert lines[3]["error"]["code"] == 9
    assert lines[3]["error"]["message"] == "failed after 3"
    assert len(lines) == 4


async def test_stream_failing_before_its_first_message_gets_the_http_status(setup: Setup) -> None:
    # LiveMonitor does not implement StreamAlerts: UNIMPLEMENTED arrives before any message
    async with httpx.AsyncClient(base_url=setup.gateway.url, timeout=10) as client:
        reply = await client.get("/v1/monitor/alerts:stream")
    assert reply.status_code == 501
    assert reply.headers["content-type"] == "application/json"
    assert reply.json()["code"] == 12
    assert "StreamAlerts" in reply.json()["message"]


async def test_sse_delivers_every_event_in_order(setup: Setup) -> None:
    async with httpx.AsyncClient(base_url=setup.gateway.url, timeout=10) as client:
        reply = await client.get("/v1/count/20", headers={"accept": "text/event-stream"})
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    events = [block for block in reply.text.split("\n\n") if block.strip()]
    assert len(events) == 20
    for i, event in enumerate(events, 1):
        fields = dict(line.split(": ", 1) for line in event.splitlines())
        assert fields["id"] == str(i)
        assert json.loads(fields["data"]) == {"index": i}


async def test_sse_error_event(setup: Setup) -> None:
    async with httpx.AsyncClient(base_url=setup.gateway.url, timeout=10) as client:
        reply = await client.post(
            "/v1/count",
            json={"n": 5, "failAfter": 2, "failCode": 14},
            headers={"accept": "text/event-stream"},
        )
    events = [block for block in reply.text.split("\n\n") if block.strip()]
    assert len(events) == 3
    assert events[2].startswith("event: error\ndata: ")
    assert json.loads(events[2].split("data: ", 1)[1])["code"] == 14


async def test_disconnecting_cancels_the_grpc_stream(setup: Setup) -> None:
    async with (
        httpx.AsyncClient(base_url=setup.gateway.url, timeout=10) as client,
        client.stream("GET", "/v1/count/0", params={"interval": "0.02s"}) as reply,
    ):
        assert reply.status_code == 200
        received = 0
        async for line in reply.aiter_lines():
            assert json.loads(line) == {"result": {"index": received + 1}}
            received += 1
            if received == 3:
                break
        # leaving the block closes the connection
    await asyncio.wait_for(setup.state.cancelled.wait(), 10)
    sent = len(setup.state.sent)
    await asyncio.sleep(0.2)
    assert len(setup.state.sent) == sent, "the server stopped producing once cancelled"


async def test_disconnecting_an_sse_stream_cancels_it_too(setup: Setup) -> None:
    async with (
        httpx.AsyncClient(base_url=setup.gateway.url, timeout=10) as client,
        client.stream(
            "GET",
            "/v1/monitor/metrics:stream",
            params={"interval": "0.05s"},
            headers={"accept": "text/event-stream"},
        ) as reply,
    ):
        async for line in reply.aiter_lines():
            if line.startswith("data: "):
                assert json.loads(line[6:])["samples"][0]["name"] == "system.cpu.percent"
                break
    await asyncio.wait_for(setup.monitor.stream_cancelled.wait(), 10)


async def test_monitor_live_stream_over_websocket(setup: Setup) -> None:
    url = setup.gateway.url.replace("http://", "ws://") + "/v1/monitor/metrics:stream?interval=0.05s"
    async with websockets.connect(url, subprotocols=[websockets.Subprotocol("mediasuite.v1")]) as socket:
        assert socket.subprotocol == "mediasuite.v1"
        frames = [json.loads(await socket.recv()) for _ in range(3)]
    names = [[s["name"] for s in frame["result"]["samples"]] for frame in frames]
    assert names == [["system.cpu.percent", "system.memory.percent"]] * 3
    await asyncio.wait_for(setup.monitor.stream_cancelled.wait(), 10)


async def _frames(socket: websockets.ClientConnection) -> list[dict[str, object]]:
    frames = []
    try:
        while True:
            frames.append(json.loads(await socket.recv()))
    except websockets.ConnectionClosed:
        return frames


async def test_websocket_finite_stream_and_errors(setup: Setup) -> None:
    base = setup.gateway.url.replace("http://", "ws://")
    async with websockets.connect(base + "/v1/count/4") as socket:
        frames = await _frames(socket)
        assert socket.close_code == 1000
    assert frames == [{"result": {"index": i}} for i in range(1, 5)]

    async with websockets.connect(base + "/v1/count/0?failAfter=1&failCode=8") as socket:
        frames = await _frames(socket)
        assert socket.close_code == 4429
    assert frames[0] == {"result": {"index": 1}}
    assert frames[1]["error"]["code"] == 8  # type: ignore[index]

    async with websockets.connect(base + "/v1/count/x") as socket:
        frames = await _frames(socket)
        assert socket.close_code == 4400
    assert frames[0]["error"]["details"][0]["fieldViolations"][0]["field"] == "n"  # type: ignore[index]
