"""The lines `churnops demo` (and the README) print to show how to start the service and call it."""

from __future__ import annotations

import json
import shlex


def how_to_serve(*, customer_id: str, port: int = 3000, api_key: bool = False) -> str:
    """Start command and a working curl for one customer id of the generated data."""
    body = shlex.quote(json.dumps({"customer_ids": [customer_id]}))
    auth = ' -H "Authorization: Bearer $CHURNOPS_SERVING_API_KEY"' if api_key else ""
    return "\n".join(
        [
            f"Start the prediction service (follows the Production model):  churnops serve --port {port}",
            f"Score a customer:  curl -s -X POST http://127.0.0.1:{port}/predict "
            f"-H 'Content-Type: application/json'{auth} -d {body}",
        ]
    )
