"""A home with concept-drifted generated data and a model trained before the drift in Production.

Monthly snapshots Jan-Dec 2024 with the churn hazard changed from July: the "old" model learns
Jan-Jun labels only, so a retrain on a recent window has something to beat on the newest rows.
The drift is stronger than the generator's default (a competitor's fiber bundle: fiber
customers stop churning more and customers without internet start to; contracts bind harder):
the default drift moves ROC-AUC by about 0.01 here, within the noise of one month's ~100
churners, and the gates judge the gain's paired-bootstrap interval, so a retrain must win
clearly to be promoted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from churnops.data.generate import HAZARD, GeneratedData, generate_churn_data, write_generated
from churnops.features.store import apply
from churnops.settings import Settings
from churnops.training import TrainOptions, load_policy, train
from churnops.wiring import feast_definitions, feature_store, model_registry

CUSTOMERS, MONTHS, SEED = 3000, 12, 5
DRIFT_FROM = date(2024, 7, 1)
BUNDLES = replace(HAZARD, intercept=-2.2, contract=(0.0, -1.5, -3.0), internet=(0.0, -1.0, 1.2))
"""The hazard from DRIFT_FROM: the internet effect (DSL, fiber optic, none) flips."""


@dataclass
class RetrainEnv:
    settings: Settings
    data: GeneratedData
    store: Any
    registry: Any
    old_version: int

    @property
    def drift_from(self) -> datetime:
        assert self.data.concept_drift_from is not None
        return self.data.concept_drift_from

    @property
    def now(self) -> datetime:
        return self.data.last_snapshot + timedelta(days=2)

    def close(self) -> None:
        self.registry.engine.dispose()


def make_retrain_env(home: Path) -> RetrainEnv:
    settings = Settings(home=home, _env_file=None)
    data = generate_churn_data(
        customers=CUSTOMERS,
        months=MONTHS,
        seed=SEED,
        concept_drift_from=DRIFT_FROM,
        concept_drift_hazard=BUNDLES,
    )
    write_generated(data=data, sources_dir=settings.sources_dir)
    store = feature_store(settings)
    apply(store=store, defs=feast_definitions(settings))
    registry = model_registry(settings, write=True)
    assert data.concept_drift_from is not None
    old = train(
        store=store,
        client=registry.client,
        registry=registry,
        sources_dir=settings.sources_dir,
        policy=load_policy(),
        options=TrainOptions(
            labels_end=data.concept_drift_from - timedelta(seconds=1),
            families=("logistic_regression",),
            actor="tester",
        ),
        artifact_location=settings.artifact_location,
    )
    assert old.version is not None, old.registration
    registry.promote(version=old.version, stage="Staging", reason="initial", actor="tester")
    registry.promote(version=old.version, stage="Production", reason="initial", actor="tester")
    return RetrainEnv(settings=settings, data=data, store=store, registry=registry, old_version=old.version)
