"""Run by test_crash.py in a subprocess: saves one refresh and SIGKILLs itself mid-transaction, right after the
position snapshot's INSERT (the market snapshot's INSERT went before it), before the report's and the commit.

Usage: python crash_mid_refresh.py DATABASE_URL INPUTS.json, INPUTS holding account_id, positions, market, report.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import event

from aggregator.store import PositionSnapshot, Store
from risk_core.schema.market import MarketSnapshot
from risk_core.schema.report import MarginReport


def main(database_url: str, inputs_path: str) -> None:
    inputs = json.loads(Path(inputs_path).read_text())
    store = Store.from_url(database_url)

    @event.listens_for(store.engine, "after_cursor_execute")
    def die_after_position_insert(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT INTO position_snapshots"):
            os.kill(os.getpid(), signal.SIGKILL)

    store.save_refresh(
        inputs["account_id"],
        PositionSnapshot.model_validate(inputs["positions"]),
        MarketSnapshot.model_validate(inputs["market"]),
        MarginReport.model_validate(inputs["report"]),
    )
    sys.exit("the refresh was committed: the kill never came")


if __name__ == "__main__":
    main(*sys.argv[1:])
