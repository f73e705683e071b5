"""The scoring function shipped inside the model directory: its bytes are covered by the
model's version hash, so a replay runs exactly the code that served.

custody calls ``predict(weights_dir, input)`` with the recorded input (a deployment records
the entry point ``score:predict``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def predict(weights_dir: str, input: dict[str, Any]) -> dict[str, Any]:
    """Logistic regression over the features named in ``weights.json``."""
    model = json.loads((Path(weights_dir) / "weights.json").read_text())
    z = model["bias"] + sum(
        w * float(input[name]) for name, w in zip(model["features"], model["weights"], strict=True)
    )
    score = 1.0 / (1.0 + math.exp(-z))
    return {"score": round(score, 6), "decision": "approve" if score >= 0.5 else "refer"}
