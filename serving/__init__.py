"""Online serving: customer ids in, features from Feast's online store, the Production model, a score.

Modules (nothing runs at import):

- ``service``: the BentoML declaration (``bentoml serve serving.service:ChurnService``);
- ``runtime``: what a request does, built from ``Settings`` (the service's only logic);
- ``model_source`` / ``model_watch``: the Production version (registry_ext or the MLflow alias),
  SHA-256 verified, followed without restart;
- ``features``: online feature readers (Feast, or Feast's Redis layout read directly) with deadlines;
- ``scoring``: predict_proba, or a verified compiled form of a linear pipeline;
- ``validation``: request/response models and the error shape;
- ``guard`` / ``auth``: API key, content type and body-size checks in front of the API routes;
- ``metrics`` / ``prediction_log``: Prometheus metrics and the append-only prediction log;
- ``testing``: a real environment (Redis, Feast, MLflow) for tests and the benchmark;
- ``hints``: the start command and curl that the demo prints.
"""
