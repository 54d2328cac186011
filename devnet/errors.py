"""The devnet's one exception: a node that will not start, a deployment that reverts, a missing npm install."""


class DevnetError(RuntimeError):
    pass
