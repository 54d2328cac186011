"""Watched accounts, position snapshots, market snapshots and margin reports.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "watched_accounts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("addresses", sa.JSON(), nullable=False),
        sa.Column("venue_accounts", sa.JSON(), nullable=False),
        sa.Column("alert_webhook_url", sa.String(length=2000), nullable=True),
        sa.Column("margin_ratio_alerts", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_watched_accounts")),
    )
    op.create_table(
        "market_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_snapshots")),
        sa.UniqueConstraint("digest", name=op.f("uq_market_snapshots_digest")),
    )
    op.create_index(op.f("ix_market_snapshots_as_of"), "market_snapshots", ["as_of"])
    op.create_table(
        "position_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("blocks", sa.JSON(), nullable=False),
        sa.Column("positions", sa.JSON(), nullable=False),
        sa.Column("venue_states", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["watched_accounts.id"],
            name=op.f("fk_position_snapshots_account_id_watched_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_position_snapshots")),
    )
    op.create_index("ix_position_snapshots_account_taken", "position_snapshots", ["account_id", "taken_at"])
    op.create_table(
        "margin_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("position_snapshot_id", sa.Integer(), nullable=False),
        sa.Column("market_snapshot_id", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("equity_usd", sa.Float(), nullable=False),
        sa.Column("collateral_usd", sa.Float(), nullable=False),
        sa.Column("maintenance_margin_usd", sa.Float(), nullable=False),
        sa.Column("initial_margin_usd", sa.Float(), nullable=False),
        sa.Column("margin_ratio", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("params_version", sa.String(length=64), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["watched_accounts.id"],
            name=op.f("fk_margin_reports_account_id_watched_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["market_snapshot_id"],
            ["market_snapshots.id"],
            name=op.f("fk_margin_reports_market_snapshot_id_market_snapshots"),
        ),
        sa.ForeignKeyConstraint(
            ["position_snapshot_id"],
            ["position_snapshots.id"],
            name=op.f("fk_margin_reports_position_snapshot_id_position_snapshots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_margin_reports")),
    )
    op.create_index("ix_margin_reports_account_computed", "margin_reports", ["account_id", "computed_at"])
    op.create_index(op.f("ix_margin_reports_market_snapshot_id"), "margin_reports", ["market_snapshot_id"])
    op.create_index(op.f("ix_margin_reports_position_snapshot_id"), "margin_reports", ["position_snapshot_id"])


def downgrade() -> None:
    op.drop_table("margin_reports")
    op.drop_table("position_snapshots")
    op.drop_table("market_snapshots")
    op.drop_table("watched_accounts")
