"""gRPC servicers of the batch service: proto in, domain call, proto out."""

from __future__ import annotations

from mediasuite.batch.v1 import batch_service_pb2_grpc, catalog_service_pb2_grpc

__all__ = ["BatchServiceServicer", "CatalogServiceServicer"]


class BatchServiceServicer(batch_service_pb2_grpc.BatchServiceServicer):
    """BatchService: every RPC answers UNIMPLEMENTED until the batch capability is built."""


class CatalogServiceServicer(catalog_service_pb2_grpc.CatalogServiceServicer):
    """CatalogService: every RPC answers UNIMPLEMENTED until the batch capability is built."""
