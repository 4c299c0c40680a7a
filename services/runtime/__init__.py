"""One shared runtime for every mediasuite process: configuration, logging, telemetry, errors,
gRPC server bootstrap with health and reflection, graceful shutdown, and client channels."""
