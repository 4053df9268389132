"""`churnops serve` as an operator runs it: the caller's settings, wherever it is started, and
SIGTERM stops the whole server (no orphan holding the port)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.serving_env import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CHURNOPS = str(Path(sys.executable).with_name("churnops"))


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_serve_uses_the_callers_env_file_and_stops_on_sigterm(tmp_path: Path) -> None:
    caller = tmp_path / "elsewhere"  # not the project root: .env here must still count
    caller.mkdir()
    (caller / ".env").write_text(
        f"CHURNOPS_HOME={tmp_path / 'home'}\nCHURNOPS_SERVING_API_KEY=s3cret-key-from-dotenv\n"
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURNOPS_")}
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [CHURNOPS, "serve", "--port", str(port)], cwd=caller, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/livez", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "churnops serve did not come up"
            time.sleep(0.3)
        body = {"customer_ids": ["7590-VHVEG"]}
        anonymous = httpx.post(f"http://127.0.0.1:{port}/predict", json=body, timeout=10)
        assert anonymous.status_code == 401  # the key from the caller's .env is enforced
        keyed = httpx.post(
            f"http://127.0.0.1:{port}/predict",
            json=body,
            headers={"X-API-Key": "s3cret-key-from-dotenv"},
            timeout=10,
        )
        assert keyed.status_code == 503  # authorized; no Production model in this empty home yet
        # Its own BentoML home (so its Prometheus multiprocess files are its own), not ~/bentoml.
        own = tmp_path / "home" / "serving" / f"bentoml-{port}" / "prometheus_multiproc_dir"
        assert own.is_dir() and any(own.iterdir()), sorted(p.name for p in own.parent.parent.rglob("*"))[:20]

        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=40)
        assert code == 0
        deadline = time.monotonic() + 10
        while _port_open(port):  # the BentoML server exited too: nothing holds the port
            assert time.monotonic() < deadline, "the server outlived churnops serve"
            time.sleep(0.2)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


def test_sigterm_drains_in_flight_requests_and_flushes_the_prediction_log(tmp_path: Path) -> None:
    """Requests answered before SIGTERM are all in the prediction log once `churnops serve` exits:
    the shutdown flushes the log (nothing is left only in memory), within the grace period."""
    from churnops.contracts.prediction_log import read_prediction_log
    from churnops.settings import Settings
    from churnops.wiring import prediction_log_dir
    from tests.support.serving_env import build_environment, service_env

    settings = Settings(home=tmp_path / "home", _env_file=None)
    env = build_environment(settings=settings, n_customers=40)
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("CHURNOPS_")}
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [CHURNOPS, "serve", "--port", str(port)],
        env={**base, **service_env(settings)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "churnops serve did not get ready"
            time.sleep(0.3)
        answered = 0
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for start in range(0, 40, 4):
                reply = client.post("/predict", json={"customer_ids": env.customer_ids[start : start + 4]})
                assert reply.status_code == 200, reply.text
                answered += len(reply.json()["predictions"])
        process.send_signal(signal.SIGTERM)  # at once: the log flusher has had no interval to run
        assert process.wait(timeout=40) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
    logged = read_prediction_log(prediction_log_dir(settings), columns=["customer_id"])
    assert logged.num_rows == answered == 40, (logged.num_rows, answered)
    assert set(logged.column("customer_id").to_pylist()) == set(env.customer_ids)
