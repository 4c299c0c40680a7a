"""The processing engine: pure functions over media bytes (Pillow, PyAV, numpy), run in worker processes.

Nothing here knows gRPC or asyncio; every function takes the bytes, the :class:`Source` they came
from (for error messages), its parameters and the :class:`Limits`.
"""
