"""A minimal keep-alive HTTP/1.1 client for benchmarks: one connection per caller, GET only.

A general client (httpx) spends more time per request than the server under test; this one
writes a fixed request and reads a Content-Length body, so the measured time is the server's.
"""

from __future__ import annotations

import asyncio

__all__ = ["HttpConnection"]


class HttpConnection:
    """One persistent connection; ``get(path)`` returns (status, body)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self._reader = reader
        self._writer = writer
        self._host = host

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        """Connect to host:port."""
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, f"{host}:{port}")

    async def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """One GET on the connection; the response must carry Content-Length."""
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._writer.write(f"GET {path} HTTP/1.1\r\nhost: {self._host}\r\n{extra}\r\n".encode())
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await self._reader.readexactly(length)
        return status, body

    async def close(self) -> None:
        """Close the connection."""
        self._writer.close()
        await self._writer.wait_closed()
