"""The store's exception tree: the service catches StoreUnavailable and answers with what it has, complete: false."""


class StoreError(Exception):
    """Any failure of the store."""


class StoreUnavailable(StoreError):
    """The database cannot be reached, dropped the connection, or timed out: nothing was written."""


class StoreInputRefused(StoreError):
    """The database refused a value it was given (a NUL character in a text, a number out of its column's
    range): the caller's input is at fault, and nothing was written."""


class AccountNotFound(StoreError):
    """No watched account has this id."""


class AccountExists(StoreError):
    """A watched account with this id is already stored."""
