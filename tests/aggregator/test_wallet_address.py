"""A wallet address is matched in full before anything is read (issue 12: `^...$` with `match` let a trailing
newline through, and the address then failed deep in a chain read as a 500)."""

from __future__ import annotations

from typing import Any

import pytest

from aggregator.service import AggregatorService
from aggregator.settings import ServiceSettings
from risk_core.errors import InputError


@pytest.mark.parametrize("address", ["0x" + "a" * 40 + "\n", "0x" + "a" * 40 + "\r\n", " 0x" + "a" * 40, "0x01"])
async def test_an_address_that_only_starts_well_is_refused_before_any_read(address: str) -> None:
    never_used: Any = None  # no session and no chain: a read would fail with something other than InputError
    service = AggregatorService(settings=ServiceSettings(), session=never_used, clients=[])
    for ask in (service.wallet_risk, service.wallet_positions, service.wallet_credit):
        with pytest.raises(InputError) as refused:
            await ask(address)
        assert refused.value.field == "address"
