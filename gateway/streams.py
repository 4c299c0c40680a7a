"""Server-streaming RPCs over HTTP: newline-delimited JSON, Server-Sent Events, or WebSocket.

- NDJSON (default): one line per message, ``{"result": {...}}``; a failure after the stream
  started is a last line ``{"error": {"code", "message", "details"}}`` (grpc-gateway's shape).
- SSE (``Accept: text/event-stream``): ``data: <message JSON>`` events with increasing ids; a
  failure is an ``event: error`` whose data is the error object; idle streams get keep-alive
  comments.
- WebSocket (any streaming route, same path): text frames ``{"result": ...}`` / ``{"error": ...}``;
  the socket closes with 1000 after the last message, or 4000 + the HTTP status after an error.
  Browsers cannot set headers on a WebSocket, so the key may come as the subprotocol
  ``bearer.<key>`` (offer ``mediasuite.v1`` with it; that is the one accepted).

An error that arrives before the first message (an unknown batch, an unimplemented RPC) is answered
like a unary error: its HTTP status and the error object. The gateway waits up to
:data:`FIRST_MESSAGE_WAIT` seconds for that first outcome before it commits to 200.

A client that goes away cancels the upstream call at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import grpc
from google.rpc import code_pb2

from gateway.codec import render
from gateway.status import error_body, from_rpc_error
from gateway.transcoder import ApiError, json_bytes, request_headers, send_json

if TYPE_CHECKING:
    from gateway.transcoder import ASGIScope, Prepared, Receive, Send, Transcoder

__all__ = ["FIRST_MESSAGE_WAIT", "serve_stream", "serve_websocket"]

FIRST_MESSAGE_WAIT = 1.0
WS_PROTOCOL = "mediasuite.v1"
_WS_BEARER = "bearer."


class _End:
    """The stream finished normally."""


_END = _End()


async def _next(call: Any) -> Any:
    """The next message, or _END."""
    message = await call.read()
    return _END if message is grpc.aio.EOF else message  # type: ignore[attr-defined]


async def _watch_disconnect(receive: Receive, kind: str) -> None:
    while True:
        message = await receive()
        if message["type"] == kind:
            return


async def serve_stream(transcoder: Transcoder, prepared: Prepared, receive: Receive, send: Send) -> None:
    """Answer a server-streaming route as NDJSON or SSE until the stream ends or the client leaves."""
    sse = "text/event-stream" in prepared.headers.get("accept", "")
    call = transcoder.upstreams.call(prepared.route)(
        prepared.request, timeout=prepared.timeout, metadata=prepared.metadata
    )
    gone = asyncio.ensure_future(_watch_disconnect(receive, "http.disconnect"))
    gone.add_done_callback(lambda _: call.cancel())
    try:
        pending = asyncio.ensure_future(_next(call))
        done, _ = await asyncio.wait(
            {pending, gone}, timeout=FIRST_MESSAGE_WAIT, return_when=asyncio.FIRST_COMPLETED
        )
        if gone in done:
            pending.cancel()
            return
        error = _early_error(pending) if pending in done else None
        if error is not None:
            status, body = from_rpc_error(error)
            await send_json(send, status, body)
            return
        await send({"type": "http.response.start", "status": 200, "headers": _stream_headers(sse)})
        await _relay(transcoder, call=call, pending=pending, gone=gone, send=send, sse=sse)
    finally:
        gone.cancel()
        call.cancel()


def _early_error(first: asyncio.Future[Any]) -> grpc.aio.AioRpcError | None:
    """The RPC error the stream failed with before its first message, if it did."""
    if first.cancelled() or first.exception() is None:
        return None
    error = first.exception()
    if isinstance(error, grpc.aio.AioRpcError):
        return error
    raise error  # type: ignore[misc]


def _stream_headers(sse: bool) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", b"text/event-stream; charset=utf-8" if sse else b"application/x-ndjson"),
        (b"cache-control", b"no-store"),
        (b"x-accel-buffering", b"no"),
    ]


async def _relay(
    transcoder: Transcoder,
    *,
    call: Any,
    pending: asyncio.Future[Any],
    gone: asyncio.Future[None],
    send: Send,
    sse: bool,
) -> None:
    """Write each message as it arrives; keep-alive comments on an idle SSE stream; end or error line."""
    options = transcoder.settings.json
    keepalive = transcoder.settings.sse_keepalive_seconds if sse else None
    sequence = 0
    while True:
        try:
            item = await (
                pending if keepalive is None else asyncio.wait_for(asyncio.shield(pending), keepalive)
            )
        except TimeoutError:
            await send({"type": "http.response.body", "body": b": keep-alive\n\n", "more_body": True})
            continue
        except grpc.aio.AioRpcError as error:
            _, body = from_rpc_error(error)
            await send({"type": "http.response.body", "body": _error_chunk(body, sse), "more_body": False})
            return
        except asyncio.CancelledError:
            if gone.done():
                return
            raise
        if isinstance(item, _End) or gone.done():
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        sequence += 1
        result = render(item, options)
        chunk = (
            b"id: %d\ndata: %s\n\n" % (sequence, json_bytes(result))
            if sse
            else json_bytes({"result": result}) + b"\n"
        )
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        pending = asyncio.ensure_future(_next(call))


def _error_chunk(body: dict[str, Any], sse: bool) -> bytes:
    if sse:
        return b"event: error\ndata: %s\n\n" % json_bytes(body)
    return json_bytes({"error": body}) + b"\n"


async def serve_websocket(transcoder: Transcoder, scope: ASGIScope, receive: Receive, send: Send) -> None:
    """Serve a streaming route over a WebSocket: accept, (read the body frame), relay, close."""
    connect = await receive()
    if connect["type"] != "websocket.connect":
        return
    headers = request_headers(scope)
    offered = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    token = next((p[len(_WS_BEARER) :] for p in offered if p.startswith(_WS_BEARER)), None)
    if token is not None and WS_PROTOCOL not in offered:
        await send({"type": "websocket.close", "code": 1002})  # bearer.<key> without mediasuite.v1
        return
    accept: dict[str, Any] = {"type": "websocket.accept"}
    if WS_PROTOCOL in offered:
        accept["subprotocol"] = WS_PROTOCOL
    await send(accept)
    try:
        prepared = await _ws_prepare(transcoder, scope, receive, headers, token)
    except ApiError as error:
        await _ws_close_with_error(send, error.status, error.body)
        return
    if prepared is None:
        return
    call = transcoder.upstreams.call(prepared.route)(
        prepared.request, timeout=prepared.timeout, metadata=prepared.metadata
    )
    gone = asyncio.ensure_future(_watch_disconnect(receive, "websocket.disconnect"))
    gone.add_done_callback(lambda _: call.cancel())
    try:
        with transcoder.span(scope, prepared.route, headers):
            await _ws_relay(transcoder, call, gone, send)
    finally:
        gone.cancel()
        call.cancel()


async def _ws_prepare(
    transcoder: Transcoder, scope: ASGIScope, receive: Receive, headers: dict[str, str], token: str | None
) -> Prepared | None:
    """Match, authorize and build the request (the body, if any, is the first text frame)."""
    raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1").split("?", 1)[0]
    found = transcoder.match("GET", raw_path)
    if not found.route.server_streaming:
        raise ApiError(
            400, error_body(code_pb2.INVALID_ARGUMENT, f"{raw_path} is not a stream; call it over plain HTTP")
        )
    principal = transcoder.authorize(found.route, headers, token)
    transcoder.throttle(scope, principal)
    body = b""
    if found.route.body:
        first = await receive()
        if first["type"] != "websocket.receive":
            return None
        body = (first.get("text") or "").encode() or first.get("bytes") or b""
        if len(body) > transcoder.settings.max_body_bytes:
            raise transcoder.too_large(len(body))
    return transcoder.prepare(found, scope, headers, body, principal)


async def _ws_relay(transcoder: Transcoder, call: Any, gone: asyncio.Future[None], send: Send) -> None:
    options = transcoder.settings.json
    while True:
        try:
            item = await _next(call)
        except grpc.aio.AioRpcError as error:
            status, body = from_rpc_error(error)
            await _ws_close_with_error(send, status, body)
            return
        except asyncio.CancelledError:
            if gone.done():
                return
            raise
        if isinstance(item, _End):
            await send({"type": "websocket.close", "code": 1000})
            return
        await send({"type": "websocket.send", "text": json_bytes({"result": render(item, options)}).decode()})


async def _ws_close_with_error(send: Send, status: int, body: dict[str, Any]) -> None:
    with contextlib.suppress(OSError, RuntimeError):
        await send({"type": "websocket.send", "text": json_bytes({"error": body}).decode()})
        reason = str(body.get("message", "")).encode()[:120].decode(errors="ignore")
        await send({"type": "websocket.close", "code": 4000 + status, "reason": reason})
