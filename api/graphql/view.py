"""Strawberry's aiohttp view with orjson bodies and its transport errors answered as problem+json."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
from aiohttp import web
from cross_web import HTTPException
from strawberry.aiohttp.views import GraphQLView
from strawberry.http import GraphQLHTTPResponse

from api.graphql.schema import GraphQLContext
from api.http.access import API_KEY_HEADER
from api.http.json_body import refuse_duplicate_keys, require_json_media_type
from api.http.problems import Problem


class MetariskGraphQLView(GraphQLView[GraphQLContext, None]):
    def __init__(self, schema: Any, context: GraphQLContext) -> None:
        # queries only by POST, where the API key is checked; GET serves the GraphiQL page
        super().__init__(schema, graphql_ide="graphiql", allow_queries_via_get=False)
        self._context = context

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            require_json_media_type(request)
        try:
            return await self.run(request=request)
        except HTTPException as e:
            raise Problem(e.status_code, "graphql-transport", "Bad GraphQL request", e.reason) from e

    async def get_context(self, request: web.Request, response: web.Response | web.WebSocketResponse) -> GraphQLContext:
        # queries are POSTed with a key (the access middleware checked it): the key is who asks
        return replace(self._context, client=f"key:{request.headers.get(API_KEY_HEADER, '')}")

    def decode_json(self, data: str | bytes) -> object:
        document = orjson.loads(data)
        refuse_duplicate_keys(data)
        return document

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def create_response(
        self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse], sub_response: web.Response
    ) -> web.Response:
        sub_response.body = orjson.dumps(response_data)
        sub_response.content_type = "application/json"
        return sub_response
