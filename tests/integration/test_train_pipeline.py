"""`train` end to end: a real Feast repo (duckdb offline, SQLite online/registry), a real MLflow
SQLite store and registry_ext in a temp home, on small generated monthly data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from churnops.contracts.artifacts import sha256_of_path
from churnops.contracts.columns import EVENT_TS, JOIN_KEY, LABEL, feature_names
from churnops.contracts.sources import write_sources
from churnops.data.generate import generate_churn_data, write_generated
from churnops.features.store import apply
from churnops.settings import Settings
from churnops.training import TrainingDataError, TrainOptions, TrainResult, load_policy, train
from churnops.training.candidates import TRUSTED_TYPES
from churnops.training.frame import feature_columns, model_input
from churnops.wiring import feast_definitions, feature_store, model_registry

pytestmark = pytest.mark.integration


@dataclass
class Env:
    settings: Settings
    store: Any
    client: Any
    registry: Any
    engine: Any

    def train(self, *, policy_path: Path | None = None, trigger: str = "manual") -> TrainResult:
        return train(
            store=self.store,
            client=self.client,
            registry=self.registry,
            sources_dir=self.settings.sources_dir,
            policy=load_policy(policy_path),
            options=TrainOptions(trigger=trigger, actor="tester"),
            artifact_location=self.settings.artifact_location,
        )


def make_env(home: Path) -> Env:
    settings = Settings(home=home, _env_file=None)
    write_generated(
        data=generate_churn_data(customers=2000, months=6, seed=11), sources_dir=settings.sources_dir
    )
    store = feature_store(settings)
    apply(store=store, defs=feast_definitions(settings))
    registry = model_registry(settings, write=True)
    client, engine = registry.client, registry.engine
    return Env(settings=settings, store=store, client=client, registry=registry, engine=engine)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    built = make_env(tmp_path_factory.mktemp("train") / "home")
    yield built
    built.engine.dispose()


@pytest.fixture(scope="module")
def first(env: Env) -> TrainResult:
    return env.train()


def download(env: Env, run_id: str, path: str, tmp_path: Path) -> Path:
    dst = tmp_path / path.replace("/", "_")
    dst.mkdir()
    return Path(env.client.download_artifacts(run_id, path, str(dst)))


def test_a_passing_candidate_is_registered(env: Env, first: TrainResult) -> None:
    assert first.gates.passed, first.gates.failures
    assert first.version == 1
    assert first.split_strategy == "time"
    assert {c.family for c in first.candidates} == {"logistic_regression", "hist_gradient_boosting"}
    best = max(first.candidates, key=lambda c: c.validation_roc_auc)
    assert best.chosen and best.family == first.family
    assert first.windows["train"].end < first.windows["validation"].start
    assert first.windows["validation"].end < first.windows["test"].start
    record = env.registry.get(1)
    assert record.run_id == first.run_id
    assert record.sha256 == first.sha256
    assert record.feature_service == "churn_v1"
    assert record.metrics["test_roc_auc"] == pytest.approx(first.test.overall["roc_auc"])
    assert record.metrics["threshold"] == pytest.approx(first.threshold)
    assert record.gate_results["passed"] is True
    assert record.tags["trigger"] == "manual"
    assert {r["rule"] for r in record.gate_results["results"]} >= {"floor:roc_auc", "ceiling:brier"}
    tags = env.client.get_run(first.run_id).data.tags
    assert tags["churnops.gates"] == "passed"
    assert tags["churnops.version"] == "1"


def test_the_run_carries_feast_lineage_and_the_entity_frame(env: Env, first: TrainResult) -> None:
    run = env.client.get_run(first.run_id)
    tags = run.data.tags
    assert tags["feast.feature_service"] == "churn_v1"
    assert tags["feast.project"] == env.settings.project
    refs = tags["feast.feature_refs"].split(",")
    assert sorted(r.split(":")[1] for r in refs) == sorted(feature_names())
    assert tags["feast.feature_views"] == "account,profile,services"
    rows = int(first.windows["train"].rows + first.windows["validation"].rows + first.windows["test"].rows)
    assert tags["feast.entity_count"] == str(rows)
    # Feast's own reader finds the entity frame we logged (its artifact convention).
    entity = env.store.mlflow.get_training_entity_df(first.run_id)
    assert list(entity.columns) == [JOIN_KEY, EVENT_TS, LABEL]
    assert len(entity) == rows
    # Params, metrics, code version and data hash are on the run.
    assert run.data.params["model_family"] == first.family
    assert run.data.params["window_test_end"] == first.windows["test"].end.isoformat()
    assert run.data.metrics["rows_test"] == first.windows["test"].rows
    assert run.data.metrics["test_roc_auc"] == pytest.approx(first.test.overall["roc_auc"])
    for name in ("pr_auc", "brier", "log_loss", "top_decile_lift", "recall_at_threshold"):
        assert f"val_{name}" in run.data.metrics and f"test_{name}" in run.data.metrics
    assert "test_slice_month_to_month_roc_auc" in run.data.metrics
    assert tags["churnops.training_frame_sha256"] == first.training_frame_sha256
    assert tags["churnops.code_version"].startswith("0.1.0")


def test_the_logged_model_is_skops_with_signature_and_its_sha_matches(
    env: Env, first: TrainResult, tmp_path: Path
) -> None:
    import skops.io

    model_dir = download(env, first.run_id, "model", tmp_path)
    assert sha256_of_path(model_dir) == first.sha256
    assert env.client.get_run(first.run_id).data.tags["churnops.model_sha256"] == first.sha256
    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
    flavor = mlmodel["flavors"]["sklearn"]
    assert flavor["serialization_format"] == "skops"
    assert set(flavor["skops_trusted_types"]) == set(TRUSTED_TYPES)
    assert "signature" in mlmodel and mlmodel["saved_input_example_info"]
    inputs = json.loads(mlmodel["signature"]["inputs"])
    assert [c["name"] for c in inputs] == feature_names()
    assert all(c["required"] is False for c in inputs)
    assert not list(model_dir.glob("*.pkl"))
    model = skops.io.load(model_dir / "model.skops", trusted=list(TRUSTED_TYPES))
    # registry_ext loads the same bytes after checking the digest, and both predict alike.
    holdout = pd.read_parquet(download(env, first.run_id, "evaluation/holdout.parquet", tmp_path))
    x = model_input(holdout, columns=feature_columns(feature_names()))
    via_registry = env.registry.load_model(first.version)
    np.testing.assert_allclose(model.predict_proba(x)[:, 1], via_registry.predict_proba(x)[:, 1])
    # The holdout's score column is the registered model's score (concept drift reads it).
    np.testing.assert_allclose(holdout["score"].to_numpy(), model.predict_proba(x)[:, 1], rtol=1e-12)
    # ... and a raw serving row with None values.
    row = pd.DataFrame([dict.fromkeys(feature_names())])
    assert 0.0 < via_registry.predict_proba(row)[0, 1] < 1.0


def test_holdout_reference_and_gate_results_are_logged(env: Env, first: TrainResult, tmp_path: Path) -> None:
    holdout = pd.read_parquet(download(env, first.run_id, "evaluation/holdout.parquet", tmp_path))
    assert list(holdout.columns) == [JOIN_KEY, EVENT_TS, *feature_names(), LABEL, "score"]
    assert len(holdout) == first.windows["test"].rows
    assert holdout[EVENT_TS].min() == first.windows["test"].start
    reference = pd.read_parquet(download(env, first.run_id, "reference/reference.parquet", tmp_path))
    assert list(reference.columns) == [JOIN_KEY, EVENT_TS, *feature_names(), LABEL, "score"]
    assert reference[EVENT_TS].max() <= first.windows["train"].end
    assert reference["score"].between(0, 1).all() and reference["score"].std() > 0
    gates = json.loads((download(env, first.run_id, "gate_results.json", tmp_path)).read_text())
    assert gates == json.loads(json.dumps(first.gates.to_dict()))
    metrics = json.loads(download(env, first.run_id, "evaluation/metrics.json", tmp_path).read_text())
    assert metrics["test"]["overall"]["roc_auc"] == pytest.approx(first.test.overall["roc_auc"])


def test_the_mlflow_ui_shows_a_training_experiment_with_plots_and_datasets(
    env: Env, first: TrainResult, tmp_path: Path
) -> None:
    experiment = env.client.get_experiment(first.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # not the GenAI view
    run = env.client.get_run(first.run_id)
    assert run.info.run_name.startswith("train-churn_v1-manual-")
    plots = {a.path for a in env.client.list_artifacts(first.run_id, "evaluation/plots")}
    assert plots == {
        f"evaluation/plots/{name}.png" for name in ("roc", "precision_recall", "calibration", "lift_gain")
    }
    png = download(env, first.run_id, "evaluation/plots/calibration.png", tmp_path).read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5_000
    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"holdout", "entity_df"}
    contexts = {name: {t.key: t.value for t in d.tags}["mlflow.data.context"] for name, d in inputs.items()}
    assert contexts == {"holdout": "evaluation", "entity_df": "training"}
    profile = json.loads(inputs["holdout"].dataset.profile)
    assert profile["num_rows"] == first.windows["test"].rows
    assert json.loads(inputs["holdout"].dataset.source)["uri"].endswith("evaluation/holdout.parquet")


def test_a_failing_candidate_leaves_a_tagged_run_and_no_version(
    env: Env, first: TrainResult, tmp_path: Path
) -> None:
    strict = tmp_path / "strict.yaml"
    strict.write_text(  # only floors and ceilings judge: no rule relative to Production
        "name: strict\nfloors: {roc_auc: 0.99}\nceilings: {brier: 0.001}\n"
        "relative: {min_improvement: -1.0, max_slice_regression: {}}\n"
    )
    before = [r.version for r in env.registry.all_versions()]
    result = env.train(policy_path=strict)
    assert result.version is None
    assert not result.gates.passed
    assert {r.rule for r in result.gates.failures} == {"floor:roc_auc", "ceiling:brier"}
    assert "floor:roc_auc" in result.registration
    assert [r.version for r in env.registry.all_versions()] == before
    tags = env.client.get_run(result.run_id).data.tags
    assert tags["churnops.gates"] == "failed"
    assert tags["churnops.gates_failed_rules"] == "floor:roc_auc,ceiling:brier"
    assert result.registration == "no new version: gate(s) failed: floor:roc_auc, ceiling:brier"
    names = {env.client.get_run(r).info.run_name for r in (first.run_id, result.run_id)}
    assert len(names) == 2  # every run has its own name in the MLflow UI
    assert "churnops.version" not in tags
    gates = json.loads(download(env, result.run_id, "gate_results.json", tmp_path).read_text())
    assert gates["passed"] is False and gates["policy"] == "strict"


def test_the_production_version_is_compared_on_the_same_rows(
    env: Env, first: TrainResult, tmp_path: Path
) -> None:
    if env.registry.production() is None:
        env.registry.promote(version=first.version, stage="Staging", reason="test", actor="tester")
        env.registry.promote(version=first.version, stage="Production", reason="test", actor="tester")
    # Same data, same seed: the candidate is the Production model again, so on the same rows
    # the two are scored identically and the improvement is exactly zero. A lenient policy
    # (no improvement required) lets it through; the default one requires a real gain.
    lenient = tmp_path / "lenient.yaml"
    policy = load_policy().model_dump()
    policy["relative"]["min_improvement"] = 0.0
    lenient.write_text(yaml.safe_dump(policy))
    again = env.train(trigger="scheduled", policy_path=lenient)
    assert again.production_version == first.version
    assert again.production_test is not None
    assert again.production_test.rows == again.test.rows
    assert again.production_test.overall["roc_auc"] == pytest.approx(again.test.overall["roc_auc"], abs=1e-12)
    improvement = next(r for r in again.gates.results if r.rule == "min_improvement:roc_auc")
    assert (
        improvement.passed and not improvement.skipped and improvement.value == pytest.approx(0.0, abs=1e-12)
    )
    assert again.version is not None and first.version is not None and again.version > first.version
    assert env.registry.get(again.version).tags["trigger"] == "scheduled"
    assert env.client.get_run(again.run_id).data.metrics["production_test_roc_auc"] == pytest.approx(
        again.test.overall["roc_auc"]
    )
    # The default policy requires a real improvement over Production: the same candidate fails,
    # its paired-bootstrap interval on the same test rows is exactly zero.
    assert load_policy().relative.min_improvement > 0
    refused = env.train()
    assert [r.rule for r in refused.gates.failures] == ["min_improvement:roc_auc"]
    assert refused.version is None
    assert refused.gates.not_better
    assert refused.registration == (
        "no new version: the candidate is not better than Production: roc_auc gain +0.0000 "
        "[95% CI +0.0000, +0.0000] does not clear min_improvement 0.0010"
    )
    (rule,) = refused.gates.failures
    assert rule.gain is not None and rule.gain.rows == refused.test.rows  # paired on the same rows
    assert (rule.gain.resamples, rule.gain.level, rule.gain.seed) == (1000, 0.95, 0)
    logged = json.loads(download(env, refused.run_id, "gate_results.json", tmp_path).read_text())
    assert logged["trigger"] == "manual"
    [gain] = [r["gain"] for r in logged["results"] if r["rule"] == "min_improvement:roc_auc"]
    assert gain["estimate"] == 0.0 and gain["low"] == 0.0 and gain["rows"] == refused.test.rows


def test_labels_without_positives_are_refused_before_any_run(env: Env, tmp_path: Path) -> None:
    frame = generate_churn_data(customers=300, months=3, seed=5).frame.assign(churned=0)
    write_sources(frame=frame, sources_dir=tmp_path / "sources", part="all")
    experiment = env.client.get_experiment_by_name("churn")
    runs_before = len(env.client.search_runs([experiment.experiment_id])) if experiment else 0
    with pytest.raises(TrainingDataError, match=r"the label source has no positives \(churned=1\)"):
        train(
            store=env.store,
            client=env.client,
            registry=env.registry,
            sources_dir=tmp_path / "sources",
            policy=load_policy(),
        )
    experiment = env.client.get_experiment_by_name("churn")
    assert (len(env.client.search_runs([experiment.experiment_id])) if experiment else 0) == runs_before


def test_an_empty_label_source_is_refused(env: Env, tmp_path: Path) -> None:
    with pytest.raises(TrainingDataError, match="has no labels; ingest or generate data first"):
        train(store=env.store, client=env.client, registry=None, sources_dir=tmp_path, policy=load_policy())


def test_an_unknown_feature_service_is_refused(env: Env) -> None:
    from churnops.training import TrainingError

    with pytest.raises(TrainingError, match=r"feature service 'churn_v9' is not registered.*churn_v1"):
        train(
            store=env.store,
            client=env.client,
            registry=None,
            sources_dir=env.settings.sources_dir,
            policy=load_policy(),
            options=TrainOptions(feature_service="churn_v9"),
        )


def test_a_tampered_production_artifact_stops_training(env: Env, first: TrainResult) -> None:
    from churnops.training import TrainingError

    if env.registry.production() is None:
        env.registry.promote(version=first.version, stage="Staging", reason="test", actor="tester")
        env.registry.promote(version=first.version, stage="Production", reason="test", actor="tester")
    production = env.registry.production()
    skops_file = Path(production.artifact_uri.removeprefix("file://")) / "model.skops"
    original = skops_file.read_bytes()
    skops_file.write_bytes(original + b"\0")
    try:
        with pytest.raises(
            TrainingError,
            match=rf"Production version {production.version}.*differ from those signed at registration",
        ):
            env.train()
    finally:
        skops_file.write_bytes(original)
    runs = env.client.search_runs(
        [first.experiment_id],
        filter_string="tags.`churnops.error` LIKE '%differ from those signed%'",
        max_results=5,
    )
    assert len(runs) == 1 and runs[0].info.status == "FAILED"
