"""Serving benchmark: the running BentoML service against a floor measured in the same run.

    uv run python benchmarks/serving_latency.py [--customers 2000] [--seconds 5]

Builds a private environment (temp home, a private redis-server on a free loopback port, Feast
materialized into it, a registered Production model), starts ``bentoml serve
serving.service:ChurnService`` as a subprocess and measures, with a minimal asyncio HTTP/1.1
client (so the load generator costs little of the 2 shared cores):

- cold start: process start to the first 200 from /predict;
- sequential /predict of one id: p50/p99 over 2,000 requests;
- fixed-rate (open-loop) load at 50, 100 and 200 rps: p50/p99 from the scheduled send time, errors;
- peak throughput: closed loop at growing concurrency, best rps with p99 <= 50 ms;
- a batch of 100 ids: p50/p99;
- the floor: a minimal Starlette app under uvicorn (separate process, same client) doing one
  Redis HMGET and the same model's predict, once with sklearn's predict_proba and once with the
  service's compiled scorer; and BentoML's own /livez as its per-request overhead;
- the feature read alone, in this process: Feast's get_online_features vs the direct Redis reader.

Everything is loopback and bounded (fixed counts and durations).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# -- a minimal keep-alive HTTP/1.1 client ------------------------------------------------------


class Conn:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> Conn:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: str = ""
    ) -> tuple[int, bytes]:
        if self.writer is None or self.reader is None:
            await self.open()
        assert self.writer is not None
        assert self.reader is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{headers}\r\n"
        )
        self.writer.write(head.encode() + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
        payload = await self.reader.readexactly(length) if length else b""
        return status, payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()


@dataclass
class Result:
    name: str
    n: int
    p50_ms: float
    p99_ms: float
    rps: float | None = None
    errors: int = 0
    note: str = ""


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


Body = Callable[[int], bytes]


async def sequential(name: str, port: int, path: str, body: Body, n: int, method: str = "POST") -> Result:
    conn = await Conn("127.0.0.1", port).open()
    times, errors = [], 0
    for i in range(min(50, n)):  # warm-up
        await conn.request(method, path, body(i))
    for i in range(n):
        start = time.perf_counter()
        status, _ = await conn.request(method, path, body(i))
        times.append(time.perf_counter() - start)
        errors += status != 200
    await conn.close()
    return Result(name, n, pct(times, 0.5), pct(times, 0.99), errors=errors)


async def fixed_rate(name: str, port: int, path: str, body: Body, rate: float, seconds: float) -> Result:
    pool: list[Conn] = []
    times: list[float] = []
    errors = 0
    total = int(rate * seconds)

    lags: list[float] = []

    async def one(i: int, scheduled: float) -> None:
        nonlocal errors
        conn = pool.pop() if pool else await Conn("127.0.0.1", port).open()
        sent = time.perf_counter()
        lags.append(sent - scheduled)
        try:
            status, _ = await conn.request("POST", path, body(i))
            errors += status != 200
            pool.append(conn)
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
        times.append(time.perf_counter() - sent)

    for c in [await Conn("127.0.0.1", port).open() for _ in range(8)]:
        pool.append(c)
    tasks = []
    t0 = time.perf_counter() + 0.05
    for i in range(total):
        scheduled = t0 + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    for c in pool:
        await c.close()
    # Latency from the actual send; the load generator's own lateness (asyncio timer
    # granularity, ~1-2 ms here) is reported apart so that it is not charged to the server.
    note = f"send lag p50/p99 {pct(lags, 0.5):.2f}/{pct(lags, 0.99):.2f} ms"
    return Result(
        name, total, pct(times, 0.5), pct(times, 0.99), rps=total / elapsed, errors=errors, note=note
    )


async def closed_loop(name: str, port: int, path: str, body: Body, workers: int, seconds: float) -> Result:
    times: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal errors
        conn = await Conn("127.0.0.1", port).open()
        i = w
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            status, _ = await conn.request("POST", path, body(i))
            times.append(time.perf_counter() - start)
            errors += status != 200
            i += workers
        await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    elapsed = time.perf_counter() - started
    return Result(
        name,
        len(times),
        pct(times, 0.5),
        pct(times, 0.99),
        rps=len(times) / elapsed,
        errors=errors,
        note=f"{workers} connections",
    )


# -- the floor app ---------------------------------------------------------------------------


def floor_app(*, home: str, redis_url: str, scorer_kind: str) -> Any:
    """Starlette, one route: one HMGET (pipelined, 1 id) + the model's predict; nothing else."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from churnops.features.fastpath.reader import RedisReader
    from churnops.features.online import service_layout
    from churnops.settings import Settings
    from churnops.wiring import feature_store, model_source
    from serving.scoring import make_scorer, sklearn_scorer

    settings = Settings(home=Path(home), redis_url=redis_url, _env_file=None)
    store = feature_store(settings)
    layout = service_layout(store=store, feature_service="churn_v1")
    reader = RedisReader(redis_url=redis_url, store=store, layout=layout, timeout_ms=50)
    source = model_source(settings)
    ref = source.production()
    assert ref is not None
    estimator = source.load(ref).estimator
    scorer = make_scorer(estimator)[0] if scorer_kind == "tables" else sklearn_scorer(estimator)

    async def predict(request: Request) -> JSONResponse:
        ids = json.loads(await request.body())["customer_ids"]
        rows = await reader.fetch(ids)
        scores = scorer([r.features for r in rows])
        return JSONResponse(
            {
                "predictions": [
                    {"customer_id": c, "churn_probability": s} for c, s in zip(ids, scores, strict=True)
                ]
            }
        )

    return Starlette(routes=[Route("/predict", predict, methods=["POST"])])


def run_floor(args: argparse.Namespace) -> None:
    import uvicorn

    app = floor_app(home=args.home, redis_url=args.redis_url, scorer_kind=args.scorer)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


async def wait_http(port: int, path: str, body: bytes, timeout_s: float, method: str = "POST") -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        conn = Conn("127.0.0.1", port)
        try:
            await asyncio.wait_for(conn.open(), timeout=2)
            status, _ = await asyncio.wait_for(conn.request(method, path, body), timeout=10)
            if status == 200:
                return time.perf_counter() - start
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            await conn.close()
        await asyncio.sleep(0.05)
    raise RuntimeError(f"nothing answered 200 on port {port}{path} within {timeout_s} s")


# -- main ------------------------------------------------------------------------------------


def feature_read_rows(settings: Any, ids: list[str]) -> list[Result]:
    from churnops.features.fastpath.reader import RedisReader
    from churnops.features.online import fetch_online, service_layout
    from churnops.wiring import feature_store

    store = feature_store(settings)
    layout = service_layout(store=store, feature_service="churn_v1")
    reader = RedisReader(redis_url=settings.redis_url, store=store, layout=layout, timeout_ms=50)
    out = []
    for size, n in ((1, 500), (100, 100)):
        times = []
        for i in range(n):
            batch = ids[i % 1000 : i % 1000 + size]
            start = time.perf_counter()
            fetch_online(store=store, layout=layout, customer_ids=batch)
            times.append(time.perf_counter() - start)
        out.append(
            Result(
                f"feature read, Feast get_online_features, {size} id(s)", n, pct(times, 0.5), pct(times, 0.99)
            )
        )

        async def direct(size: int = size, n: int = n) -> list[float]:
            t = []
            for i in range(n):
                batch = ids[i % 1000 : i % 1000 + size]
                start = time.perf_counter()
                await reader.fetch(batch)
                t.append(time.perf_counter() - start)
            await reader.aclose()
            return t

        times = asyncio.run(direct())
        out.append(
            Result(f"feature read, direct Redis reader, {size} id(s)", n, pct(times, 0.5), pct(times, 0.99))
        )
    return out


async def measure_service(port: int, ids: list[str], seconds: float) -> list[Result]:
    def one(i: int) -> bytes:
        return json.dumps({"customer_ids": [ids[i % len(ids)]]}).encode()

    def hundred(i: int) -> bytes:
        return json.dumps({"customer_ids": ids[(i * 7) % 1000 : (i * 7) % 1000 + 100]}).encode()

    results = [await sequential("service /predict 1 id, sequential", port, "/predict", one, 2000)]
    for rate in (50, 100, 200):
        results.append(
            await fixed_rate(f"service /predict 1 id at {rate} rps", port, "/predict", one, rate, seconds)
        )
    peak: list[Result] = []
    for workers in (4, 8, 16, 32):
        peak.append(await closed_loop("service peak (closed loop)", port, "/predict", one, workers, seconds))
    # A level counts if p99 <= 50 ms and under 0.5 % of requests failed (the fail-fast 503s).
    ok = [r for r in peak if r.p99_ms <= 50 and r.errors <= 0.005 * r.n]
    best = max(ok or peak, key=lambda r: r.rps or 0)
    best.note += "; best with p99 <= 50 ms" if ok else "; no level met p99 <= 50 ms"
    results.append(best)
    results.extend(r for r in peak if r is not best)
    results.append(await sequential("service /predict 100 ids, sequential", port, "/predict", hundred, 300))
    results.append(
        await sequential(
            "BentoML GET /livez (framework overhead)", port, "/livez", lambda i: b"", 1000, "GET"
        )
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each load level")
    parser.add_argument("--floor-app", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--scorer", default="sklearn", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_app:
        run_floor(args)
        return

    from churnops.settings import Settings
    from tests.support.serving_env import (
        RedisServer,
        ServiceProcess,
        build_environment,
        free_port,
        service_env,
    )

    with tempfile.TemporaryDirectory(prefix="churnops-bench-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        redis = RedisServer(workdir=work / "redis")
        redis.start()
        processes: list[subprocess.Popen[bytes]] = []
        service: ServiceProcess | None = None
        try:
            settings = Settings(home=work / "home", redis_url=redis.url, _env_file=None)
            print(f"building the environment ({args.customers} customers) ...", flush=True)
            env = build_environment(settings=settings, n_customers=args.customers)
            ids = env.customer_ids
            random.Random(1).shuffle(ids)
            results: list[Result] = []

            service = ServiceProcess(env=service_env(settings), log_path=work / "service.log")
            service.start()
            body = json.dumps({"customer_ids": ids[:1]}).encode()
            cold = asyncio.run(wait_http(service.port, "/predict", body, 300))
            results.append(Result("cold start to first 200 (process start)", 1, cold * 1000, cold * 1000))
            print("measuring the service ...", flush=True)
            results.extend(asyncio.run(measure_service(service.port, ids, args.seconds)))
            service.stop()
            service = None

            print("measuring the floor ...", flush=True)
            for scorer in ("sklearn", "tables"):
                port = free_port()
                log = stack.enter_context((work / f"floor-{scorer}.log").open("wb"))
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--floor-app",
                        "--home",
                        str(settings.home),
                        "--redis-url",
                        redis.url,
                        "--port",
                        str(port),
                        "--scorer",
                        scorer,
                    ],
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
                processes.append(proc)
                asyncio.run(wait_http(port, "/predict", body, 300))

                def one(i: int) -> bytes:
                    return json.dumps({"customer_ids": [ids[i % len(ids)]]}).encode()

                label = "predict_proba" if scorer == "sklearn" else "compiled scorer"
                results.append(
                    asyncio.run(
                        sequential(
                            f"floor: Starlette, 1 HMGET + {label}, sequential", port, "/predict", one, 2000
                        )
                    )
                )
                results.append(
                    asyncio.run(
                        fixed_rate(f"floor ({label}) at 100 rps", port, "/predict", one, 100, args.seconds)
                    )
                )
                proc.terminate()
                proc.wait(timeout=20)

            results.extend(feature_read_rows(settings, ids))
        finally:
            if service is not None:
                service.stop()
            for proc in processes:
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait(timeout=20)
            redis.stop()
    report(results)


def report(results: list[Result]) -> None:
    width = max(len(r.name) for r in results)
    print()
    print(f"{'case':<{width}}  {'n':>6}  {'p50 ms':>8}  {'p99 ms':>8}  {'rps':>7}  {'errors':>6}  note")
    print("-" * (width + 60))
    for r in results:
        rps = f"{r.rps:7.0f}" if r.rps is not None else " " * 7
        print(
            f"{r.name:<{width}}  {r.n:>6}  {r.p50_ms:8.2f}  {r.p99_ms:8.2f}  {rps}  {r.errors:>6}  {r.note}"
        )
    by = {r.name: r for r in results}
    seq = by.get("service /predict 1 id, sequential")
    floor = by.get("floor: Starlette, 1 HMGET + compiled scorer, sequential")
    floor_sk = by.get("floor: Starlette, 1 HMGET + predict_proba, sequential")
    at100 = by.get("service /predict 1 id at 100 rps")
    batch = by.get("service /predict 100 ids, sequential")
    peak = next((r for r in results if "best with" in r.note), None)
    print()
    if at100:
        print(f"target p50 <= 3 ms, p99 <= 10 ms at 100 rps: {at100.p50_ms:.2f} / {at100.p99_ms:.2f} ms")
    if peak:
        print(
            f"target >= 500 rps at p99 <= 50 ms: {peak.rps:.0f} rps at p99 {peak.p99_ms:.1f} ms ({peak.note})"
        )
    if seq and floor:
        print(
            f"target p50 within 5x the floor: {seq.p50_ms:.2f} / {floor.p50_ms:.2f} = "
            f"{seq.p50_ms / floor.p50_ms:.1f}x"
            + (
                f" (vs the predict_proba floor {floor_sk.p50_ms:.2f}: {seq.p50_ms / floor_sk.p50_ms:.1f}x)"
                if floor_sk
                else ""
            )
        )
    if batch:
        print(f"target 100 ids p99 <= 25 ms: {batch.p99_ms:.2f} ms")


if __name__ == "__main__":
    main()
