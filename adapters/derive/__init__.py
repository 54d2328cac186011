"""Derive positions with a session key: options, perps and collateral of one subaccount, and its margins."""
