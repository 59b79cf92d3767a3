"""A FastAPI app with Errand: the worker runs in the app's lifespan, a request enqueues a job
inside the app's own SQLAlchemy transaction, and a periodic task runs every night.

    DATABASE=app.db uvicorn app:api          # or DATABASE=postgres://user@host/db

SIGTERM (or Ctrl-C) stops uvicorn gracefully: the worker stops claiming and running jobs finish.
"""

from __future__ import annotations

import contextlib

import fastapi
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jobs import errand_app, send_welcome
from models import Base, User, engine


@contextlib.asynccontextmanager
async def lifespan(api: fastapi.FastAPI):
    Base.metadata.create_all(engine)
    async with errand_app.worker(queues={"email": 4, "maintenance": 1}):
        yield
    # Here the worker has drained: every job it had started has finished.


api = fastapi.FastAPI(lifespan=lifespan)


class Signup(BaseModel):
    email: str


@api.post("/signup", status_code=201)
def signup(body: Signup) -> dict:
    try:
        with Session(engine) as session, session.begin():
            user = User(email=body.email)
            session.add(user)
            session.flush()  # the user's id, still inside the transaction
            job = send_welcome.configure(
                reference=("user", user.id), unique_key=f"welcome:{user.id}"
            ).defer_in(session, user_id=user.id)
            user_id = user.id
    except IntegrityError:
        # Rolled back: neither the user nor the welcome job exists.
        raise fastapi.HTTPException(409, f"{body.email} has already signed up") from None
    return {"user_id": user_id, "job_id": job.id}


@api.get("/users/{user_id}/jobs")
async def user_jobs(user_id: int) -> list:
    jobs = await errand_app.aio.find_by_reference("user", user_id)
    return [{"id": j.id, "kind": j.kind, "status": j.status, "result": j.result} for j in jobs]
