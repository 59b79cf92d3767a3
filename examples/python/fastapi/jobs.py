"""The app's background jobs: Errand tasks, one of them periodic."""

from __future__ import annotations

import asyncio
import os

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

import errand
from models import DATABASE, User, engine

errand_app = errand.App(DATABASE)


@errand_app.task(queue="email", max_attempts=5, timeout="1m", backoff=errand.Backoff(base="2s", cap="10m"))
async def send_welcome(ctx: errand.JobContext, user_id: int) -> dict:
    """Sends the welcome email (here: waits as a mail server would) and marks the user."""
    await asyncio.sleep(float(os.environ.get("WELCOME_SECONDS", "0.05")))
    with Session(engine) as session, session.begin():
        session.execute(update(User).where(User.id == user_id).values(welcomed=True))
    return {"user_id": user_id, "attempt": ctx.attempt}


@errand_app.periodic(cron="0 3 * * *", timezone="Europe/London")
@errand_app.task(queue="maintenance")
def forget_test_users() -> int:
    """Every night at 03:00 London time: removes the users of the example.com test domain."""
    with Session(engine) as session, session.begin():
        removed = session.execute(delete(User).where(User.email.like("%@test.example.com")))
    return removed.rowcount
