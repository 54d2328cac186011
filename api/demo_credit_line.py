"""The demo's lender story on the devnet: the demo wallet asks the service for an attestation and borrows from
CreditLine; then it moves collateral away (its risk rises), a new attestation shows less free collateral, and a
further loan the earlier attestation would have covered is refused. The dashboard's credit-line panel shows the
latest attestation, its on-chain verification status now, the debt and every attempt.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from web3 import Web3
from web3.exceptions import ContractCustomError

from aggregator.attestation import SignedAttestation
from aggregator.attestations import AttestationService
from api.dashboard import CREDIT_LINE_STATUS
from devnet.attestation_contracts import borrow, credit_line, decode_refusal, verifier, verify_arguments
from devnet.deploy import DEPLOYER, TOKENS, ChainDeployer
from devnet.manifest import DevnetChain
from devnet.run import RunningDevnet

LENDING_CHAIN = "base"
COLLATERAL_CHAIN = "ethereum"  # where the wallet's risk rises: it sends its tokens there away
FIRST_LOAN_SHARE = Fraction(1, 4)  # of what the first attestation covers
ERC20_TRANSFER = [
    {"name": "transfer", "type": "function", "stateMutability": "nonpayable",
     "inputs": [{"name": "to", "type": "address"}, {"name": "amount", "type": "uint256"}],
     "outputs": [{"name": "", "type": "bool"}]},
    {"name": "balanceOf", "type": "function", "stateMutability": "view",
     "inputs": [{"name": "owner", "type": "address"}], "outputs": [{"name": "", "type": "uint256"}]},
]
_DECIMALS = {spec.symbol: spec.decimals for spec in TOKENS}


class BorrowAttempt(BaseModel):
    model_config = ConfigDict(frozen=True)

    amount: float = Field(description="stablecoin units")
    free_collateral_usd: float = Field(description="as the attestation showed it")
    issued_at: int
    accepted: bool
    refusal: str | None = Field(description="the custom error CreditLine or the verifier reverted with")
    transaction: str | None


class Verification(BaseModel):
    model_config = ConfigDict(frozen=True)

    verified: bool
    error: str | None = Field(description="the verifier's custom error, when refused")
    checked_at: datetime


class CreditLineStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    chain_id: int
    credit_line: str
    verifier: str
    wallet: str
    debt: float = Field(description="stablecoin units owed to CreditLine")
    attestation: SignedAttestation | None
    verification: Verification | None
    attempts: list[BorrowAttempt]


@dataclass
class CreditLineDemo:
    devnet: RunningDevnet
    attestations: AttestationService
    chain_name: str = LENDING_CHAIN

    def __post_init__(self) -> None:
        self.attempts: list[BorrowAttempt] = []
        self.latest: SignedAttestation | None = None

    @property
    def chain(self) -> DevnetChain:
        return self.devnet.manifest.chain(self.chain_name)

    @property
    def wallet(self) -> str:
        return self.devnet.manifest.demo_account

    def _w3(self, name: str | None = None) -> Web3:
        return Web3(Web3.HTTPProvider(self.devnet.nodes[name or self.chain_name].url))

    @property
    def _unit(self) -> int:
        return 10 ** _DECIMALS[self.chain.attestation.stablecoin]

    async def attest(self) -> SignedAttestation:
        self.latest = await self.attestations.wallet_attestation(self.wallet, self.chain.config.chain_id)
        return self.latest

    def covered_units(self, attestation: SignedAttestation) -> int:
        """The whole debt, in stablecoin units, that the attestation's free collateral covers."""
        free = Fraction(int(attestation.typed_data["message"]["freeCollateralUsd"]), 10**18)
        factor = Fraction(self.chain.attestation.safety_factor_wad, 10**18)
        return max(0, int(free / factor * self._unit))

    async def borrow(self, units: int) -> BorrowAttempt:
        """A fresh attestation, then CreditLine.borrow; a refusal is recorded with its custom error."""
        signed = await self.attest()
        message = signed.typed_data["message"]
        refusal = transaction = None
        try:
            receipt = await asyncio.to_thread(
                borrow, self._w3(), self.chain, units, signed.typed_data, signed.signature
            )
            transaction = "0x" + bytes(receipt["transactionHash"]).hex()
        except ContractCustomError as e:
            refusal = decode_refusal(e)[0]
        attempt = BorrowAttempt(
            amount=units / self._unit, free_collateral_usd=int(message["freeCollateralUsd"]) / 10**18,
            issued_at=message["issuedAt"], accepted=refusal is None, refusal=refusal, transaction=transaction,
        )
        self.attempts.append(attempt)
        return attempt

    async def move_collateral_away(self) -> None:
        """The wallet sends its tokens on COLLATERAL_CHAIN to another address: its equity and free collateral fall."""
        await asyncio.to_thread(self._send_tokens_away)
        self.attestations.risk.forget_wallet(self.wallet)

    def _send_tokens_away(self) -> None:
        w3 = self._w3(COLLATERAL_CHAIN)
        deployer = ChainDeployer(w3)
        for token in self.devnet.manifest.chain(COLLATERAL_CHAIN).config.tokens:
            contract = w3.eth.contract(address=Web3.to_checksum_address(token.address), abi=ERC20_TRANSFER)
            held = contract.functions.balanceOf(self.wallet).call()
            if held:
                deployer.send(contract.functions.transfer(DEPLOYER, held), sender=self.wallet,
                              what=f"move {token.symbol} away")

    async def run_story(self) -> list[BorrowAttempt]:
        """Borrow a quarter of what the first attestation covers; move collateral away; ask for the rest of that
        first headroom less a tenth: refused, since the new attestation shows less free collateral."""
        first_cover = self.covered_units(await self.attest())
        first = int(first_cover * FIRST_LOAN_SHARE)
        await self.borrow(first)
        await self.move_collateral_away()
        await self.borrow(int((first_cover - first) * Fraction(9, 10)))
        return list(self.attempts)

    async def status(self) -> CreditLineStatus:
        verification = None
        if self.latest is not None:
            verification = await asyncio.to_thread(self._verify_now, self.latest)
        debt = await asyncio.to_thread(lambda: credit_line(self._w3(), self.chain).functions.debt(self.wallet).call())
        return CreditLineStatus(
            chain_id=self.chain.config.chain_id, credit_line=self.chain.attestation.credit_line,
            verifier=self.chain.attestation.verifier, wallet=self.wallet, debt=debt / self._unit,
            attestation=self.latest, verification=verification, attempts=list(self.attempts),
        )

    def _verify_now(self, signed: SignedAttestation) -> Verification:
        contract = verifier(self._w3(), self.chain)
        error = None
        try:
            contract.functions.verify(*verify_arguments(signed.typed_data, signed.signature)).call()
        except ContractCustomError as e:
            error = decode_refusal(e)[0]
        return Verification(verified=error is None, error=error, checked_at=datetime.now(UTC))


def show_on_dashboard(app: web.Application, demo: CreditLineDemo) -> None:
    """The dashboard's credit-line panel reads `demo.status()` (GET /demo/credit-line: a page's data, not API)."""
    app[CREDIT_LINE_STATUS] = demo.status
