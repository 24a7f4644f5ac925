#!/usr/bin/env python3
"""Where the instructions of a verified request go (see BENCHMARKS.md).

Runs the bare axum ceiling (`bench-ceiling`), the verify floor
(`bench-verify-floor`: the server's check, usage counting and answer on a
bare axum server, without the server's layers) and the real server
(`assetpool serve`) under valgrind's callgrind, one request at a time on one
keep-alive connection, with one tokio worker thread, over the same 200 warm
key/token pairs as the guard (`bench/guard.py`). For each it prints the
instructions per request of the whole process (every thread: the runtime's
timer and I/O driver and the server's clock-driven tasks included) and of the
connection's own task, and for the server the inclusive instructions per
request of the steps named in STEPS.

    python3 bench/breakdown.py --bin target/release [--requests 2000] [--json FILE]

Extra arguments for `assetpool serve` can follow `--`, e.g.
`-- --usage-tracking false`; they reach the server only (the floor always
counts usage and takes its client from the socket), so with them the floor
and the server no longer do the same work.

Under valgrind the `sha2` crate finds no SHA extensions and hashes in
software: about 4,100 instructions per 64-byte block, against a few hundred
cycles with the SHA-NI instructions the server uses on this machine. The
figures are therefore printed with and without `sha2::sha256::compress256`.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guard  # noqa: E402  (the same seeding, client and dump helpers)

WARMUP = 400
# (label, function names, and how their inclusive costs combine: summed by
# default, for functions that do not nest).
# Names follow the release build's symbols; a step whose functions were all
# inlined away prints "n/a".
OBSERVE = "<assetpool_server::middleware::Observe<S> as tower_service::Service<http::request::Request<axum_core::body::Body>>>::call"
OWN_ROUTES = "<assetpool_server::middleware::OwnRoutes<S> as tower_service::Service<http::request::Request<axum_core::body::Body>>>::call"
VERIFY = "assetpool_core::service::verify::<impl assetpool_core::service::AuthService>"
VIEWS = "assetpool_server::controllers::resource::_::<impl serde_core::ser::Serialize for assetpool_server::controllers::resource::"
STEPS = [
    ("connection task (hyper, every layer, the handler)",
     ["assetpool_server::listener::serve::{{closure}}::{{closure}}"]),
    # Either, as inlining left them (the first holds the second).
    ("hyper: read and parse the request head",
     ["hyper::proto::h1::conn::Conn<I,B,T>::poll_read_head",
      "hyper::proto::h1::io::Buffered<T,B>::parse"], max),
    ("hyper: write the response head", ["hyper::proto::h1::conn::Conn<I,B,T>::write_head"]),
    ("observe layer, on the way in (id, client address, usage slot, span)", [OBSERVE]),
    ("  of which the request span (tracing)", ["tracing::span::Span::new"]),
    ("observe layer: metrics", ["assetpool_server::metrics::Metrics::count_request"]),
    ("own-routes layer, on the way in (control characters)", [OWN_ROUTES]),
    ("the check: authenticate_request (key, token, usage slot)",
     ["assetpool_server::extract::credentials::authenticate_request::{{closure}}"]),
    ("  of which the API key (parse, SHA-256, cache)", [f"{VERIFY}::authenticate_key::{{{{closure}}}}"]),
    ("  of which the token (SHA-256 of the JWT, cache)", [f"{VERIFY}::authenticate_token"]),
    ("  of which reading the credential headers",
     ["assetpool_server::extract::credentials::Presented::from_headers"]),
    ("the answer's JSON fields (user, key, time)",
     [f"{VIEWS}ApiKeyView>::serialize", f"{VIEWS}UserView>::serialize",
      "<assetpool_server::controllers::resource::Rfc3339Seconds as serde_core::ser::Serialize>::serialize"]),
    ("the watchdog (reads noted, request guard)",
     ["<assetpool_server::listener::Tracked<S> as tokio::io::async_read::AsyncRead>::poll_read",
      "assetpool_server::listener::RequestGuard::begin",
      "<assetpool_server::listener::RequestGuard as core::ops::drop::Drop>::drop"]),
    ("allocator (malloc, free, realloc)",
     ["__rustc::__rust_alloc", "__rustc::__rust_dealloc", "__rustc::__rust_realloc"]),
    ("SHA-256 compression (portable code under valgrind)", [guard.SHA256_COMPRESS]),
]
WORKER = "tokio::runtime::scheduler::multi_thread::worker::Context::run"
CLOCK_DRIVEN = "assetpool_server::background::"


def run_server(command, work, name, pairs, requests, env):
    out_dir = os.path.join(work, f"callgrind-{name}")
    os.mkdir(out_dir)
    log_path = os.path.join(work, f"{name}.log")
    with open(log_path, "w", encoding="utf-8") as log:
        server = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--quiet",
             f"--callgrind-out-file={out_dir}/callgrind.out", *command],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
    try:
        host, port = guard.wait_for_listening(log_path, server)
        client = guard.Client(host, port)
        guard.verify_round(client, pairs, WARMUP)
        subprocess.run(["callgrind_control", "--zero", str(server.pid)], check=True,
                       capture_output=True)
        before = set(os.listdir(out_dir))
        started = time.monotonic()
        guard.verify_round(client, pairs, requests)
        seconds = time.monotonic() - started
        dump = guard.dump(server.pid, out_dir, before)
    finally:
        guard.stop(server)
    total = guard.total_instructions(dump)
    return total, guard.inclusive_costs(dump), seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True, help="folder of the release binaries")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("serve_args", nargs="*", help="extra arguments of assetpool serve")
    args = parser.parse_args()
    for tool in ("valgrind", "callgrind_control", "callgrind_annotate"):
        if shutil.which(tool) is None:
            guard.fail(f"{tool} is not installed (Debian package valgrind)")
    for binary in ("assetpool", "bench-seed", "bench-ceiling", "bench-verify-floor"):
        if not os.access(os.path.join(args.bin, binary), os.X_OK):
            guard.fail(f"{os.path.join(args.bin, binary)} is missing: build the release binaries first")

    work = tempfile.mkdtemp(prefix="assetpool-breakdown.")
    try:
        seed_out = os.path.join(work, "seed")
        database = f"sqlite://{os.path.join(work, 'breakdown.db')}"
        guard.run([os.path.join(args.bin, "bench-seed"), "--database", database,
                   "--count", "300", "--sample", "200", "--out", seed_out,
                   "--issuer", guard.ISSUER])
        pairs = guard.read_lines(os.path.join(seed_out, "pairs.txt"))
        env = dict(os.environ, TOKIO_WORKER_THREADS="1", RUST_LOG="info")
        n = args.requests
        ceiling_total, ceiling_costs, _ = run_server(
            [os.path.join(args.bin, "bench-ceiling"), "127.0.0.1:0"],
            work, "ceiling", pairs, n, env)
        floor_total, floor_costs, _ = run_server(
            [os.path.join(args.bin, "bench-verify-floor"), "--database", database,
             "--listen", "127.0.0.1:0", "--issuer", guard.ISSUER],
            work, "floor", pairs, n, env)
        server_total, costs, _ = run_server(
            [os.path.join(args.bin, "assetpool"), "serve", "--database", database,
             "--listen", "127.0.0.1:0", "--environment", "production",
             "--issuer", guard.ISSUER, *args.serve_args],
            work, "assetpool", pairs, n, env)
    finally:
        if os.environ.get("BREAKDOWN_KEEP"):
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    def per_request(value):
        return round(value / n)

    axum_task = "axum::serve::handle_connection::{{closure}}::{{closure}}"
    ceiling_task = ceiling_costs.get(axum_task, 0)
    floor_task = floor_costs.get(axum_task, 0)
    if not ceiling_task or not floor_task:
        guard.fail(f"no instructions counted under {axum_task}: the symbol changed with axum")
    floor_sha = floor_costs.get(guard.SHA256_COMPRESS, 0)
    server_task = costs.get("assetpool_server::listener::serve::{{closure}}::{{closure}}", 0)
    sha = costs.get(guard.SHA256_COMPRESS, 0)
    # The runtime's own work for the requests (I/O and timer drivers, waking
    # and scheduling): the worker thread less the tasks it ran, the
    # connection's and the clock-driven background ones (their count follows
    # valgrind's slowdown, not the requests).
    clock_driven = sum(cost for name, cost in costs.items()
                       if name.startswith(CLOCK_DRIVEN) and name.endswith("{{closure}}")
                       and "::{{closure}}::" not in name)
    figures = {
        "requests": n,
        "ceiling_process": per_request(ceiling_total),
        "ceiling_connection_task": per_request(ceiling_task),
        "ceiling_runtime": per_request(ceiling_costs.get(WORKER, 0) - ceiling_task),
        "floor_process": per_request(floor_total),
        "floor_connection_task": per_request(floor_task),
        "floor_connection_task_without_sha": per_request(floor_task - floor_sha),
        "server_process": per_request(server_total),
        "server_connection_task": per_request(server_task),
        "server_connection_task_without_sha": per_request(server_task - sha),
        "server_runtime": per_request(costs.get(WORKER, 0) - server_task - clock_driven),
        "steps": {},
    }
    width = 70
    print(f"instructions per verified request ({n} requests, one connection, one worker thread)")
    for label, key in [
        ("ceiling (bare axum), whole process", "ceiling_process"),
        ("ceiling, connection task", "ceiling_connection_task"),
        ("ceiling, runtime (drivers, scheduling)", "ceiling_runtime"),
        ("verify floor (check, usage counting, answer), whole process", "floor_process"),
        ("verify floor, connection task", "floor_connection_task"),
        ("verify floor, connection task without SHA-256 compression",
         "floor_connection_task_without_sha"),
        ("assetpool, whole process (clock-driven tasks included)", "server_process"),
        ("assetpool, connection task", "server_connection_task"),
        ("assetpool, connection task without SHA-256 compression",
         "server_connection_task_without_sha"),
        ("assetpool, runtime (drivers, scheduling)", "server_runtime"),
    ]:
        print(f"{label:{width}} {figures[key]:>10,}")
    print("assetpool, steps (inclusive):")
    for label, names, *combine in STEPS:
        present = [costs[name] for name in names if name in costs]
        value = per_request((combine or [sum])[0](present)) if present else None
        figures["steps"][label] = value
        print(f"  {label:{width - 2}} {'n/a' if value is None else f'{value:,}':>10}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(figures, file, indent=2)
            file.write("\n")


if __name__ == "__main__":
    main()
