"""gRPC servicers of the batch service: proto in, domain call, proto out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from mediasuite.batch.v1 import batch_service_pb2 as bpb
from mediasuite.batch.v1 import batch_service_pb2_grpc, catalog_service_pb2_grpc
from mediasuite.batch.v1 import catalog_service_pb2 as cpb
from services.batch import messages as m
from services.batch.catalog import parse_order
from services.batch.catalog_store import CatalogStore
from services.batch.config import Execution
from services.batch.manager import BatchManager
from services.batch.summary import Summaries
from services.runtime.errors import InvalidArgument

__all__ = ["SCOPES_HEADER", "BatchServiceServicer", "CatalogServiceServicer"]

# Metadata the gateway sets after authenticating a caller: the key's scope ("read" or "admin";
# HTTP callers cannot set mediasuite-* metadata themselves). Only callers the NetworkPolicies let
# reach the batch service (the gateway; mTLS in production) can set it; mediactl sets it with
# --admin for operators who reach the service directly.
SCOPES_HEADER = "mediasuite-scope"


def _admin(context: Any) -> bool:
    return any(
        key == SCOPES_HEADER and str(value).strip().lower() == "admin"
        for key, value in context.invocation_metadata() or ()
    )


class BatchServiceServicer(batch_service_pb2_grpc.BatchServiceServicer):
    """BatchService over a :class:`BatchManager`."""

    def __init__(self, manager: BatchManager, execution: Execution) -> None:
        self._manager = manager
        self._execution = execution

    async def _stream(self, batch_id: str, after: int, spec: bytes) -> AsyncIterator[bpb.BatchEvent]:
        async for sequence, data in self._manager.events(batch_id, after):
            yield m.event_proto(batch_id, sequence, data, spec)

    async def SubmitBatch(
        self, request: bpb.SubmitBatchRequest, context: Any
    ) -> AsyncIterator[bpb.SubmitBatchResponse]:
        """Start a batch (or find the one its idempotency key names) and stream its events from the start."""
        spec = m.spec_of(request.spec, self._execution)
        record, _ = await self._manager.submit(spec, admin=_admin(context))
        async for event in self._stream(record.id, 0, record.spec):
            yield bpb.SubmitBatchResponse(event=event)

    async def StartBatch(self, request: bpb.StartBatchRequest, context: Any) -> bpb.StartBatchResponse:
        """Start a batch and return at once."""
        spec = m.spec_of(request.spec, self._execution)
        record, _ = await self._manager.submit(spec, admin=_admin(context))
        return bpb.StartBatchResponse(batch=m.batch_proto(record))

    async def WatchBatch(
        self, request: bpb.WatchBatchRequest, context: Any
    ) -> AsyncIterator[bpb.WatchBatchResponse]:
        """Replay events after a sequence number, then follow until the batch finishes."""
        record = await self._manager.get(request.batch_id)
        async for event in self._stream(record.id, request.after_sequence, record.spec):
            yield bpb.WatchBatchResponse(event=event)

    async def GetBatch(self, request: bpb.GetBatchRequest, context: Any) -> bpb.GetBatchResponse:
        """A batch's state and counts."""
        return bpb.GetBatchResponse(batch=m.batch_proto(await self._manager.get(request.batch_id)))

    async def ListBatches(self, request: bpb.ListBatchesRequest, context: Any) -> bpb.ListBatchesResponse:
        """Batches newest first."""
        records, token = await self._manager.list(
            m.states_of(request.states), request.page_size, request.page_token
        )
        reply = bpb.ListBatchesResponse(batches=[m.batch_proto(r) for r in records])
        reply.page.next_page_token = token
        reply.page.total_size = -1
        return reply

    async def CancelBatch(self, request: bpb.CancelBatchRequest, context: Any) -> bpb.CancelBatchResponse:
        """Cancel: atomic batches roll back, others keep what is done."""
        record = await self._manager.cancel(request.batch_id, request.reason)
        return bpb.CancelBatchResponse(batch=m.batch_proto(record))


class CatalogServiceServicer(catalog_service_pb2_grpc.CatalogServiceServicer):
    """CatalogService over the catalog store."""

    def __init__(self, catalog: CatalogStore, summaries: Summaries) -> None:
        self._catalog = catalog
        self._summaries = summaries

    async def GetItem(self, request: cpb.GetItemRequest, context: Any) -> cpb.GetItemResponse:
        """One item by id."""
        if not request.id or len(request.id) > 64 or not request.id.isalnum():
            raise InvalidArgument(f"id {request.id[:80]!r} is not a catalog item id", field="id")
        return cpb.GetItemResponse(item=m.item_proto(await self._catalog.get(request.id)))

    async def QueryItems(self, request: cpb.QueryItemsRequest, context: Any) -> cpb.QueryItemsResponse:
        """Items matching a filter, ordered, a page at a time."""
        if not 0 <= request.page_size <= 1000:
            raise InvalidArgument(f"page_size must be 1-1000 (got {request.page_size})", field="page_size")
        flt = m.filter_of(request.filter, "filter")
        order = parse_order(request.order_by)
        page = await self._catalog.query(flt, order, request.page_size or 100, request.page_token)
        reply = cpb.QueryItemsResponse(items=[m.item_proto(i) for i in page.items])
        reply.page.next_page_token = page.next_token
        reply.page.total_size = -1
        return reply

    async def GetSummary(self, request: cpb.GetSummaryRequest, context: Any) -> cpb.GetSummaryResponse:
        """Counts and bytes by format, status and category."""
        return m.summary_proto(await self._summaries.get())
