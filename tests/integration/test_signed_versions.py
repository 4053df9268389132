"""Signed versions on a real embedded home (issue 16): MLflow's own loading leaves Production
servable, tampering is still refused, and the MLflow-only attack never runs through `churnops
score` or serving's model source."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from churnops.cli import app
from churnops.contracts.artifacts import ArtifactIntegrityError, UnsignedVersionError, sha256_of_path
from churnops.contracts.columns import EVENT_TS
from churnops.contracts.mlflow_keys import FEATURE_SERVICE_TAG, SHA256_TAG
from churnops.data.generate import generate_churn_data, write_generated
from churnops.features.store import apply
from churnops.settings import Settings
from churnops.wiring import feast_definitions, feature_store, mlflow_client, model_source, open_registry
from tests.support.hostile import hostile_model_dir
from tests.support.serving_env import fit_pipeline, register_model

pytestmark = pytest.mark.integration


@pytest.fixture
def signed_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, str]:
    """A home whose Production version was registered (and signed) through registry_ext, with the
    keys created on that first registration (the embedded default: no key setup at all)."""
    home = tmp_path / "home"
    monkeypatch.setenv("CHURNOPS_HOME", str(home))
    for variable in ("CHURNOPS_SIGNING_KEY_FILE", "CHURNOPS_TRUSTED_KEYS_FILE", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    data = generate_churn_data(customers=600, months=3, seed=21)
    write_generated(data=data, sources_dir=settings.sources_dir)
    apply(store=feature_store(settings), defs=feast_definitions(settings))
    frame = data.frame
    register_model(settings=settings, model=fit_pipeline(frame), example=frame)
    assert (home / "keys" / "signing_key.pem").is_file() and (home / "keys" / "trusted_keys").is_file()
    as_of = pd.Timestamp(sorted(frame[EVENT_TS].unique())[-1]) + timedelta(days=1)
    return settings, as_of.isoformat()


def _score(as_of: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["score", "--as-of", as_of, "--json"])
    return result.exit_code, result.output


def _artifact_dir(settings: Settings, version: int) -> Path:
    with open_registry(settings, write=False) as registry:
        return Path(registry.get(version).artifact_uri)


def test_production_stays_servable_after_mlflow_loads_it_and_tampering_is_still_refused(
    signed_home: tuple[Settings, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.pyfunc
    import mlflow.sklearn

    settings, as_of = signed_home
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.tracking_uri)
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")  # MLflow's own gate on skops
    uri = f"models:/{settings.model_name}@production"
    # Feast's MLflow integration sets the process-wide tracking URI when another test trains,
    # and that wins over the variable: pin both URIs to this home for MLflow's own load.
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    try:
        assert mlflow.sklearn.load_model(uri) is not None
        assert mlflow.pyfunc.load_model(uri) is not None
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
    artifact = _artifact_dir(settings, 1)
    assert (artifact / "registered_model_meta").is_file()  # MLflow wrote beside the logged files
    monkeypatch.delenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION")

    code, output = _score(as_of)
    assert code == 0, output
    assert json.loads(output)["model_version"] == "1"
    source = model_source(settings)
    assert source.load(source.production()).ref.version == "1"  # type: ignore[arg-type]

    frame = generate_churn_data(customers=300, months=2, seed=5).frame
    second = register_model(settings=settings, model=fit_pipeline(frame, c=0.3), example=frame, alias=False)
    runner = CliRunner()
    for stage in ("Staging", "Production"):
        result = runner.invoke(
            app, ["registry", "promote", second, "--stage", stage, "--reason", "t", "--json"]
        )
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["registry", "rollback", "--reason", "back to 1", "--json"])
    assert result.exit_code == 0, result.output
    assert source.load(source.production()).ref.version == "1"  # type: ignore[arg-type]

    weights = artifact / "model.skops"
    original = weights.read_bytes()
    weights.write_bytes(original[:100] + bytes([original[100] ^ 1]) + original[101:])
    code, output = _score(as_of)
    assert code != 0 and "changed file 'model.skops'" in output, output
    with pytest.raises(ArtifactIntegrityError, match=re.escape("changed file 'model.skops'")):
        source.load(source.production())  # type: ignore[arg-type]
    weights.write_bytes(original)

    (artifact / "helper.py").write_text("import os\n")
    code, output = _score(as_of)
    assert code != 0 and "added file 'helper.py'" in output, output
    result = runner.invoke(app, ["registry", "compare", "1", second, "--resamples", "10", "--json"])
    assert result.exit_code == 3 and "added file 'helper.py'" in result.output, result.output
    (artifact / "helper.py").unlink()
    assert source.load(source.production()).ref.version == "1"  # type: ignore[arg-type]


def test_an_mlflow_only_version_with_hostile_types_and_the_alias_never_runs(
    signed_home: tuple[Settings, str], tmp_path: Path
) -> None:
    """Issue 16's attack end to end: MLflow access only, the hostile type in the MLmodel, a
    matching sha256 tag and the production alias. `churnops score` and serving refuse it."""
    settings, as_of = signed_home
    marker = tmp_path / "ran"
    hostile = hostile_model_dir(
        template=_artifact_dir(settings, 1), kind="posix.system", marker=marker, dst=tmp_path / "hostile"
    )
    client = mlflow_client(settings)
    run = client.create_run(client.get_experiment_by_name("churnops-serving-tests").experiment_id)  # type: ignore[union-attr]
    client.log_artifacts(run.info.run_id, str(hostile), "model")
    version = client.create_model_version(
        name=settings.model_name,
        source=f"{run.info.artifact_uri}/model",
        run_id=run.info.run_id,
        tags={SHA256_TAG: sha256_of_path(hostile), FEATURE_SERVICE_TAG: settings.feature_service},
    )
    client.set_registered_model_alias(settings.model_name, "production", str(version.version))

    code, output = _score(as_of)
    assert code != 0 and "re-register or retrain" in output, output
    source = model_source(settings)
    ref = source.production()
    assert ref is not None and ref.version == str(version.version)
    with pytest.raises(UnsignedVersionError):
        source.load(ref)
    assert not marker.exists()
