"""gRPC servicers of the processing service: proto in, domain call, proto out."""

from __future__ import annotations

from mediasuite.processing.v1 import processing_service_pb2_grpc

__all__ = ["ProcessingServiceServicer"]


class ProcessingServiceServicer(processing_service_pb2_grpc.ProcessingServiceServicer):
    """ProcessingService: every RPC answers UNIMPLEMENTED until the processing capability is built."""
