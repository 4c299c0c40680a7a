"""gRPC servicers of the monitor service: proto in, domain call, proto out."""

from __future__ import annotations

from mediasuite.monitor.v1 import monitor_service_pb2_grpc

__all__ = ["MonitorServiceServicer"]


class MonitorServiceServicer(monitor_service_pb2_grpc.MonitorServiceServicer):
    """MonitorService: every RPC answers UNIMPLEMENTED until the monitor capability is built."""
