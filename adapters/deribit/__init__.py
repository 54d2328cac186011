"""Deribit positions with a read-only API key: options and futures, with the venue's own IM/MM."""
