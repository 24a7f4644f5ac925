#!/usr/bin/env python3
"""Node-count sweep (see bench/sweep.sh): 1, 2, 4, ... `assetpool serve` processes on
one PostgreSQL of their own; for each count, the change feed's latency, the database
connections, the database's transactions and row writes per second, and each node's
CPU and RSS, at idle and under a small fixed load. Prints a markdown table."""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from soak import ISSUER, PASSWORD, Cluster, Http, Recorder, free_port, now  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14, 15)


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Sweep:
    def __init__(self, args):
        self.args = args
        self.c = Cluster(types.SimpleNamespace(work=args.work, bin=args.bin, max_staleness=30), Recorder(now()))

    def psql(self, sql, db="postgres"):
        out = subprocess.run(self.c.as_pg([os.path.join(self.c.pg_bin, "psql"), "-h", "127.0.0.1", "-p",
                                           str(self.c.pg_port), "-U", "postgres", "-d", db, "-Atc", sql]),
                             capture_output=True, text=True, timeout=60, check=True)
        return out.stdout.strip()

    def db_stats(self):
        row = self.psql("SELECT xact_commit, tup_inserted + tup_updated + tup_deleted FROM pg_stat_database "
                        f"WHERE datname = '{self.c.dbname}'")
        xact, writes = row.split("|")
        return int(xact), int(writes)

    def connections(self):
        return int(self.psql(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{self.c.dbname}'"))

    def window(self, procs, seconds):
        """Database and per-node CPU figures over SECONDS."""
        time.sleep(1.2)  # PostgreSQL reports a backend's statistics at most once a second
        x0, w0 = self.db_stats()
        cpu0 = [cpu_seconds(p.pid) for p in procs]
        t0 = now()
        time.sleep(seconds)
        time.sleep(1.2)
        x1, w1 = self.db_stats()
        cpu1 = [cpu_seconds(p.pid) for p in procs]
        span = now() - t0
        cpu = [(b - a) / span * 100 for a, b in zip(cpu0, cpu1)]
        return {"xact": (x1 - x0) / span, "writes": (w1 - w0) / span,
                "cpu_mean": statistics.mean(cpu), "cpu_max": max(cpu), "cpu_sum": sum(cpu),
                "conns": self.connections()}

    def start_nodes(self, n):
        procs, ports, logs = [], [], []
        for i in range(n):
            port = free_port()
            log_path = os.path.join(self.args.work, f"n{n}-node{i + 1}.log")
            log = open(log_path, "wb")
            procs.append(subprocess.Popen(
                [self.args.bin, "serve", "--database", self.c.db_url(), "--listen", f"127.0.0.1:{port}",
                 "--environment", "production", "--issuer", ISSUER],
                stdout=log, stderr=log, start_new_session=True))
            log.close()
            ports.append(port)
            logs.append(log_path)
        with open(os.path.join(self.args.work, "pids"), "w") as f:
            f.write("\n".join(str(p.pid) for p in procs) + "\n")
        deadline = now() + 120
        for proc, log_path in zip(procs, logs):
            while True:
                with open(log_path, "rb") as f:
                    if b"listening on" in f.read():
                        break
                if proc.poll() is not None or now() > deadline:
                    raise RuntimeError(f"a node did not start; see {log_path}")
                time.sleep(0.02)
        return procs, ports

    def run_count(self, n):
        c = self.c
        c.dbname = f"sweep{n}"
        self.psql(f"CREATE DATABASE {c.dbname}")
        c.cli("migrate")
        c.cli("users", "create", "--email", "admin@example.com", "--admin", "--password-stdin",
              stdin=PASSWORD + "\n")
        admin_key = json.loads(c.cli("keys", "create", "--name", "admin", "--env", "production", "--json"))
        pairs = []
        for i in range(self.args.revocations + 1):
            email = f"user{i}@example.com"
            c.cli("users", "create", "--email", email, "--password-stdin", stdin=PASSWORD + "\n")
            k = json.loads(c.cli("keys", "create", "--name", f"k{i}", "--env", "production", "--json"))
            pairs.append({"email": email, "key": k["key"], "id": k["id"]})
        load_pair = pairs.pop()
        procs, ports = self.start_nodes(n)
        try:
            h = Http()

            def login(port, key, email):
                r = h.request(port, "POST", "/api/authentication/login", {"x-api-key": key},
                              {"username": email, "password": PASSWORD})
                if r.status != 200:
                    raise RuntimeError(f"login failed: {r.status} {r.body[:200]!r}")
                return r.json()

            admin = login(ports[0], admin_key["key"], "admin@example.com")["accessToken"]
            for p in pairs:
                p["token"] = login(ports[0], p["key"], p["email"])["accessToken"]
            time.sleep(6)  # past the usage flush of those logins
            rss_idle = [rss_mib(p.pid) for p in procs]
            idle = self.window(procs, self.args.idle)

            # Change feed: revoke on node 1, poll every other node (node 1 itself when alone).
            targets = ports[1:] or ports[:1]
            latencies, worst = [], []
            for p in pairs:
                hdr = {"x-api-key": p["key"], "authorization": f"Bearer {p['token']}"}
                for port in ports:  # every node has the key cached: the feed, not a miss, must refuse it
                    r = h.request(port, "GET", "/v1/resource", hdr)
                    if r.status != 200:
                        raise RuntimeError(f"warm-up: {r.status} {r.body[:200]!r}")
                go = threading.Event()
                box = {}
                found = []

                def poll(port):
                    hp = Http()
                    go.wait()
                    while True:
                        r = hp.request(port, "GET", "/v1/resource", hdr)
                        if r.status == 401:
                            found.append(r.t_end - box["t_ack"])
                            return
                        if now() - box["t_ack"] > 10:
                            found.append(float("inf"))
                            return
                        time.sleep(0.002)

                threads = [threading.Thread(target=poll, args=(port,)) for port in targets]
                for t in threads:
                    t.start()
                r = h.request(ports[0], "POST", f"/admin/keys/{p['id']}/revoke",
                              {"x-api-key": admin_key["key"], "authorization": f"Bearer {admin}"}, {})
                box["t_ack"] = r.t_end
                if r.status != 200:
                    raise RuntimeError(f"revoke: {r.status} {r.body[:200]!r}")
                go.set()
                for t in threads:
                    t.join()
                latencies.extend(found)
                worst.append(max(found))
                time.sleep(0.5)

            # A small fixed load, spread over the nodes: verifies at --rate per second in
            # all, and one login + refresh + logout cycle per second.
            stop = threading.Event()
            lp = load_pair
            tokens = [login(port, lp["key"], lp["email"])["accessToken"] for port in ports]
            errors = []

            def verifier(k, rate):
                hv = Http()
                i = k
                period = 1 / rate
                t_next = now()
                while not stop.is_set():
                    port = ports[i % n]
                    r = hv.request(port, "GET", "/v1/resource",
                                   {"x-api-key": lp["key"], "authorization": f"Bearer {tokens[i % n]}"})
                    if r.status != 200:
                        errors.append(r.status)
                    i += 1
                    t_next += period
                    time.sleep(max(0.0, t_next - now()))

            def sessions():
                hs = Http()
                i = 0
                t_next = now()
                while not stop.is_set():
                    port = ports[i % n]
                    j = login(port, lp["key"], lp["email"])
                    port2 = ports[(i + 1) % n]
                    r = hs.request(port2, "POST", "/api/authentication/refresh", {"x-api-key": lp["key"]},
                                   {"refreshToken": j["refreshToken"]})
                    if r.status != 200:
                        errors.append(r.status)
                        continue
                    r = hs.request(port, "POST", "/api/authentication/logout",
                                   {"x-api-key": lp["key"], "authorization": f"Bearer {r.json()['accessToken']}"})
                    if r.status != 204:
                        errors.append(r.status)
                    i += 1
                    t_next += 1.0
                    time.sleep(max(0.0, t_next - now()))

            workers = [threading.Thread(target=verifier, args=(k, self.args.rate / 4)) for k in range(4)]
            workers.append(threading.Thread(target=sessions))
            for t in workers:
                t.start()
            time.sleep(2)
            load = self.window(procs, self.args.busy)
            rss_load = [rss_mib(p.pid) for p in procs]
            stop.set()
            for t in workers:
                t.join()
            if errors:
                raise RuntimeError(f"errors under load: {errors[:10]}")
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
        return {"n": n, "lat": latencies, "worst": worst, "idle": idle, "load": load,
                "rss_idle": statistics.mean(rss_idle), "rss_load": statistics.mean(rss_load)}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--counts", default="1 2 4 8 16")
    ap.add_argument("--revocations", type=int, default=7)
    ap.add_argument("--idle", type=float, default=10)
    ap.add_argument("--busy", type=float, default=12)
    ap.add_argument("--rate", type=float, default=100)
    args = ap.parse_args()
    sweep = Sweep(args)
    results = []
    try:
        sweep.c.dbname = "sweep"
        sweep.c.max_connections = 500  # 16 nodes may open up to 16 x 18 connections
        sweep.c.start_postgres()
        max_conn = sweep.psql("SHOW max_connections")
        for n in map(int, args.counts.split()):
            print(f"== {n} node(s)", file=sys.stderr, flush=True)
            results.append(sweep.run_count(n))
    finally:
        sweep.c.shutdown()

    ms = lambda s: f"{s * 1000:.0f}"  # noqa: E731
    print(f"Sweep of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {os.cpu_count()} cores shared "
          f"by the nodes, PostgreSQL and the load driver; PostgreSQL max_connections = {max_conn}; "
          f"load = {args.rate:.0f} verifies/s + 1 login, refresh and logout per second, spread over the nodes.")
    print()
    print("| nodes | feed latency p50 / max ms | DB connections idle / load | DB transactions/s idle / load "
          "| DB rows written/s idle / load | CPU per node idle / load, % of a core | CPU all nodes idle, % "
          "| RSS per node idle / load MiB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        lat = sorted(r["lat"])
        p50 = lat[len(lat) // 2]
        i, b = r["idle"], r["load"]
        print(f"| {r['n']} | {ms(p50)} / {ms(max(lat))} | {i['conns']} / {b['conns']} | {i['xact']:.1f} / "
              f"{b['xact']:.1f} | {i['writes']:.1f} / {b['writes']:.1f} | {i['cpu_mean']:.2f} / {b['cpu_mean']:.2f} "
              f"| {i['cpu_sum']:.1f} | {r['rss_idle']:.1f} / {r['rss_load']:.1f} |")
    print()
    print("Feed latency: revocation acknowledged by node 1 (admin API) -> first 401 on each other node, "
          f"polled directly every ~2 ms, {args.revocations} revocations per count (node 1 itself when alone).")


if __name__ == "__main__":
    main()
