"""The command line and the service (REST, GraphQL)."""

import os

# Before numpy loads (api.cli imports it): a request's arrays are small, so OpenBLAS's extra threads only spin,
# doubling the CPU time of a margin computation (measured here: 11.4 ms CPU for 5.7 ms wall, 6.1 ms with one).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
