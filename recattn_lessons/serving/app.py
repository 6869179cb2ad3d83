"""The HTTP API around a :class:`Recommender` (issue 9).

``create_app(recommender)`` returns a FastAPI app with

- ``GET /health`` -> ``{"status": "ok", "model", "n_items", "maxlen"}``;
- ``POST /recommend`` with ``{"history": [ids, oldest first], "k": 10}``
  (``exclude_seen`` optional, default true) ->
  ``{"items": [{"item_id", "score", "title"}, ...]}``, best first.

Every bad request (wrong JSON, a missing field, non-integers, unknown
ids, ``k`` out of range, a history longer than ``max_history``) gets a
**422** JSON body ``{"error": "<what is wrong>", "detail": [...]}``, never
a 500.

``batching`` (lesson 07) chooses how requests reach the model:

- a :class:`~recattn_lessons.serving.batcher.BatchConfig` (the default):
  ``/recommend`` is ``async``; it hands the request to a
  :class:`~recattn_lessons.serving.batcher.MicroBatcher`, which scores
  what arrives within ``max_wait_ms`` in one forward pass. A full queue
  or a request not answered within ``timeout_s`` gets a **503** JSON body
  (``{"error": ..., "detail": []}``, header ``Retry-After: 1``);
- ``None``: the endpoint is a plain ``def`` that FastAPI runs in its
  thread pool, one forward pass per request behind the recommender's
  lock (the issue-9 server: at 32 clients requests queue on the lock).

(No ``from __future__ import annotations`` here: FastAPI must see the
local ``Query`` class itself, not its name as a string.)
"""

import asyncio
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from .batcher import BatchConfig, MicroBatcher, Overloaded
from .recommender import Recommender

__all__ = ["create_app", "MAX_HISTORY"]

MAX_HISTORY = 10_000  # longest history a request may send (only maxlen are read)


class Item(BaseModel):
    item_id: int
    score: float
    title: str | None


class Recommendations(BaseModel):
    items: list[Item]


def _where(loc) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) if parts else "body"


def _validation_message(errors) -> str:
    """One line naming each problem: ``history.2: Input should be ...``."""
    lines = []
    for e in errors[:5]:
        if e.get("type") == "json_invalid":
            lines.append(f"body is not valid JSON ({e.get('ctx', {}).get('error', 'decode error')})")
        else:
            lines.append(f"{_where(e.get('loc', ()))}: {e.get('msg', 'invalid')}")
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(lines) + more


def _error(status: int, message: str) -> JSONResponse:
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse(status_code=status, content={"error": message, "detail": []},
                        headers=headers)


def create_app(recommender: Recommender, max_history: int = MAX_HISTORY,
               batching: BatchConfig | None = BatchConfig()) -> FastAPI:
    """The FastAPI app serving ``recommender`` (see the module docstring)."""
    rec = recommender
    batcher = None if batching is None else MicroBatcher(rec, batching)

    class Query(BaseModel):
        model_config = ConfigDict(extra="forbid")
        history: list[StrictInt] = Field(max_length=max_history,
                                         description="internal item ids, oldest first")
        k: StrictInt = Field(10, ge=1, le=rec.n_items)
        exclude_seen: StrictBool = True

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        if batcher is not None:
            batcher.close()

    app = FastAPI(title="recattn recommender", version="0.1.0", lifespan=lifespan)
    app.state.batcher = batcher

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
                  for e in errors]
        return JSONResponse(status_code=422,
                            content={"error": _validation_message(errors), "detail": detail})

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": rec.name, "n_items": rec.n_items, "maxlen": rec.maxlen}

    def answer(pairs) -> JSONResponse:
        # response_model documents the schema; returning a JSONResponse
        # skips its re-validation of our own output (~0.1 ms a request)
        return JSONResponse({"items": [{"item_id": i, "score": s, "title": rec.title(i)}
                                       for i, s in pairs]})

    if batcher is None:
        @app.post("/recommend", response_model=Recommendations)
        def recommend(query: Query):
            try:
                pairs = rec.recommend(query.history, k=query.k, exclude_seen=query.exclude_seen)
            except ValueError as err:
                return _error(422, str(err))
            return answer(pairs)
    else:
        @app.post("/recommend", response_model=Recommendations)
        async def recommend_batched(query: Query):
            try:
                future = batcher.submit(query.history, k=query.k,
                                        exclude_seen=query.exclude_seen)
            except ValueError as err:
                return _error(422, str(err))
            except Overloaded as err:
                return _error(503, str(err))
            try:
                pairs = await asyncio.wait_for(asyncio.wrap_future(future), batching.timeout_s)
            except asyncio.TimeoutError:
                return _error(503, f"no answer within {batching.timeout_s:g} s; retry shortly")
            except Overloaded as err:
                return _error(503, str(err))
            return answer(pairs)

    return app
