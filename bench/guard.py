#!/usr/bin/env python3
"""The instruction-count regression guard of assetpool (see BENCHMARKS.md).

Counts, under valgrind's callgrind, the CPU instructions the real server
spends per verified request (`GET /v1/resource`, warm key and token) and per
login (`POST /api/authentication/login`, see below for what is left out), for a fixed
workload, and compares them with the committed baseline
(`bench/guard-baseline.json`). Instruction counts, unlike times, repeat from
run to run on a busy machine, so a rise of more than the tolerance (5%) is a
real regression: the guard fails.

    python3 bench/guard.py --bin target/release            # check
    python3 bench/guard.py --bin target/release --update   # write the baseline

The baseline is updated deliberately, with the reason in the commit message.

What is counted: the instructions run inside the connection's task (the
future `listener::serve` spawns per connection: hyper's parsing and writing,
every layer, the handler), collected only there (`--toggle-collect`). Work of
other threads and tasks is left out because it follows the clock, not the
requests: the change-feed poll, the usage writer, housekeeping (counted, they
made two runs differ by a third on a loaded machine). So the login figure
leaves out Argon2id (the hashing pool's thread) and SQLite's own work (sqlx
runs it on a thread of its own); it counts what the login does in its task.

The server runs with one tokio worker thread (`TOKIO_WORKER_THREADS=1`); the
client is this script, one keep-alive connection, one request at a time.
Counters are zeroed after a warm-up and dumped after each measured phase
(`callgrind_control`), so start-up, seeding and warm-up are not counted.

Under valgrind the `sha2` crate finds no SHA extensions and hashes in portable
code: about half of a verified request's instructions here, against a few
per cent of its time natively. So the verify figure is also checked without
`sha2::sha256::compress256`, where a rise of the rest is not diluted.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

TOLERANCE = 0.05
# The poll function of the task `listener::serve` spawns for each connection.
CONNECTION_TASK = "assetpool_server::listener::serve::{{closure}}::{{closure}}"
ISSUER = "http://guard.assetpool.test"
VERIFY_REQUESTS = 2000
# Argon2id (m = 19 MiB, t = 2, the minimum the server accepts) takes valgrind
# about half a second per login.
LOGIN_REQUESTS = 60
WARMUP_ROUNDS = 2


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def run(command, **kwargs):
    return subprocess.run(command, check=True, text=True, capture_output=True, **kwargs)


def wait_for_listening(log_path, process, timeout_s=300):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            with open(log_path, encoding="utf-8", errors="replace") as log:
                fail(f"the server exited before listening:\n{log.read()[-4000:]}")
        with open(log_path, encoding="utf-8", errors="replace") as log:
            match = re.search(r"listening on http://([0-9.]+):([0-9]+)", log.read())
        if match:
            return match.group(1), int(match.group(2))
        time.sleep(0.2)
    fail("the server did not listen in time")
    return None


def dump(pid, out_dir, before):
    """Dumps callgrind's counters (since the last zeroing) and returns the new file."""
    run(["callgrind_control", "--dump", str(pid)])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = sorted(set(os.listdir(out_dir)) - before)
        if new:
            path = os.path.join(out_dir, new[-1])
            # The file is complete once it holds its totals.
            with open(path, encoding="utf-8", errors="replace") as file:
                if re.search(r"^(totals|summary):", file.read(), re.MULTILINE):
                    return path
        time.sleep(0.2)
    fail("callgrind wrote no dump")
    return None


SHA256_COMPRESS = "sha2::sha256::compress256"


def inclusive_costs(path):
    """Inclusive instructions of every function in a callgrind dump, by name."""
    out = run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", path]).stdout
    costs = {}
    for line in out.splitlines():
        match = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+\S*?:(.*?)(?: \[[^\]]*\])?$", line)
        # Recursion shows as name'2: the outer entry already includes it.
        if match and not re.search(r"'\d+$", match.group(2)):
            name = match.group(2)
            costs[name] = costs.get(name, 0) + int(match.group(1).replace(",", ""))
    return costs


def stop(server):
    """Stops a server started under valgrind: SIGTERM, then SIGKILL after two minutes."""
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=120)
    except subprocess.TimeoutExpired:
        server.kill()


def total_instructions(path):
    with open(path, encoding="utf-8", errors="replace") as file:
        text = file.read()
    for name in ("totals", "summary"):
        match = re.search(rf"^{name}:\s+([0-9]+)", text, re.MULTILINE)
        if match:
            return int(match.group(1))
    fail(f"no totals in {path}")
    return None


class Client:
    def __init__(self, host, port):
        self.connection = http.client.HTTPConnection(host, port, timeout=600)

    def request(self, method, path, headers, body=None):
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        payload = response.read()
        return response.status, payload


def read_lines(path):
    with open(path, encoding="utf-8") as file:
        return [line.split() for line in file if line.strip()]


def verify_round(client, pairs, count):
    for index in range(count):
        key, token = pairs[index % len(pairs)]
        status, body = client.request(
            "GET", "/v1/resource", {"x-api-key": key, "x-api-token": token}
        )
        if status != 200:
            fail(f"GET /v1/resource answered {status}: {body[:200]!r}")


def login_round(client, logins, count):
    for index in range(count):
        key, email, password = logins[index % len(logins)]
        body = json.dumps({"username": email, "password": password})
        status, answer = client.request(
            "POST",
            "/api/authentication/login",
            {"x-api-key": key, "content-type": "application/json"},
            body,
        )
        if status != 200:
            fail(f"login answered {status}: {answer[:200]!r}")


def measure(bin_dir, work):
    seed_out = os.path.join(work, "seed")
    database = f"sqlite://{os.path.join(work, 'guard.db')}"
    run(
        [
            os.path.join(bin_dir, "bench-seed"),
            "--database", database,
            "--count", "300",
            "--sample", "200",
            "--out", seed_out,
            "--issuer", ISSUER,
        ]
    )
    pairs = read_lines(os.path.join(seed_out, "pairs.txt"))
    logins = read_lines(os.path.join(seed_out, "login.txt"))

    out_dir = os.path.join(work, "callgrind")
    os.mkdir(out_dir)
    log_path = os.path.join(work, "server.log")
    env = dict(os.environ, TOKIO_WORKER_THREADS="1", RUST_LOG="info")
    with open(log_path, "w", encoding="utf-8") as log:
        server = subprocess.Popen(
            [
                "valgrind", "--tool=callgrind", "--quiet",
                "--collect-atstart=no", f"--toggle-collect={CONNECTION_TASK}",
                f"--callgrind-out-file={out_dir}/callgrind.out",
                os.path.join(bin_dir, "assetpool"), "serve",
                "--database", database,
                "--listen", "127.0.0.1:0",
                "--environment", "production",
                "--issuer", ISSUER,
                "--hashing-workers", "1",
            ],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
    try:
        host, port = wait_for_listening(log_path, server)
        client = Client(host, port)
        verify_round(client, pairs, WARMUP_ROUNDS * len(pairs))
        login_round(client, logins, 2)

        run(["callgrind_control", "--zero", str(server.pid)])
        before = set(os.listdir(out_dir))
        verify_round(client, pairs, VERIFY_REQUESTS)
        verify_dump = dump(server.pid, out_dir, before)

        run(["callgrind_control", "--zero", str(server.pid)])
        before = set(os.listdir(out_dir))
        login_round(client, logins, LOGIN_REQUESTS)
        login_dump = dump(server.pid, out_dir, before)
    finally:
        stop(server)

    verify = total_instructions(verify_dump)
    verify_sha = inclusive_costs(verify_dump).get(SHA256_COMPRESS, 0)
    login = total_instructions(login_dump)
    if verify == 0 or login == 0:
        fail(f"nothing was counted in {CONNECTION_TASK}: was it renamed? (then update CONNECTION_TASK)")
    return {
        "verify_instructions_per_request": round(verify / VERIFY_REQUESTS),
        "verify_instructions_per_request_without_sha256": round(
            (verify - verify_sha) / VERIFY_REQUESTS
        ),
        "login_instructions_per_request_in_task": round(login / LOGIN_REQUESTS),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True, help="folder of the release binaries")
    parser.add_argument(
        "--baseline",
        default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "guard-baseline.json"),
    )
    parser.add_argument("--update", action="store_true", help="write the baseline")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()

    for tool in ("valgrind", "callgrind_control", "callgrind_annotate"):
        if shutil.which(tool) is None:
            fail(f"{tool} is not installed (Debian package valgrind)")
    for binary in ("assetpool", "bench-seed"):
        if not os.access(os.path.join(args.bin, binary), os.X_OK):
            fail(f"{os.path.join(args.bin, binary)} is missing: build the release binaries first")

    work = tempfile.mkdtemp(prefix="assetpool-guard.")
    try:
        figures = measure(args.bin, work)
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    if args.update:
        with open(args.baseline, "w", encoding="utf-8") as file:
            json.dump(figures, file, indent=2)
            file.write("\n")
        print(f"baseline written to {args.baseline}: {json.dumps(figures)}")
        return

    try:
        with open(args.baseline, encoding="utf-8") as file:
            baseline = json.load(file)
    except FileNotFoundError:
        fail(f"no baseline at {args.baseline}: run with --update once")
    regressions = []
    for name in (
        "verify_instructions_per_request",
        "verify_instructions_per_request_without_sha256",
        "login_instructions_per_request_in_task",
    ):
        if name not in baseline:
            fail(f"the baseline has no {name}: update it with --update")
        now, then = figures[name], baseline[name]
        ratio = now / then
        verdict = "ok" if ratio <= 1 + TOLERANCE else "REGRESSION"
        print(f"{name}: {now} (baseline {then}, {ratio:.3f}x) {verdict}")
        if ratio > 1 + TOLERANCE:
            regressions.append(name)
    if regressions:
        fail(
            f"{', '.join(regressions)} rose more than {TOLERANCE:.0%} above the baseline; "
            "if the cost is deliberate, update bench/guard-baseline.json with --update and say why in the commit"
        )


if __name__ == "__main__":
    main()
