"""The reference data metarisk runs and tests with, carried in the repository (see SOURCES.md in each folder):

- ``market/``: recorded market data (Deribit option chains, daily prices, Chainlink rounds, Pyth, DVOL);
- ``interfaces/``: the venues' API specifications, protocol ABIs, recorded responses and presigned transactions;
- ``derive-pm2/``: Derive's published PM2 portfolio cases, the venue-parity test data.

Every reader goes through :func:`path`, so a missing file is one clear error naming the file, not a traceback
from deep inside a loader.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent


class ReferenceDataMissing(FileNotFoundError):
    """A file the repository should carry is absent (a partial checkout or a packaging mistake)."""


def path(*parts: str) -> Path:
    """The file or folder ``reference_data/<parts...>``; raises :class:`ReferenceDataMissing` when it is absent."""
    target = ROOT.joinpath(*parts)
    if not target.exists():
        raise ReferenceDataMissing(f"reference data {'/'.join(parts)} not found under {ROOT}")
    return target
