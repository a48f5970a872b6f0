"""PostgreSQL tells listening workers the moment a deploy is queued

A trigger on ``deploys`` sends ``NOTIFY ferryman_queued`` (the payload: the deploy's queue)
whenever a row is inserted or updated with ``status = 'queued'``, from whatever queued it (a
request, a retry, a ticket, a rollout continued); the notification is delivered when that
transaction commits. Workers ``LISTEN`` (``jobs/queue_wakeups.py``) and claim at once instead
of at their next poll. SQLite and MariaDB have no such thing: nothing changes there (a worker
in the same process as the server is woken directly; others poll).

Revision ID: 0018
Revises: 0020
Create Date: 2026-11-30 12:45:00
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0020"
branch_labels = None
depends_on = None

CHANNEL = "ferryman_queued"


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if not _postgresql():
        return
    op.execute(
        "CREATE OR REPLACE FUNCTION ferryman_deploy_queued() RETURNS trigger AS $$\n"
        "BEGIN\n"
        f"  PERFORM pg_notify('{CHANNEL}', COALESCE(NEW.queue, ''));\n"
        "  RETURN NULL;\n"
        "END $$ LANGUAGE plpgsql"
    )
    op.execute(
        "CREATE TRIGGER deploys_queued_notify AFTER INSERT OR UPDATE OF status ON deploys "
        "FOR EACH ROW WHEN (NEW.status = 'queued') EXECUTE FUNCTION ferryman_deploy_queued()"
    )


def downgrade() -> None:
    if not _postgresql():
        return
    op.execute("DROP TRIGGER IF EXISTS deploys_queued_notify ON deploys")
    op.execute("DROP FUNCTION IF EXISTS ferryman_deploy_queued()")
