"""The mediasuite HTTP/JSON gateway: outside callers reach the services through it."""
