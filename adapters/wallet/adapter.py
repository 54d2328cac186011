"""Native and ERC-20 balances of one wallet, read in the chain's Multicall3 batch.

The native balance comes from Multicall3's getEthBalance, so it shares the block of every other read.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from adapters.base import AdapterResult
from adapters.onchain import BlockSnapshot
from chains.config import ChainConfig
from chains.decoding import parse_single
from chains.errors import ChainError
from chains.multicall import CallResult, ContractCall
from risk_core.schema.market import SourceStatus
from risk_core.schema.positions import Position, SpotPosition

VENUE = "wallet"
# Nothing to discover: the tokens are the chains file's.
STATIC = "tokens of the chains file"


class WalletAdapter:
    venue = VENUE

    def applies_to(self, chain: ChainConfig) -> bool:
        return True

    def compute_calls(self, *, chain: ChainConfig, account: str, discovery: Hashable | None) -> list[ContractCall]:
        native = ContractCall(chain.multicall3, "getEthBalance(address)", (account,), ("uint256",))
        tokens = [ContractCall(token.address, "balanceOf(address)", (account,), ("uint256",)) for token in chain.tokens]
        return [native, *tokens]

    def compute_discovery(
        self, *, chain: ChainConfig, account: str, discovery: Hashable | None, results: Sequence[CallResult]
    ) -> Hashable:
        return STATIC

    def compute_result(
        self,
        *,
        chain: ChainConfig,
        account: str,
        discovery: Hashable,
        results: Sequence[CallResult],
        snapshot: BlockSnapshot,
    ) -> AdapterResult:
        source = f"{VENUE}@{chain.name}"
        balances = compute_balances(chain, results)
        unreadable = [f"{symbol}: {raw}" for symbol, _, _, raw in balances if isinstance(raw, ChainError)]
        complete = not unreadable
        provenance = snapshot.provenance(source, complete=complete)
        positions: list[Position] = [
            SpotPosition(
                kind="spot",
                id=f"{VENUE}:{chain.name}:{symbol}",
                venue=VENUE,
                chain=chain.name,
                account=account,
                asset=asset,
                # The one place the raw integer becomes a quantity: scaled once by the token's decimals.
                quantity=raw / 10**decimals,
                provenance=provenance,
            )
            for symbol, asset, decimals, raw in balances
            if isinstance(raw, int) and raw != 0
        ]
        status = SourceStatus(
            name=source,
            status="ok" if complete else "failed",
            reason=None if complete else "unreadable balances: " + "; ".join(unreadable),
            as_of=snapshot.timestamp,
        )
        return AdapterResult(source=source, status=status, positions=positions, block=snapshot.block)


def compute_balances(chain: ChainConfig, results: Sequence[CallResult]) -> list[tuple[str, str, int, int | ChainError]]:
    """(symbol, asset, decimals, raw balance or why it is unreadable): native first, then the file's tokens."""
    holdings = [(chain.native.symbol, chain.native.asset, chain.native.decimals, results[0])]
    holdings += [(t.symbol, t.asset, t.decimals, result) for t, result in zip(chain.tokens, results[1:], strict=True)]
    balances: list[tuple[str, str, int, int | ChainError]] = []
    for symbol, asset, decimals, result in holdings:
        try:
            balances.append((symbol, asset, decimals, parse_single(result, int)))
        except ChainError as e:
            balances.append((symbol, asset, decimals, e))
    return balances
