"""mediasuite services: the shared runtime and the four gRPC services (cache, processing, batch, monitor)."""
