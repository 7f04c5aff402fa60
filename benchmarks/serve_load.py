"""Bounded load test of ``hyperim serve``: N requests from C concurrent clients on loopback.

Starts ``python -m hyperim serve --model RUN --port 0`` (or uses ``--url`` of a running server),
sends ``--requests`` POST /v1/suggest from ``--clients`` threads, each with its own keep-alive
connection (stdlib ``http.client`` only), and prints requests per second, p50/p99/max latency
and the number of errors (any non-200 answer or transport failure) as one JSON line.

    python benchmarks/serve_load.py --model runs/bench15-a/runs/hyperim-s0-687703ef \\
        --requests 2000 --clients 8
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

#: Package descriptions in the style of debtags' documents, varied per request.
TEXTS = [
    "Python bindings for the GTK graphical user interface toolkit",
    "command-line utility to convert audio files between formats such as mp3 and ogg",
    "web server with support for virtual hosts, TLS and reverse proxying",
    "development files for the C library that parses XML documents",
    "a game of chess for the X window system with a computer opponent",
    "tools to manage and back up MySQL and PostgreSQL database servers",
    "fonts covering Latin, Greek and Cyrillic scripts for the desktop",
    "Perl module to read and write spreadsheets in the Excel format",
    "documentation of the Linux kernel and its device drivers",
    "network scanner that discovers hosts and services on a local network",
]


def start_server(model: str, extra: list[str]) -> tuple[subprocess.Popen, str, Path]:
    log = Path(tempfile.mkstemp(prefix="serve-load-", suffix=".log")[1])
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hyperim", "serve", "--model", model, "--port", "0", *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the server exited {proc.returncode}: {log.read_text()}")
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", log.read_text())
        if found:
            url = f"http://127.0.0.1:{found.group(1)}"
            try:
                conn = http.client.HTTPConnection("127.0.0.1", int(found.group(1)), timeout=5)
                conn.request("GET", "/v1/health")
                if conn.getresponse().status == 200:
                    return proc, url, log
            except OSError:
                pass
        time.sleep(0.2)
    proc.kill()
    sys.exit(f"the server did not come up: {log.read_text()}")


def run_load(url: str, requests: int, clients: int, k: int, seed: int) -> dict:
    parts = urlsplit(url)
    rng = random.Random(seed)
    bodies = [
        json.dumps({"text": f"{rng.choice(TEXTS)} {rng.choice(TEXTS)}", "k": k}).encode()
        for _ in range(requests)
    ]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    next_index = iter(range(requests))

    def client() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        headers = {"Content-Type": "application/json"}
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                break
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/v1/suggest", body=bodies[i], headers=headers)
                response = conn.getresponse()
                payload = response.read()
                ok = response.status == 200 and "results" in json.loads(payload)
                problem = None if ok else f"HTTP {response.status}: {payload[:200]!r}"
            except (OSError, http.client.HTTPException, ValueError) as e:
                problem = f"{type(e).__name__}: {e}"
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
            elapsed = time.perf_counter() - t0
            with lock:
                latencies.append(elapsed)
                if problem:
                    errors.append(problem)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return 1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {
        "requests": requests,
        "clients": clients,
        "k": k,
        "seconds": round(wall, 2),
        "requests_per_second": round(requests / wall, 1),
        "p50_ms": round(pct(0.50), 1),
        "p99_ms": round(pct(0.99), 1),
        "max_ms": round(1000 * ordered[-1], 1),
        "errors": len(errors),
        "first_errors": errors[:3],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--model", help="Run or model folder: start a server for it.")
    where.add_argument("--url", help="A running server, e.g. http://127.0.0.1:8000")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=20, help="Requests before measuring.")
    parser.add_argument(
        "--server-arg", action="append", default=[], help="Extra `hyperim serve` flag (repeat)."
    )
    args = parser.parse_args()
    if args.requests < 1 or args.clients < 1:
        sys.exit("--requests and --clients must be >= 1")
    proc = log = None
    url = args.url
    if args.model:
        proc, url, log = start_server(args.model, args.server_arg)
    try:
        if args.warmup:
            run_load(url, args.warmup, 1, args.k, args.seed + 1)
        result = run_load(url, args.requests, args.clients, args.k, args.seed)
        result["server_cpus"] = os.cpu_count()
        print(json.dumps(result))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
            log.unlink(missing_ok=True)
    if result["errors"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
