"""A cut-out's confidence (its estimated IoU), kept with the image remove-background made.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("images", sa.Column("confidence", sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column("images", "confidence")
