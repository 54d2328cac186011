"""Indexers: wallets and their positions discovered from The Graph's subgraphs over GraphQL (gql)."""
