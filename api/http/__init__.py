"""The REST and GraphQL service (aiohttp): `create_app` builds it, `serve` runs it."""

from api.http.app import create_app
from api.http.service import RiskService
from api.http.settings import ApiSettings, RateLimit

__all__ = ["ApiSettings", "RateLimit", "RiskService", "create_app"]
