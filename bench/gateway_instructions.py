#!/usr/bin/env python3
"""Instructions per request of the reverse proxy (`serve --upstream`), counted
by valgrind's callgrind (see BENCHMARKS.md, "Gateway").

    python3 bench/gateway_instructions.py --bin target/release [--requests 2000] [--annotate]

assetpool runs under callgrind (one tokio worker thread) in front of the
small upstream (`examples/echo_upstream`, not under valgrind); the client is
this script, one keep-alive connection, one request at a time. After a
warm-up, the counters are zeroed and dumped around each phase:

- `GET /plain` forwarded to the upstream (key and token checked);
- `GET /v1/resource`, assetpool's own endpoint: the check alone.

Every thread of the server is counted (the upstream client's connection
tasks run apart from the client connection's task), so the clock-driven
background work (change-feed poll, usage writer) adds a little noise; the
difference of the two figures is what forwarding costs beyond the check.
With `--annotate`, the top inclusive functions of the forwarding phase are
printed (`callgrind_annotate --inclusive=yes`).
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guard import Client, dump, fail, run, total_instructions, wait_for_listening  # noqa: E402

PASSWORD = "bench password that is long enough"
WARMUP_REQUESTS = 300


def phase(client, path, headers, count):
    for _ in range(count):
        status, body = client.request("GET", path, headers)
        if status != 200:
            fail(f"GET {path} answered {status}: {body[:200]!r}")


def measure(bin_dir, work, requests, annotate, lines):
    database = f"sqlite://{os.path.join(work, 'bench.db')}"
    assetpool = os.path.join(bin_dir, "assetpool")
    created = run([assetpool, "keys", "create", "--name", "bench", "--env", "prod",
                   "--json", "--database", database]).stdout
    key = re.search(r'"key":\s*"([^"]+)"', created).group(1)
    run([assetpool, "users", "create", "--email", "bench@example.com", "--password-stdin",
         "--database", database], input=PASSWORD + "\n")

    upstream_log = os.path.join(work, "upstream.out")
    with open(upstream_log, "w", encoding="utf-8") as log:
        upstream = subprocess.Popen(
            [os.path.join(bin_dir, "examples", "echo_upstream"), "127.0.0.1:0"],
            stdout=log, stderr=subprocess.STDOUT,
        )
    out_dir = os.path.join(work, "callgrind")
    os.mkdir(out_dir)
    log_path = os.path.join(work, "server.log")
    server = None
    try:
        upstream_host, upstream_port = wait_for_listening(upstream_log, upstream)
        env = dict(os.environ, TOKIO_WORKER_THREADS="1", RUST_LOG="info")
        with open(log_path, "w", encoding="utf-8") as log:
            server = subprocess.Popen(
                [
                    "valgrind", "--tool=callgrind", "--quiet",
                    f"--callgrind-out-file={out_dir}/callgrind.out",
                    assetpool, "serve",
                    "--database", database,
                    "--listen", "127.0.0.1:0",
                    "--upstream", f"http://{upstream_host}:{upstream_port}",
                    "--hashing-workers", "1",
                ],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )
        host, port = wait_for_listening(log_path, server)
        client = Client(host, port)
        body = '{"username": "bench@example.com", "password": "%s"}' % PASSWORD
        status, answer = client.request(
            "POST", "/api/authentication/login",
            {"x-api-key": key, "content-type": "application/json"}, body,
        )
        if status != 200:
            fail(f"login answered {status}: {answer[:200]!r}")
        token = re.search(rb'"accessToken":"([^"]+)"', answer).group(1).decode()
        headers = {"x-api-key": key, "x-api-token": token}
        phase(client, "/plain", headers, WARMUP_REQUESTS)
        phase(client, "/v1/resource", headers, WARMUP_REQUESTS)

        figures = {}
        dumps = {}
        for name, path in (("forwarded /plain", "/plain"), ("check /v1/resource", "/v1/resource")):
            run(["callgrind_control", "--zero", str(server.pid)])
            before = set(os.listdir(out_dir))
            phase(client, path, headers, requests)
            dumps[name] = dump(server.pid, out_dir, before)
            figures[name] = total_instructions(dumps[name]) / requests
    finally:
        for process in (server, upstream):
            if process is None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()

    for name, value in figures.items():
        print(f"instructions per request, {name}: {value:,.0f}")
    print(f"forwarding beyond the check: {figures['forwarded /plain'] - figures['check /v1/resource']:,.0f}")
    if annotate:
        report = run(["callgrind_annotate", "--inclusive=yes", "--threshold=99",
                      dumps["forwarded /plain"]]).stdout
        print("\n".join(report.splitlines()[:lines]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True, help="folder of the release binaries")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--annotate", action="store_true")
    parser.add_argument("--lines", type=int, default=80, help="lines of the annotation shown")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (and the dumps)")
    args = parser.parse_args()
    for tool in ("valgrind", "callgrind_control", "callgrind_annotate"):
        if shutil.which(tool) is None:
            fail(f"{tool} is not installed (Debian package valgrind)")
    for binary in ("assetpool", os.path.join("examples", "echo_upstream")):
        if not os.access(os.path.join(args.bin, binary), os.X_OK):
            fail(f"{os.path.join(args.bin, binary)} is missing: build the release binaries first")
    work = tempfile.mkdtemp(prefix="assetpool-gateway-instructions.")
    try:
        measure(args.bin, work, args.requests, args.annotate, args.lines)
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
