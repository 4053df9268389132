"""The environment docker-compose.yml gives the serving container, for the stack run as processes.

tests/integration/test_production_topology.py starts serving with ``serving_environment(...)``;
tests/unit/test_deploy_files.py checks that it sets exactly the variables the compose file's
``serving`` service sets, with values of the same kind (the same switches thrown), so the
topology test runs the combination compose deploys.
"""

from __future__ import annotations


def serving_environment(
    *,
    home: str,
    redis_url: str,
    mlflow_url: str,
    feast_registry_url: str,
    prediction_log_url: str,
    artifact_root: str,
    api_key: str,
    s3: dict[str, str],
    trusted_keys_file: str,
) -> dict[str, str]:
    """compose's ``serving.environment`` with this machine's endpoints in place of the hosts.

    ``s3``: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and ``MLFLOW_S3_ENDPOINT_URL``.
    """
    return {
        "CHURNOPS_HOME": home,
        "CHURNOPS_MODEL_NAME": "churn",  # compose passes it too: the model its READ-only MLflow user may read
        "CHURNOPS_REDIS_URL": redis_url,
        "CHURNOPS_MLFLOW_TRACKING_URI": mlflow_url,
        "CHURNOPS_FEAST_REGISTRY_URL": feast_registry_url,
        "CHURNOPS_SERVING_PREDICTION_LOG_URL": prediction_log_url,
        "CHURNOPS_ARTIFACT_ROOT": artifact_root,
        "CHURNOPS_SERVING_API_KEY": api_key,
        "CHURNOPS_TRUSTED_KEYS_FILE": trusted_keys_file,  # compose: the churnops-trusted-keys secret
        "AWS_ACCESS_KEY_ID": s3["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": s3["AWS_SECRET_ACCESS_KEY"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_S3_ENDPOINT_URL": s3["MLFLOW_S3_ENDPOINT_URL"],
    }
