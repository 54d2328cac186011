"""The attestation routes and their GraphQL twin: the public signer, the keyed attestation whose signature recovers
to it, and problem+json naming chain_id or address for bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eth_account import Account
from eth_utils import keccak
from support.attestation_chain import demo_report
from support.eip712_reference import recover

from aggregator.attestation import SignedAttestation, compute_message, compute_typed_data, sign_attestation
from aggregator.attestation_signer import SignerChain, SignerInfo
from api.http.settings import DEMO_API_KEY
from risk_core.errors import InputError

KEY = {"X-API-Key": DEMO_API_KEY}
SIGNER = Account.from_key(keccak(text="metarisk api test signer"))
VERIFIER = "0x4C4a2f8c81640e47606d3fd77B353E87Ba015584"
ISSUED = datetime(2026, 12, 4, 12, tzinfo=UTC)
WALLET = "0x00000000000000000000000000000000000000aa"  # the one wallet the API tests' fake aggregator knows


class FakeAttestations:
    """Signs the demo request's report for the conftest's one known wallet, on chain 42161 only."""

    def signer_info(self) -> SignerInfo:
        return SignerInfo(address=SIGNER.address, chains=[SignerChain(chain_id=42161, verifying_contract=VERIFIER)],
                          history=[], name="metarisk", version="1", ttl_seconds=300)

    async def wallet_attestation(self, address: str, chain_id: int) -> SignedAttestation:
        if not address.startswith("0x"):
            raise InputError("address", "not a hex address")
        if chain_id != 42161:
            raise InputError("chain_id", f"no verifier on chain {chain_id}")
        if address != WALLET:
            raise LookupError(address)
        message = compute_message(address, demo_report(), blocks={42161: 5}, offchain_sources=[], issued_at=ISSUED,
                                  ttl=timedelta(minutes=5))
        return sign_attestation(compute_typed_data(message, chain_id=chain_id, verifying_contract=VERIFIER), SIGNER)


async def _client(make_client: Any, fake_service: Any, **kwargs: Any) -> Any:
    kwargs.setdefault("attestations", FakeAttestations())
    return await make_client(service=fake_service, **kwargs)


async def test_the_signer_is_public(make_client: Any, fake_service: Any) -> None:
    client = await _client(make_client, fake_service)
    signer = await (await client.get("/v1/attestations/signer")).json()
    assert signer["address"] == SIGNER.address
    assert signer["chains"] == [{"chain_id": 42161, "verifying_contract": VERIFIER}]


async def test_the_attestation_recovers_to_the_published_signer(make_client: Any, fake_service: Any) -> None:
    client = await _client(make_client, fake_service)
    response = await client.get(f"/v1/wallets/{WALLET}/attestation?chain_id=42161", headers=KEY)
    assert response.status == 200
    body = await response.json()
    assert set(body) == {"typed_data", "signature"}
    assert set(body["typed_data"]) == {"types", "primaryType", "domain", "message"}
    assert body["typed_data"]["domain"]["chainId"] == 42161
    signer = (await (await client.get("/v1/attestations/signer")).json())["address"]
    assert recover(body["typed_data"], body["signature"]) == signer


async def test_the_attestation_needs_a_key(make_client: Any, fake_service: Any) -> None:
    client = await _client(make_client, fake_service)
    assert (await client.get(f"/v1/wallets/{WALLET}/attestation?chain_id=42161")).status == 401


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        (f"{WALLET}/attestation", 422, "chain_id"),
        (f"{WALLET}/attestation?chain_id=abc", 422, "chain_id"),
        (f"{WALLET}/attestation?chain_id=0", 422, "chain_id"),
        (f"{WALLET}/attestation?chain_id=10", 422, "chain_id"),
        ("0x01/attestation?chain_id=42161", 404, "address"),
        ("not-hex/attestation?chain_id=42161", 422, "address"),
    ],
)
async def test_bad_input_is_a_problem_naming_the_field(
    make_client: Any, fake_service: Any, query: str, status: int, field: str
) -> None:
    client = await _client(make_client, fake_service)
    response = await client.get(f"/v1/wallets/{query}", headers=KEY)
    assert response.status == status
    assert response.content_type == "application/problem+json"
    assert (await response.json(content_type=None))["errors"][0]["field"] == field


async def test_without_a_signer_the_routes_answer_503(make_client: Any, fake_service: Any) -> None:
    client = await make_client(service=fake_service)
    for path in ("/v1/attestations/signer", f"/v1/wallets/{WALLET}/attestation?chain_id=42161"):
        response = await client.get(path, headers=KEY)
        assert response.status == 503 and response.content_type == "application/problem+json"


async def test_graphql_answers_as_rest_does(make_client: Any, fake_service: Any) -> None:
    client = await _client(make_client, fake_service)
    rest = await (await client.get(f"/v1/wallets/{WALLET}/attestation?chain_id=42161", headers=KEY)).json()
    signer_rest = await (await client.get("/v1/attestations/signer")).json()
    query = ("query($w: String!, $c: Int!) { wallet(address: $w) { attestation(chainId: $c) } attestationSigner { "
             "address chains { chainId verifyingContract } history { address validFrom validUntil } name version "
             "ttlSeconds } }")

    async def ask(chain_id: int) -> Any:
        body = json.dumps({"query": query, "variables": {"w": WALLET, "c": chain_id}})
        response = await client.post("/graphql", data=body, headers={**KEY, "Content-Type": "application/json"})
        return await response.json()

    answer = await ask(42161)
    assert answer["data"]["wallet"]["attestation"] == rest
    signer = answer["data"]["attestationSigner"]
    assert signer["address"] == SIGNER.address == signer_rest["address"]
    assert signer["chains"] == [{"chainId": c["chain_id"], "verifyingContract": c["verifying_contract"]}
                                for c in signer_rest["chains"]]
    assert (signer["name"], signer["version"], signer["ttlSeconds"]) == (
        signer_rest["name"], signer_rest["version"], signer_rest["ttl_seconds"])
    refused = await ask(10)
    assert refused["errors"][0]["extensions"]["errors"] == [{"field": "chainId", "reason": "no verifier on chain 10"}]


async def test_the_routes_are_documented_with_their_models(make_client: Any, fake_service: Any) -> None:
    from openapi_spec_validator import validate

    client = await _client(make_client, fake_service)
    document = await (await client.get("/openapi.json")).json()
    validate(document)
    signer = document["paths"]["/v1/attestations/signer"]["get"]["responses"]["200"]
    attestation = document["paths"]["/v1/wallets/{address}/attestation"]["get"]
    assert signer["content"]["application/json"]["schema"]["$ref"].endswith("/SignerInfo")
    assert attestation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/SignedAttestation"
    )
    assert [p["name"] for p in attestation["parameters"]] == ["address", "chain_id"]
    assert attestation["security"] and "security" not in document["paths"]["/v1/attestations/signer"]["get"]
    plain = await make_client(service=fake_service)
    assert "/v1/attestations/signer" not in (await (await plain.get("/openapi.json")).json())["paths"]
