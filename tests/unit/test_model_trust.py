"""Only what the registry governs can run (issue 16, items 1-3).

- loading trusts the code's TRUSTED_TYPES, never the artifact's list: hostile types are refused
  by every loader and nothing runs;
- versions are signed at registration; a version made or re-tagged outside registry_ext, or
  registered by an older release, is refused before anything is downloaded;
- the signed manifest covers the files as logged: MLflow's ``registered_model_meta`` is allowed,
  a changed, missing or added file is not.

Real MLflow (SQLite) and real skops payloads; no mocks.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from churnops.contracts.artifacts import (
    TRUSTED_TYPES,
    ArtifactIntegrityError,
    SignatureError,
    UnsignedVersionError,
    UntrustedTypeError,
    file_manifest,
    manifest_json,
    manifest_problems,
    sha256_of_path,
    signed_payload,
)
from churnops.contracts.mlflow_keys import (
    FEATURE_SERVICE_TAG,
    MANIFEST_TAG,
    SHA256_TAG,
    SIGNATURE_TAG,
    SIGNING_KEY_ID_TAG,
)
from churnops.contracts.stages import ALIAS_OF_STAGE, Stage
from registry_ext import ModelRegistry
from registry_ext.artifacts import load_sklearn
from registry_ext.errors import UnknownVersionError
from registry_ext.signing import (
    KeyFileError,
    KeyFiles,
    Signer,
    Verifier,
    init_keys,
    parse_trusted_keys,
    rotate_keys,
)
from serving.model_source import AliasModelSource, ModelRef
from tests.support.hostile import HOSTILE_TYPES, hostile_model_dir, hostile_skops
from tests.support.registry import (
    FEATURES,
    churn_frame,
    log_candidate,
    make_registry,
    model_name_for,
    register_candidate,
    saved_model_dir,
    shared_sqlite_store,
)
from tests.support.signing import signing_key_files

# The payloads must stay live (they spawn processes): the unit guard would otherwise turn a
# payload that ran into an exception a loader might swallow.
pytestmark = pytest.mark.launches_on_purpose

PRODUCTION = ALIAS_OF_STAGE[Stage.PRODUCTION]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return shared_sqlite_store(tmp_path_factory)


@pytest.fixture
def registry(store: tuple[str, str], request: pytest.FixtureRequest) -> tuple[ModelRegistry, str]:
    return make_registry(store[0], store[1], model_name=model_name_for(request))


def _source(reg: ModelRegistry, files: KeyFiles | None = None) -> AliasModelSource:
    """Serving's model source (also batch scoring's): MLflow's API and the trusted keys only."""
    return AliasModelSource(
        client=reg.client, model_name=reg.model_name, verifier=Verifier(files=files or signing_key_files())
    )


def _in_production(reg: ModelRegistry, *, seed: int = 1) -> Any:
    record = register_candidate(reg, experiment_id=_experiment(reg), seed=seed)
    reg.promote(version=record.version, stage="Staging", reason="test")
    reg.promote(version=record.version, stage="Production", reason="test")
    return record


def _hostile(kind: str, marker: Path, tmp_path: Path) -> Path:
    return hostile_model_dir(template=saved_model_dir(seed=1), kind=kind, marker=marker, dst=tmp_path / "m")


def _experiment(reg: ModelRegistry) -> str:
    found = reg.client.get_experiment_by_name(f"exp-{reg.model_name}")
    assert found is not None
    return str(found.experiment_id)


# --- 1. what may run -----------------------------------------------------------------------------


def test_trusted_types_are_exactly_what_every_training_family_needs() -> None:
    """TRUSTED_TYPES is derived from the models training produces, one family at a time."""
    import numpy as np
    import pandas as pd
    import skops.io

    from churnops.contracts.columns import column, feature_names
    from churnops.training.candidates import FAMILIES, fit_candidate

    columns = [column(name) for name in feature_names()]
    rng = np.random.default_rng(0)
    rows = 300
    data: dict[str, Any] = {}
    for col in columns:
        if col.kind == "category":
            values = rng.choice(["a", "b", "c"], rows).astype(object)
            values[:5] = None
            data[col.name] = values
        elif col.kind in ("flag", "int"):
            data[col.name] = rng.integers(0, 2 if col.kind == "flag" else 70, rows)
        else:
            numbers = rng.uniform(0, 100, rows)
            numbers[:3] = np.nan
            data[col.name] = numbers
    x, y = pd.DataFrame(data), rng.integers(0, 2, rows)
    needed: set[str] = set()
    for family in FAMILIES:
        pipeline = fit_candidate(family=family, columns=columns, x=x, y=y).pipeline
        needed |= set(skops.io.get_untrusted_types(data=skops.io.dumps(pipeline)))
    assert needed == set(TRUSTED_TYPES)


def _wait_for(path: Path, *, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.02)
    return path.exists()


@pytest.mark.parametrize("kind", HOSTILE_TYPES[:3])
def test_the_payloads_are_live_when_skops_is_told_to_trust_them(kind: str, tmp_path: Path) -> None:
    """The fuzz tests below could not fail if the payloads were inert: loading one with the
    types its MLmodel asks for runs it."""
    import skops.io

    marker = tmp_path / "ran"
    loaded = skops.io.loads(hostile_skops(kind, marker), trusted=[kind])
    if isinstance(loaded, subprocess.Popen):
        loaded.wait(timeout=10)
    assert _wait_for(marker), f"the {kind} payload did not run"


@pytest.mark.parametrize("kind", HOSTILE_TYPES)
def test_load_sklearn_refuses_a_type_outside_trusted_types_and_nothing_runs(
    kind: str, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    model_dir = _hostile(kind, marker, tmp_path)
    with pytest.raises(UntrustedTypeError, match=kind.replace(".", r"\.")):
        load_sklearn(model_dir)
    assert not marker.exists()


def test_load_sklearn_loads_what_training_saves_and_ignores_the_mlmodel_list(tmp_path: Path) -> None:
    """The MLmodel's own list is never read: emptying it changes nothing."""
    import yaml

    model_dir = tmp_path / "m"
    shutil.copytree(saved_model_dir(seed=1), model_dir)
    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
    mlmodel["flavors"]["sklearn"]["skops_trusted_types"] = []
    (model_dir / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    model = load_sklearn(model_dir)
    assert model.predict_proba(churn_frame(seed=3, rows=4)[FEATURES]).shape == (4, 2)


@pytest.mark.parametrize("kind", HOSTILE_TYPES)
def test_an_mlflow_only_version_with_hostile_types_a_matching_sha256_and_the_alias_is_refused(
    kind: str, registry: tuple[ModelRegistry, str], tmp_path: Path
) -> None:
    """The attack of issue 16: no registry database access, only MLflow. Serving's and batch
    scoring's loader, the registry's own loader and a forged signature all refuse it."""
    reg, experiment_id = registry
    genuine = _in_production(reg)
    marker = tmp_path / "ran"
    hostile = _hostile(kind, marker, tmp_path)

    client = reg.client
    run_id = client.create_run(experiment_id).info.run_id
    client.log_artifacts(run_id, str(hostile), "model")
    version = client.create_model_version(
        name=reg.model_name,
        source=f"{client.get_run(run_id).info.artifact_uri}/model",
        run_id=run_id,
        tags={SHA256_TAG: sha256_of_path(hostile), FEATURE_SERVICE_TAG: "churn_v1", "stage": "Production"},
    )
    number = str(version.version)
    client.set_registered_model_alias(reg.model_name, PRODUCTION, number)

    source = _source(reg)
    ref = source.production()
    assert ref is not None and ref.version == number
    with pytest.raises(UnsignedVersionError, match="re-register or retrain"):
        source.load(ref)

    # Forged: the genuine version's signature and key id, with the hostile files' manifest.
    tags = client.get_model_version(reg.model_name, str(genuine.version)).tags
    forged = {
        MANIFEST_TAG: manifest_json(file_manifest(hostile)),
        SIGNATURE_TAG: tags[SIGNATURE_TAG],
        SIGNING_KEY_ID_TAG: tags[SIGNING_KEY_ID_TAG],
    }
    for key, value in forged.items():
        client.set_model_version_tag(reg.model_name, number, key, value)
    ref = source.production()
    assert ref is not None and ref.signature is not None
    with pytest.raises(SignatureError, match="does not match"):
        source.load(ref)
    # ... and the genuine version's whole signature (its own manifest) copied over: the version
    # number is signed, and the files are not the manifest's anyway.
    client.set_model_version_tag(reg.model_name, number, MANIFEST_TAG, tags[MANIFEST_TAG])
    with pytest.raises(SignatureError):
        source.load(source.production())  # type: ignore[arg-type]

    with pytest.raises(UnknownVersionError):  # registry_ext never registered it
        reg.load_model(int(number))
    assert not marker.exists()


@pytest.mark.parametrize("kind", HOSTILE_TYPES)
def test_a_signed_version_with_hostile_types_is_refused_by_every_loader(
    kind: str, registry: tuple[ModelRegistry, str], tmp_path: Path
) -> None:
    """Defence in depth: even a version registry_ext registered (a compromised training run)
    cannot run code: load_model, compare, serving and batch scoring refuse its types."""
    from registry_ext.compare import compare_versions

    reg, experiment_id = registry
    genuine = register_candidate(reg, experiment_id=experiment_id, seed=1)
    marker = tmp_path / "ran"
    hostile = _hostile(kind, marker, tmp_path)
    run_id = reg.client.create_run(experiment_id).info.run_id
    reg.client.log_artifacts(run_id, str(hostile), "model")
    bad = reg.register(
        run_id=run_id, sha256=sha256_of_path(hostile), feature_service="churn_v1", metrics={}, actor="t"
    )
    with pytest.raises(UntrustedTypeError, match=kind.replace(".", r"\.")):
        reg.load_model(bad.version)
    with pytest.raises(UntrustedTypeError):
        compare_versions(registry=reg, versions=[genuine.version, bad.version], slices=[], resamples=10)
    reg.promote(version=bad.version, stage="Staging", reason="signed and intact")
    reg.promote(version=bad.version, stage="Production", reason="signed and intact")
    source = _source(reg)
    ref = source.production()
    assert ref is not None and ref.version == str(bad.version)
    with pytest.raises(UntrustedTypeError, match=kind.replace(".", r"\.")):
        source.load(ref)
    assert not marker.exists()


# --- 2. signed versions --------------------------------------------------------------------------


def test_registration_signs_and_serving_verifies_through_mlflow_tags_alone(
    registry: tuple[ModelRegistry, str],
) -> None:
    reg, _ = registry
    record = _in_production(reg)
    assert record.signature is not None
    tags = reg.client.get_model_version(reg.model_name, str(record.version)).tags
    assert tags[SIGNATURE_TAG] == record.signature.signature
    assert tags[SIGNING_KEY_ID_TAG] == record.signature.key_id
    assert json.loads(tags[MANIFEST_TAG]) == json.loads(record.signature.manifest)
    assert "MLmodel" in json.loads(tags[MANIFEST_TAG]) and "model.skops" in json.loads(tags[MANIFEST_TAG])
    # the same three values in registry_ext's own table (migration 0004)
    with reg.engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT manifest, signature, signing_key_id FROM models WHERE name = :n AND version = :v"
            ),
            {"n": reg.model_name, "v": record.version},
        ).one()
    assert tuple(row) == (tags[MANIFEST_TAG], tags[SIGNATURE_TAG], tags[SIGNING_KEY_ID_TAG])
    loaded = _source(reg).load(_source(reg).production())  # type: ignore[arg-type]
    assert loaded.estimator.predict_proba(churn_frame(seed=3, rows=4)[FEATURES]).shape == (4, 2)


@pytest.mark.parametrize("tag", [FEATURE_SERVICE_TAG, MANIFEST_TAG])
def test_a_retagged_version_is_refused(registry: tuple[ModelRegistry, str], tag: str) -> None:
    reg, _ = registry
    record = _in_production(reg)
    value = "churn_v2" if tag == FEATURE_SERVICE_TAG else json.dumps({"MLmodel": "0" * 64})
    reg.client.set_model_version_tag(reg.model_name, str(record.version), tag, value)
    with pytest.raises(SignatureError):
        _source(reg).load(_source(reg).production())  # type: ignore[arg-type]


def test_an_unsigned_version_of_an_older_release_is_refused_with_what_to_do(
    registry: tuple[ModelRegistry, str],
) -> None:
    reg, _ = registry
    record = _in_production(reg)
    for key in (MANIFEST_TAG, SIGNATURE_TAG, SIGNING_KEY_ID_TAG):
        reg.client.delete_model_version_tag(reg.model_name, str(record.version), key)
    with reg.engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE models SET manifest = NULL, signature = NULL, signing_key_id = NULL "
                "WHERE name = :n AND version = :v"
            ),
            {"n": reg.model_name, "v": record.version},
        )
    ref = _source(reg).production()
    assert ref is not None and ref.signature is None
    with pytest.raises(UnsignedVersionError, match="re-register or retrain"):
        _source(reg).load(ref)
    with pytest.raises(UnsignedVersionError, match="re-register or retrain"):
        reg.load_model(record.version)


def test_the_signature_is_checked_before_anything_is_downloaded(registry: tuple[ModelRegistry, str]) -> None:
    """An unsigned version whose artifacts are gone reports the signature, not the download."""
    reg, experiment_id = registry
    logged = log_candidate(reg.client, experiment_id=experiment_id, seed=1)
    reg.client.create_registered_model(reg.model_name)
    version = reg.client.create_model_version(
        name=reg.model_name, source="file:///nonexistent/model", run_id=logged.run_id, tags={}
    )
    ref = ModelRef(name=reg.model_name, version=str(version.version), sha256=None, feature_service="churn_v1")
    with pytest.raises(UnsignedVersionError):
        _source(reg).load(ref)


def test_rotation_keeps_old_versions_loadable_until_their_key_is_removed(
    store: tuple[str, str], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    from tests.support.registry import migrated_engine

    files = KeyFiles(signing_key=tmp_path / "k" / "signing.pem", trusted_keys=tmp_path / "k" / "trusted")
    with pytest.raises(KeyFileError, match="keys init"):
        Signer(files=files).sign(b"x")  # an explicit path is never created behind the operator's back
    first = init_keys(files=files)
    assert first.created and first.signing_key_trusted
    assert stat.S_IMODE(os.stat(files.signing_key).st_mode) == 0o600

    name = model_name_for(request)
    client = MlflowClient(store[0], registry_uri=store[0])
    experiment_id = client.create_experiment(f"exp-{name}", artifact_location=f"{store[1]}/{name}")
    reg = ModelRegistry(
        client=client,
        engine=migrated_engine(store[0]),
        model_name=name,
        signer=Signer(files=files),
        verifier=Verifier(files=files),
    )
    old = register_candidate(reg, experiment_id=experiment_id, seed=1)
    rotated = rotate_keys(files=files)
    assert first.signing_key is not None and rotated.signing_key is not None
    assert rotated.retired_key_id == first.signing_key.key_id
    assert {k.key_id for k in rotated.trusted} == {first.signing_key.key_id, rotated.signing_key.key_id}
    new = register_candidate(reg, experiment_id=experiment_id, seed=2)
    assert new.signature is not None and new.signature.key_id == rotated.signing_key.key_id
    assert reg.load_model(old.version) is not None and reg.load_model(new.version) is not None

    retired = first.signing_key.key_id
    kept = [line for line in files.trusted_keys.read_text().splitlines() if retired not in line]
    files.trusted_keys.write_text("\n".join(kept) + "\n")
    with pytest.raises(SignatureError, match="not trusted"):
        reg.load_model(old.version)
    assert reg.load_model(new.version) is not None


def test_a_trusted_keys_line_whose_id_does_not_match_its_key_is_refused(tmp_path: Path) -> None:
    files = KeyFiles(signing_key=tmp_path / "s.pem", trusted_keys=tmp_path / "t")
    report = init_keys(files=files)
    assert report.signing_key is not None
    line = report.signing_key.line()
    with pytest.raises(KeyFileError, match="does not match"):
        parse_trusted_keys("0000000000000000" + line[16:], source="t")
    with pytest.raises(KeyFileError, match="expected"):
        parse_trusted_keys("not a key line", source="t")


def test_a_registry_without_a_signing_key_registers_nothing(registry: tuple[ModelRegistry, str]) -> None:
    from registry_ext.errors import RegistrationError

    reg, experiment_id = registry
    reg.signer = None
    logged = log_candidate(reg.client, experiment_id=experiment_id, seed=1)
    with pytest.raises(RegistrationError, match="signing key"):
        reg.register(run_id=logged.run_id, sha256=logged.sha256, feature_service="churn_v1", metrics={})
    assert reg.client.search_model_versions(f"name = '{reg.model_name}'") == []


def test_the_signed_payload_separates_its_fields() -> None:
    one = signed_payload(name="a", version=1, manifest_digest="d", feature_service="b,c")
    two = signed_payload(name="a,b", version=1, manifest_digest="d", feature_service="c")
    assert one != two and json.loads(one)[1:] == ["a", "1", "d", "b,c"]


@pytest.mark.parametrize("value", ["CHANGE_ME", "<path of the key>", "changeme"])
@pytest.mark.parametrize("variable", ["CHURNOPS_SIGNING_KEY_FILE", "CHURNOPS_TRUSTED_KEYS_FILE"])
def test_placeholder_key_paths_are_refused_at_start(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic import ValidationError

    from churnops.settings import Settings

    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=variable):
        Settings()


def test_keys_cli_init_show_rotate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from churnops.cli import app

    monkeypatch.setenv("CHURNOPS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CHURNOPS_SIGNING_KEY_FILE", raising=False)
    monkeypatch.delenv("CHURNOPS_TRUSTED_KEYS_FILE", raising=False)
    runner = CliRunner()
    shown = runner.invoke(app, ["registry", "keys", "show", "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["signing_key"] is None
    created = runner.invoke(app, ["registry", "keys", "init", "--json"])
    assert created.exit_code == 0, created.output
    first = json.loads(created.output)
    assert first["created"] and first["signing_key_trusted"]
    key = Path(first["signing_key_file"])
    assert key.parent == tmp_path / "home" / "keys" and stat.S_IMODE(key.stat().st_mode) == 0o600
    again = json.loads(runner.invoke(app, ["registry", "keys", "init", "--json"]).output)
    assert not again["created"] and again["signing_key"] == first["signing_key"]
    rotated = runner.invoke(app, ["registry", "keys", "rotate", "--json"])
    assert rotated.exit_code == 0, rotated.output
    doc = json.loads(rotated.output)
    assert doc["retired_key_id"] == first["signing_key"]["key_id"] and len(doc["trusted"]) == 2
    text = runner.invoke(app, ["registry", "keys", "show"])
    assert text.exit_code == 0 and doc["signing_key"]["key_id"] in text.output
    assert max(len(line) for line in text.output.splitlines() if str(tmp_path) not in line) <= 80


# --- 3. integrity that survives MLflow's own use -------------------------------------------------


def test_the_manifest_allows_mlflows_own_file_and_nothing_else(tmp_path: Path) -> None:
    model_dir = tmp_path / "m"
    shutil.copytree(saved_model_dir(seed=1), model_dir)
    manifest = file_manifest(model_dir)
    (model_dir / "registered_model_meta").write_text("model_name: churn\nmodel_version: '1'\n")
    assert manifest_problems(model_dir, manifest) == []
    (model_dir / "sub").mkdir()
    (model_dir / "sub" / "registered_model_meta").write_text("x")  # only at the top level
    (model_dir / "extra.py").write_text("import os")
    assert manifest_problems(model_dir, manifest) == [
        "added file 'extra.py'",
        "added file 'sub/registered_model_meta'",
    ]
    shutil.rmtree(model_dir / "sub")
    (model_dir / "extra.py").unlink()
    weights = model_dir / "model.skops"
    weights.write_bytes(weights.read_bytes()[:-1] + bytes([weights.read_bytes()[-1] ^ 1]))
    (model_dir / "conda.yaml").unlink()
    assert manifest_problems(model_dir, manifest) == [
        "missing file 'conda.yaml'",
        "changed file 'model.skops'",
    ]


def test_a_local_artifact_survives_mlflows_load_but_not_a_changed_or_added_file(
    registry: tuple[ModelRegistry, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.pyfunc
    import mlflow.sklearn

    reg, _ = registry
    record = _in_production(reg)
    uri = f"models:/{reg.model_name}@{PRODUCTION}"
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")  # MLflow's own gate on skops
    # What a user's session does; tests/conftest.py puts both process-wide URIs back afterwards.
    mlflow.set_tracking_uri(reg.client.tracking_uri)
    mlflow.set_registry_uri(reg.client.tracking_uri)
    frame = churn_frame(seed=5, rows=3)[FEATURES]
    assert mlflow.sklearn.load_model(uri).predict_proba(frame).shape == (3, 2)
    assert mlflow.pyfunc.load_model(uri).predict(frame).shape == (3, 2)
    artifact = Path(record.artifact_uri)
    assert (artifact / "registered_model_meta").is_file()  # what broke main: MLflow wrote beside them

    assert reg.load_model(record.version) is not None
    assert _source(reg).load(_source(reg).production()) is not None  # type: ignore[arg-type]
    second = register_candidate(reg, experiment_id=_experiment(reg), seed=2)
    reg.promote(version=second.version, stage="Staging", reason="t")
    reg.promote(version=second.version, stage="Production", reason="t")
    assert reg.rollback(reason="back").transition.version == record.version

    extra = artifact / "sitecustomize.py"
    extra.write_text("print('hi')")
    with pytest.raises(ArtifactIntegrityError, match=r"added file 'sitecustomize\.py'"):
        _source(reg).load(_source(reg).production())  # type: ignore[arg-type]
    extra.unlink()
    weights = artifact / "model.skops"
    original = weights.read_bytes()
    weights.write_bytes(bytes([original[0] ^ 1]) + original[1:])
    with pytest.raises(ArtifactIntegrityError, match=r"changed file 'model\.skops'"):
        _source(reg).load(_source(reg).production())  # type: ignore[arg-type]
    with pytest.raises(ArtifactIntegrityError, match="refusing to roll back"):
        reg.verify_artifact(record.version, purpose="roll back")
