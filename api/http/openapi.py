"""The OpenAPI 3.1 document, generated from the pydantic models the routes read and answer."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from api.http.access import API_KEY_HEADER, Access, KeyRule
from api.http.attestation import ATTESTATION_METHODS, ATTESTATION_PATH, SIGNER_PATH, AttestationProvider
from api.http.history import HISTORY_PATH, STORED_REPORT_PATH, query_parameters, report_id_schema
from api.http.path_parameters import path_parameter_schema
from api.http.problems import PROBLEM_CONTENT_TYPE, ProblemDetails
from api.http.routes import HealthReport
from api.http.service import SERVICE_ROUTES, RiskService
from api.http.settings import DEMO_API_KEY
from risk_core.schema.positions import SCHEMA_VERSION
from risk_core.schema.report import MarginReport
from risk_core.schema.request import MarginRequest
from risk_core.schema.surface_report import SurfaceReport

REF_TEMPLATE = "#/components/schemas/{model}"
_KEYED: list[dict[str, list[str]]] = [{"apiKey": []}]
_KEY_OPTIONAL: list[dict[str, list[str]]] = [{"apiKey": []}, {}]  # a key, or none and the per-address limit

_PROBLEM_DESCRIPTIONS = {
    400: "the body is not JSON",
    401: "no or unknown API key",
    404: "no such resource",
    503: "the aggregator is not configured, a dependency it needs (the database, its market) is down, the engine "
    "is saturated or past its time budget, or the server runs its maximum of live reads (see Retry-After)",
    413: "the body exceeds the size limit",
    415: "the body is not declared application/json",
    422: "the request breaks the schema, cannot be priced, would overflow, or exceeds the engine's memory budget; "
    "`errors` names each field",
    429: "the rate limit of the key (or, without one, of the client address) or its live reads at once are "
    "exceeded; see Retry-After",
}


def build_openapi(
    *, version: str, service: RiskService | None, attestations: AttestationProvider | None = None
) -> dict[str, Any]:
    """The document for this app: the aggregator's routes appear only when a service is injected, the attestation
    routes only with an attestation signer."""
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (MarginRequest, "validation"),
        (MarginReport, "serialization"),
        (ProblemDetails, "serialization"),
        (HealthReport, "serialization"),
        (SurfaceReport, "serialization"),
    ]
    service_models = _service_models(service) if service is not None else {}
    models += [(m, "serialization") for m in service_models.values() if m is not None]
    attestation_models = _returned_models(attestations, ATTESTATION_METHODS) if attestations is not None else {}
    models += [(m, "serialization") for m in attestation_models.values() if m is not None]
    refs, definitions = models_json_schema(models, ref_template=REF_TEMPLATE)

    def ref(model: type[BaseModel], mode: JsonSchemaMode = "serialization") -> dict[str, Any]:
        return refs[(model, mode)]

    problem = ref(ProblemDetails)
    paths: dict[str, Any] = {
        "/v1/margin": {
            "post": {
                "operationId": "computeMargin",
                "summary": "What-if margin report of a request, the same request `metarisk margin` reads",
                "security": _KEYED,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref(MarginRequest, "validation")}},
                },
                "responses": {
                    "200": _json("the margin report", ref(MarginReport)),
                    **_problems(problem, 400, 401, 413, 415, 422, 429, 503),
                },
            }
        },
        "/v1/surface": {
            "post": {
                "operationId": "fitSurface",
                "summary": "The eSSVI vol surface of an option chain, the report `metarisk surface` prints",
                "security": _KEYED,
                "parameters": [
                    {"name": "asset", "in": "query", "required": True, "schema": {"type": "string"}},
                    {"name": "k_grid", "in": "query", "required": False,
                     "schema": {"type": "string", "default": "-3:3:0.01"}},
                ],
                "requestBody": {
                    "required": True,
                    "content": {"text/csv": {"schema": {"type": "string"}}},
                },
                "responses": {
                    "200": _json("the surface report", ref(SurfaceReport)),
                    **_problems(problem, 401, 413, 422, 429),
                },
            }
        },
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Liveness, versions, and whether the aggregator is configured",
                "responses": {"200": _json("the service is up", ref(HealthReport))},
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus text exposition",
                "responses": {
                    "200": {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {"200": _json("the OpenAPI document", {"type": "object"})},
            }
        },
    }
    for route in SERVICE_ROUTES if service is not None else ():
        model = service_models[route.method_name]
        operation: dict[str, Any] = {
            "operationId": route.operation_id,
            "summary": route.summary,
            "parameters": [
                {"name": route.parameter, "in": "path", "required": True,
                 "schema": path_parameter_schema(route.parameter)},
                *(query_parameters(route.query) if route.query is not None else ()),
            ],
            "responses": {
                "200": _json(route.summary, ref(model) if model is not None else {"type": "object"}),
                **_problems(problem, *_access_problems(route.access), 404, 422),
            },
        }
        if route.access.key is KeyRule.REQUIRED:
            operation["security"] = _KEYED
        elif route.access.key is KeyRule.OR_CLIENT_LIMIT:
            operation["security"] = _KEY_OPTIONAL
        paths[route.path] = {"get": operation}
    if service is not None:
        paths.update(_history_paths(service_models, ref, problem))
    if attestations is not None:
        paths.update(_attestation_paths(attestation_models, ref, problem))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "metarisk",
            "version": version,
            "description": (
                f"Cross-chain portfolio margin. Schema version {SCHEMA_VERSION}. Errors are RFC 9457 problem "
                f"details ({PROBLEM_CONTENT_TYPE}). Computing and signing routes need an API key in the "
                f"{API_KEY_HEADER} header (the local demo accepts `{DEMO_API_KEY}`). GraphQL is served at /graphql. "
                "Account, wallet and market routes answer 503 while no aggregator is configured."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER}},
        },
    }


_HISTORY_METHODS = ("account_history", "stored_report")
_ACCOUNT_ID = {"name": "account_id", "in": "path", "required": True, "schema": path_parameter_schema("account_id")}


def _history_paths(
    models: dict[str, type[BaseModel] | None], ref: Callable[[type[BaseModel]], dict[str, Any]], problem: dict[str, Any]
) -> dict[str, Any]:
    def answered(method_name: str) -> dict[str, Any]:
        model = models[method_name]
        return ref(model) if model is not None else {"type": "object"}

    history = {
        "operationId": "accountHistory",
        "summary": "A page of the account's stored report headlines, newest first",
        "description": (
            "Reports with since <= computed_at < until, newest first. For the next (older) page pass the same "
            "`since` and the answer's `next_until` as `until`: until is exclusive, so no report comes twice, and "
            "a page never splits reports computed at the same instant. `more` says whether older ones remain."
        ),
        "parameters": [_ACCOUNT_ID, *query_parameters()],
        "responses": {
            "200": _json("the page of history", answered("account_history")),
            **_problems(problem, 404, 422, 503),
        },
    }
    report = {
        "operationId": "storedReport",
        "summary": "One stored report of the account, with its ids and computed_at",
        "parameters": [
            _ACCOUNT_ID,
            {"name": "report_id", "in": "path", "required": True, "schema": report_id_schema()},
        ],
        "responses": {
            "200": _json("the stored report", answered("stored_report")),
            **_problems(problem, 404, 422, 503),
        },
    }
    return {HISTORY_PATH: {"get": history}, STORED_REPORT_PATH: {"get": report}}


def _attestation_paths(
    models: dict[str, type[BaseModel] | None], ref: Callable[[type[BaseModel]], dict[str, Any]], problem: dict[str, Any]
) -> dict[str, Any]:
    def answered(method_name: str) -> dict[str, Any]:
        model = models[method_name]
        return ref(model) if model is not None else {"type": "object"}

    signer = {
        "operationId": "attestationSigner",
        "summary": "The attestation signer's address, the chains and verifiers it signs for, its rotated keys",
        "responses": {"200": _json("the signer", answered("signer_info")), **_problems(problem, 503)},
    }
    attestation = {
        "operationId": "walletAttestation",
        "summary": "The wallet's signed EIP-712 margin attestation for the verifier on chain `chain_id`",
        "security": _KEYED,
        "parameters": [
            {"name": "address", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "chain_id", "in": "query", "required": True, "schema": {"type": "integer", "minimum": 1}},
        ],
        "responses": {
            "200": _json("typed data and signature", answered("wallet_attestation")),
            **_problems(problem, 401, 404, 422, 429, 503),
        },
    }
    return {SIGNER_PATH: {"get": signer}, ATTESTATION_PATH: {"get": attestation}}


def _service_models(service: RiskService) -> dict[str, type[BaseModel] | None]:
    """Each method's response model, read from the service's own return annotations (None when generic); an
    optional answer (None: not found) is documented by its model."""
    return _returned_models(service, [*(route.method_name for route in SERVICE_ROUTES), *_HISTORY_METHODS])


def _returned_models(answerer: object, method_names: Iterable[str]) -> dict[str, type[BaseModel] | None]:
    models: dict[str, type[BaseModel] | None] = {}
    for method_name in method_names:
        returned = typing.get_type_hints(getattr(type(answerer), method_name)).get("return")
        if typing.get_origin(returned) in (typing.Union, types.UnionType):
            returned = next((a for a in typing.get_args(returned) if a is not type(None)), None)
        concrete = isinstance(returned, type) and issubclass(returned, BaseModel) and returned is not BaseModel
        models[method_name] = returned if concrete else None
    return models


def _access_problems(access: Access) -> tuple[int, ...]:
    statuses = {KeyRule.NONE: (), KeyRule.REQUIRED: (401, 429), KeyRule.OR_CLIENT_LIMIT: (401, 429)}[access.key]
    return (*statuses, 503) if access.live_read else statuses


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problems(problem: dict[str, Any], *statuses: int) -> dict[str, Any]:
    content = {PROBLEM_CONTENT_TYPE: {"schema": problem}}
    return {str(status): {"description": _PROBLEM_DESCRIPTIONS[status], "content": content} for status in statuses}
