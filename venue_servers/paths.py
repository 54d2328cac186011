"""Where ../shared is: METARISK_SHARED_DIR, else the folder beside the project's checkout."""

from __future__ import annotations

import os
from pathlib import Path


def shared_dir() -> Path:
    env = os.environ.get("METARISK_SHARED_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared"


def shared_file(*parts: str) -> Path:
    path = shared_dir().joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the venue servers need ../shared (or METARISK_SHARED_DIR)")
    return path
