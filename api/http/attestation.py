"""The attestation routes: the service's signer, and a wallet's signed margin attestation for one chain's verifier.

Errors are problem+json as on the credit route: 422 naming `chain_id` or `address`, 404 an unknown wallet, 503 when
the server has no attestation signer.
"""

from __future__ import annotations

from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel

from api.http.access import OPEN, Access, KeyRule, RouteTable
from api.http.problems import FieldError, Problem, invalid_request
from api.http.routes import JSON_CONTENT_TYPE, _answer_of
from risk_core.errors import InputError

SIGNER_PATH = "/v1/attestations/signer"
ATTESTATION_PATH = "/v1/wallets/{address}/attestation"
ATTESTATION_ROUTE_ACCESS: RouteTable = {
    ("GET", SIGNER_PATH): OPEN,
    # signing on demand needs an API key, as the credit route does, and reads the wallet live
    ("GET", ATTESTATION_PATH): Access(KeyRule.REQUIRED, live_read=True),
}
"""The attestation routes' access (api.http.access): the signer is public."""
ATTESTATION_METHODS = ("signer_info", "wallet_attestation")


class AttestationProvider(Protocol):
    """Raises as RiskService's methods do (LookupError, risk_core.errors.InputError, ConnectionError)."""

    def signer_info(self) -> BaseModel: ...

    async def wallet_attestation(self, address: str, chain_id: int) -> BaseModel: ...


def parse_chain_id(request: web.Request) -> int:
    """The required `chain_id` query parameter, a positive integer.

    Raises:
        Problem: 422 naming chain_id.
    """
    raw = request.query.get("chain_id")
    if raw is None:
        raise invalid_request([FieldError(field="chain_id", reason="required: the chain id of the verifier")])
    if not raw.isdigit() or int(raw) == 0:
        raise invalid_request([FieldError(field="chain_id", reason="must be a positive integer")])
    return int(raw)


def _require(provider: AttestationProvider | None) -> AttestationProvider:
    if provider is None:
        raise Problem(
            503, "service-unavailable", "Service unavailable", "this server has no attestation signer configured"
        )
    return provider


def signer_handler(provider: AttestationProvider | None) -> Handler:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=_require(provider).signer_info().model_dump_json(), content_type=JSON_CONTENT_TYPE)

    return answer


def attestation_handler(provider: AttestationProvider | None) -> Handler:
    async def answer(request: web.Request) -> web.Response:
        chain_id = parse_chain_id(request)
        address = request.match_info["address"]
        attestations = _require(provider)

        async def attest() -> BaseModel:
            try:
                return await attestations.wallet_attestation(address, chain_id)
            except InputError as e:
                if e.field != "chain_id":
                    raise
                raise invalid_request([FieldError(field="chain_id", reason=e.reason)]) from e

        model = await _answer_of(attest(), "address", address)
        return web.Response(body=model.model_dump_json(), content_type=JSON_CONTENT_TYPE)

    return answer


def add_attestation_routes(app: web.Application, provider: AttestationProvider | None) -> None:
    app.router.add_get(SIGNER_PATH, signer_handler(provider))
    app.router.add_get(ATTESTATION_PATH, attestation_handler(provider))
