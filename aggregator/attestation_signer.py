"""The attestation service's own signing key: never a wallet's key, loaded from the environment or an eth-account
encrypted JSON keystore; the demo creates one in its data directory at first start."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from pydantic import BaseModel, ConfigDict, Field

KEY_VARIABLE = "METARISK_ATTESTATION_KEY"
KEYSTORE_VARIABLE = "METARISK_ATTESTATION_KEYSTORE"
PASSWORD_VARIABLE = "METARISK_ATTESTATION_KEYSTORE_PASSWORD"


class SignerWindow(BaseModel):
    """A key the verifiers accept for attestations issued between `valid_from` and `valid_until`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str
    valid_from: datetime
    valid_until: datetime | None = Field(default=None, description="null: not rotated out")


class SignerChain(BaseModel):
    model_config = ConfigDict(frozen=True)

    chain_id: int
    verifying_contract: str


class SignerInfo(BaseModel):
    """What GET /v1/attestations/signer publishes: the current key, where it signs for, and the keys before it."""

    model_config = ConfigDict(frozen=True)

    address: str
    chains: list[SignerChain]
    history: list[SignerWindow] = Field(description="rotated keys, oldest first, with their validity windows")
    name: str = Field(description="EIP-712 domain name")
    version: str = Field(description="EIP-712 domain version")
    ttl_seconds: int = Field(description="an attestation expires this long after it is issued")


def load_signer(environ: Mapping[str, str]) -> LocalAccount | None:
    """METARISK_ATTESTATION_KEY (hex), else METARISK_ATTESTATION_KEYSTORE with
    METARISK_ATTESTATION_KEYSTORE_PASSWORD; None when neither is set.

    Raises:
        ValueError: naming the variable at fault (a malformed key, an unreadable keystore, a wrong password).
    """
    key = environ.get(KEY_VARIABLE)
    if key:
        try:
            account: LocalAccount = Account.from_key(key)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{KEY_VARIABLE}: not a 32-byte hex private key") from e
        return account
    keystore = environ.get(KEYSTORE_VARIABLE)
    if not keystore:
        return None
    if PASSWORD_VARIABLE not in environ:
        raise ValueError(f"{PASSWORD_VARIABLE}: must be set with {KEYSTORE_VARIABLE}")
    return read_keystore(Path(keystore), environ[PASSWORD_VARIABLE], variable=KEYSTORE_VARIABLE)


def read_keystore(path: Path, password: str, *, variable: str = "keystore") -> LocalAccount:
    """Raises:
    ValueError: the file is unreadable, not a keystore, or the password does not open it."""
    try:
        encrypted = json.loads(path.read_text())
        account: LocalAccount = Account.from_key(Account.decrypt(encrypted, password))
    except OSError as e:
        raise ValueError(f"{variable}: cannot read {path}: {e.strerror}") from e
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{variable}: {path} is not a keystore this password opens ({e})") from e
    return account


def load_or_create_keystore(path: Path, password: str) -> LocalAccount:
    """The key of the keystore at `path`, created there (owner-only permissions) with a fresh random key when
    missing. Raises ValueError as read_keystore does."""
    if path.exists():
        return read_keystore(path, password)
    account: LocalAccount = Account.create()
    path.parent.mkdir(parents=True, exist_ok=True)
    encrypted = Account.encrypt(account.key, password)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(encrypted, file)
    return account
