"""Online serving: customer ids in, features from Feast's online store, the Production model, a score.

Modules (nothing runs at import):

- ``service``: the BentoML declaration (``bentoml serve serving.service:ChurnService``);
- ``runtime``: what a request does, built from ``Settings`` (the service's only logic);
- ``model_source`` / ``model_watch``: the Production version (registry_ext or the MLflow alias),
  SHA-256 verified, followed without restart;
- ``features``: online feature readers (Feast, or Feast's Redis layout read directly) with deadlines;
- ``scoring``: predict_proba, or a verified compiled form of a linear pipeline;
- ``validation``: request/response models and the error shape;
- ``front`` / ``guard`` / ``direct``: the ASGI middlewares the service adds with BentoML's
  ``add_asgi_middleware`` (bounded request metrics, ``/readyz``, ``/docs.json``; API key, content
  type and body checks; the scoring routes), with ``auth``;
- ``pages``: the app mounted with ``@bentoml.asgi_app`` (``/docs``, ``/metrics``);
- ``openapi``: the published OpenAPI document (identity, served model, working examples);
- ``metrics`` / ``prediction_log``: Prometheus metrics and the append-only prediction log;
- ``testing``: a real environment (Redis, Feast, MLflow) for tests and the benchmark;
- ``hints``: the start command and curl that the demo prints.
"""
