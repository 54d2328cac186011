"""The chain layer's exception tree: adapters catch ChainError at their boundary and report a failed source."""


class ChainError(Exception):
    """Any failure to read a chain."""


class ChainConfigError(ChainError):
    """The chains file is missing, malformed or inconsistent."""


class RpcError(ChainError):
    """The node is down, slow, or answered an error or garbage."""
