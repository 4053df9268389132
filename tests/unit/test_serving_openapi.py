"""The published OpenAPI document and the /docs page: the service's identity, the served model,
request examples that work, and a Swagger UI page that loads nothing from another host."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx

from serving.openapi import Examples, Identity, corrected_spec
from serving.pages import pages_app


def _bentoml_like_spec() -> dict[str, Any]:
    body = {"content": {"application/json": {"schema": {"properties": {"customer_ids": {}}}}}}
    rows = {"content": {"application/json": {"schema": {"properties": {"rows": {}}}}}}
    return {
        "openapi": "3.0.2",
        "info": {"title": "churn", "version": "None", "contact": {"name": "BentoML Team"}},
        "paths": {
            "/predict": {"post": {"requestBody": body, "responses": {200: {}}}},
            "/predict_features": {"post": {"requestBody": rows, "responses": {200: {}}}},
        },
    }


def test_the_document_names_the_service_version_model_and_working_examples() -> None:
    row = {"tenure": 3, "customer_id": "0042-ABCDE"}
    doc = corrected_spec(
        _bentoml_like_spec(),
        api_paths=("/predict", "/predict_features"),
        max_ids=10,
        max_rows=5,
        identity=Identity(
            title="churn", version="1.2.3", model_name="churn", model_version="7", feature_service="churn_v1"
        ),
        examples=Examples(customer_ids=("0042-ABCDE", "0043-FGHIJ"), row=row),
    )
    info = doc["info"]
    assert (info["title"], info["version"]) == ("churn", "1.2.3")
    assert "version 7" in info["description"] and "contact" not in info
    assert info["x-churnops-model"] == {"name": "churn", "version": "7", "feature_service": "churn_v1"}
    predict = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert predict["example"] == {"customer_ids": ["0042-ABCDE", "0043-FGHIJ"]}
    assert predict["schema"]["properties"]["customer_ids"]["maxItems"] == 10
    what_if = doc["paths"]["/predict_features"]["post"]["requestBody"]["content"]["application/json"]
    assert what_if["example"] == {"rows": [row]}


def test_without_a_model_or_examples_the_document_says_so_and_invents_none() -> None:
    doc = corrected_spec(
        _bentoml_like_spec(),
        api_paths=("/predict",),
        max_ids=None,
        max_rows=None,
        identity=Identity(title="churn", version="1.2.3"),
        examples=Examples(),
    )
    assert "No Production model" in doc["info"]["description"]
    assert doc["info"]["x-churnops-model"]["version"] is None
    assert "example" not in doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]


def test_the_docs_page_loads_only_files_bentoml_serves_and_no_other_host() -> None:
    import bentoml._internal.server as bentoml_server

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=pages_app(title="churn <API>"))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/docs")

    page = asyncio.run(get())
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    assert "<title>churn &lt;API&gt;</title>" in text
    assert not re.search(r"(src|href)=\"(https?:)?//", text), "the page loads from another host"
    assert 'url: "./docs.json"' in text
    assets = Path(bentoml_server.__file__).parent / "static_content"
    referenced = re.findall(r"\./static_content/([\w.-]+)", text)
    assert {"swagger-ui-bundle.js", "swagger-ui.css"} <= set(referenced)
    for name in referenced:  # BentoML mounts this directory at /static_content
        assert (assets / name).is_file(), name
