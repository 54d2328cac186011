"""GraphQL (strawberry) over the same models as the REST API."""
