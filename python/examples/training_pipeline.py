"""A training pipeline that records its evidence as it goes: the dataset version it read, the
run with its environment, and the model version (weights hashed, card attached).

    CUSTODY_SERVER=... CUSTODY_TOKEN=... CUSTODY_TENANT=acme \\
        python examples/training_pipeline.py --data loans.csv --lockfile requirements.txt \\
        --out model/

Prints the model's version hash. Needs numpy.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np

import custody
from custody import hashing

FEATURES = ["income", "debt"]


def train(rows: list[dict[str, str]]) -> tuple[list[float], float]:
    """Logistic regression by gradient descent, with a fixed seed so runs repeat."""
    x = np.array([[float(r[f]) for f in FEATURES] for r in rows])
    y = np.array([float(r["repaid"]) for r in rows])
    rng = np.random.default_rng(7)
    w = np.asarray(rng.normal(scale=0.01, size=x.shape[1]), dtype=np.float64)
    b = 0.0
    for _ in range(500):
        p = 1 / (1 + np.exp(-(x @ w + b)))
        w -= 0.1 * (x.T @ (p - y)) / len(y)
        b -= 0.1 * float(np.mean(p - y))
    return [round(float(v), 6) for v in w.tolist()], round(b, 6)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--lockfile", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--run-id", default="run-1")
    parser.add_argument("--code-commit", default="0" * 40)
    args = parser.parse_args(argv)

    # Everything read from disk is checked before anything is recorded.
    dataset = hashing.digest_dataset(args.data)
    environment = hashing.environment_from_lockfile(args.lockfile)
    client = custody.Client()
    # An earlier run may have registered this dataset version already.
    with contextlib.suppress(custody.Conflict):
        client.evidence.register_dataset(
            name="loans",
            version="2026-12",
            digest=dataset.digest,
            uri=args.data.resolve().as_uri(),
            legal_basis="contract",
            row_count=sum(1 for _ in args.data.open()) - 1,
        )

    with args.data.open() as f:
        weights, bias = train(list(csv.DictReader(f)))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "weights.json").write_text(
        json.dumps({"features": FEATURES, "weights": weights, "bias": bias})
    )
    shutil.copy(Path(__file__).with_name("score.py"), args.out / "score.py")

    client.evidence.record_training_run(
        run_id=args.run_id,
        datasets=[dataset.digest],
        code_commit=args.code_commit,
        environment=environment,
        parameters={"epochs": 500, "learning_rate": 0.1},
        metrics={"weights": len(weights)},
    )
    model = custody.hash_model(args.out)
    client.evidence.register_model(
        name="credit-risk",
        weights=model,
        run_id=args.run_id,
        framework="numpy",
        registry={"kind": "object_store", "uri": args.out.resolve().as_uri()},
    )
    client.evidence.publish_card(
        model.version_hash,
        {
            "card_version": 1,
            "training_data": {"summary": "loan applications", "datasets": [dataset.digest]},
            "evaluation": [
                {
                    "metric": "weights",
                    "value": len(weights),
                    "dataset": dataset.digest,
                    "passed": True,
                }
            ],
            "intended_use": "pre-screening; a person decides every refusal",
            "limitations": ["an example"],
        },
    )
    client.close()
    print(model.version_hash)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
