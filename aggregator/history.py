"""An account's stored report history, one page at a time, newest first."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from aggregator.store.records import ReportHeadline


class AccountHistory(BaseModel):
    """One page of an account's stored reports, newest first, with since <= computed_at < until.

    The next page: the same `since` and `until` = `next_until` (until is exclusive, so no report comes twice). A
    page never splits reports computed at the same instant, so none is skipped; it may hold fewer than `limit`
    reports for that reason. Only when more than `limit` reports share one instant does paging by time pass over
    the rest of them (`more` is true while `next_until` equals the page's only instant): ask with a larger limit.
    """

    model_config = ConfigDict(frozen=True)

    account_id: str
    since: AwareDatetime | None = Field(description="inclusive lower bound asked for; null: from the first report")
    until: AwareDatetime | None = Field(description="exclusive upper bound asked for; null: up to the newest report")
    limit: int = Field(description="most reports a page holds")
    reports: list[ReportHeadline] = Field(description="headline figures of each stored report, newest first")
    more: bool = Field(description="older reports within [since, until) remain beyond this page")
    next_until: AwareDatetime | None = Field(
        description="`until` of the next page (the oldest computed_at on this one); null when there is no more"
    )


def page_of_history(
    account_id: str,
    newest_first: Sequence[ReportHeadline],
    *,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> AccountHistory:
    """The page from up to `limit` + 1 rows of the store (the extra row tells whether there is more)."""
    page = list(newest_first[:limit])
    more = len(newest_first) > limit
    if more:
        beyond = newest_first[limit].computed_at
        # the next page starts strictly before the oldest computed_at here: reports sharing the instant of the
        # first one left out must all go to the next page, or they would be skipped
        whole = [row for row in page if row.computed_at != beyond]
        page = whole or page
    return AccountHistory(
        account_id=account_id,
        since=since,
        until=until,
        limit=limit,
        reports=page,
        more=more,
        next_until=page[-1].computed_at if more else None,
    )
