"""A FastAPI scoring service that refuses to start on weights never approved for its
environment, and records every decision, stamped at request time with the version hash that
served it.

    CUSTODY_SERVER=... CUSTODY_TOKEN=... CUSTODY_TENANT=acme MODEL_DIR=model/ \\
        uvicorn examples.serving:app
"""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

import custody


class Application(BaseModel):
    income: float
    debt: float


def load_predict(model_dir: Path) -> Callable[[str, dict[str, Any]], dict[str, Any]]:
    """The ``predict`` function shipped in the model directory."""
    spec = importlib.util.spec_from_file_location("score", model_dir / "score.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    predict: Callable[[str, dict[str, Any]], dict[str, Any]] = module.predict
    return predict


def create_app(model_dir: Path, environment: str, deployment_id: str) -> FastAPI:
    """The service for the weights in ``model_dir``, deployed as ``deployment_id``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with custody.Client() as client:
            # Raises custody.NotAdmitted (and the service does not start) unless these exact
            # weights are approved and promoted for this environment.
            client.serving.admit(environment, model_dir)
            app.state.predict = load_predict(model_dir)
            with client.serving.recorder(
                deployment_id=deployment_id, weights=model_dir
            ) as recorder:
                app.state.recorder = recorder
                yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/predict")
    def predict(application: Application) -> dict[str, Any]:
        request_id = f"req-{uuid.uuid4()}"
        with app.state.recorder.request(request_id) as timed:
            features = application.model_dump()
            result: dict[str, Any] = app.state.predict(str(model_dir), features)
            timed.done(input=features, output=result, decision=result["decision"])
        return {"request_id": request_id, **result}

    return app


if os.environ.get("MODEL_DIR"):
    app = create_app(
        Path(os.environ["MODEL_DIR"]),
        os.environ.get("ENVIRONMENT", "production"),
        os.environ.get("DEPLOYMENT_ID", "dep-1"),
    )
