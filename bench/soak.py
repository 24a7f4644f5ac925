#!/usr/bin/env python3
"""Soak test with faults: three `assetpool serve` nodes on a PostgreSQL of their
own, behind nginx, under a mixed workload while nodes are killed, PostgreSQL is
restarted and one node's database link is cut. Started by bench/soak.sh, which
documents the options; Python 3.11 standard library only.

Every request's answer is judged as it arrives; the summary lists the counts,
the revocation and recovery times, the usage totals and every violation, and
the exit status is 1 when there was any violation.
"""

import argparse
import asyncio
import glob
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict

ISSUER = "http://soak.assetpool.test"
PASSWORD = "soak-Password-0123456789"
FLUSH_SECONDS = 5  # the usage flush interval (README: a kill -9 loses at most these)
REVOCATION_BOUND = 1.0  # CONTRACT section 5


def now():
    return time.monotonic()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- recording


class Recorder:
    """Counts, latencies and violations, shared by every thread."""

    def __init__(self, t0):
        self.t0 = t0
        self.lock = threading.Lock()
        self.counts = Counter()
        self.violations = []
        self.violation_kinds = Counter()
        self.latency = defaultdict(list)
        self.faults = []  # dicts: kind, nodes, start, end, recovery
        self.notes = Counter()
        self.closing = False

    def rel(self, t):
        return t - self.t0

    def count(self, key, n=1):
        with self.lock:
            self.counts[key] += n

    def note(self, key, n=1):
        with self.lock:
            self.notes[key] += n

    def violate(self, kind, text):
        if self.closing:
            return  # interrupted: the cluster is being torn down under the workers
        with self.lock:
            self.violation_kinds[kind] += 1
            if self.violation_kinds[kind] <= 10:
                self.violations.append(f"[t={self.rel(now()):7.2f}s] {kind}: {text}")
        print(f"VIOLATION {kind}: {text}", file=sys.stderr, flush=True)

    def measure(self, kind, seconds):
        with self.lock:
            self.latency[kind].append(seconds)

    def fault_begin(self, kind, nodes, detail=""):
        fault = {"kind": kind, "nodes": set(nodes), "start": now(), "end": None,
                 "detail": detail, "recovery": None}
        with self.lock:
            self.faults.append(fault)
        print(f"[t={self.rel(fault['start']):7.2f}s] fault: {kind} {detail}", flush=True)
        return fault

    def fault_end(self, fault, recovery):
        with self.lock:
            fault["end"] = now()
            fault["recovery"] = recovery
        shown = "NOT RECOVERED" if recovery is None else f"every node serving after {recovery:.2f}s"
        print(f"[t={self.rel(fault['end']):7.2f}s] fault over: {fault['kind']} {fault['detail']}: {shown}",
              flush=True)

    def in_fault(self, t_start, t_end, kinds, nodes=None, grace=3.0):
        """Whether [t_start, t_end] overlaps a fault of KINDS (touching NODES), with GRACE after its end."""
        with self.lock:
            for f in self.faults:
                if f["kind"] not in kinds:
                    continue
                if nodes is not None and not (f["nodes"] & set(nodes)):
                    continue
                end = (f["end"] if f["end"] is not None else float("inf")) + grace
                if f["start"] - 0.5 <= t_end and t_start <= end:
                    return True
        return False


DB_FAULTS = ("postgres-restart", "db-link-cut")

# ---------------------------------------------------------------- the cut proxy


class CutProxy:
    """A TCP proxy (asyncio, own thread) between one node and PostgreSQL. `cut(mode)`:
    'drop' resets every connection and resets new ones at once (RST, as a host that went
    away or a firewall's reject); 'blackhole' keeps connections open but passes no byte (and
    new ones never reach PostgreSQL); 'close' closes every connection and new ones at once
    with a clean FIN (as a TCP proxy whose backend is gone). `restore()` ends any. A
    connection PostgreSQL refuses (while it restarts) is reset, like a direct one."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.port = free_port()
        self.mode = None
        self.writers = set()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.resume = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("the TCP proxy did not start")

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.resume = asyncio.Event()
        self.resume.set()
        self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self.ready.set()
        self.loop.run_forever()

    @staticmethod
    def _end(writer, reset):
        """Closes a connection: with RST when RESET, else with FIN."""
        if reset:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
            writer.transport.abort()
        else:
            writer.close()

    async def _pipe(self, reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                await self.resume.wait()
                if self.mode in ("drop", "close"):
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, client_reader, client_writer):
        await self.resume.wait()
        if self.mode in ("drop", "close"):
            self._end(client_writer, self.mode == "drop")
            return
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            self._end(client_writer, True)
            return
        self.writers.update((client_writer, server_writer))
        try:
            await asyncio.gather(self._pipe(client_reader, server_writer),
                                 self._pipe(server_reader, client_writer))
        finally:
            self.writers.discard(client_writer)
            self.writers.discard(server_writer)

    def _set(self, mode):
        self.mode = mode
        if mode in (None, "drop", "close"):
            self.resume.set()  # waiting connections go on, to their end
        else:
            self.resume.clear()
        if mode in ("drop", "close"):
            for w in list(self.writers):
                self._end(w, mode == "drop")

    def cut(self, mode):
        self.loop.call_soon_threadsafe(self._set, mode)

    def restore(self):
        self.loop.call_soon_threadsafe(self._set, None)


# ---------------------------------------------------------------- HTTP


class Response:
    __slots__ = ("status", "headers", "body", "t_start", "t_end", "upstream")

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return {}

    def code(self):
        return self.json().get("error", "")


class Http:
    """Keep-alive connections of one thread, one per port."""

    def __init__(self):
        self.conns = {}

    def request(self, port, method, path, headers=None, body=None, timeout=15):
        headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        t_start = now()
        for attempt in (0, 1):
            conn = self.conns.get(port)
            fresh = conn is None
            if fresh:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
                self.conns[port] = conn
            try:
                conn.request(method, path, body=data, headers=headers)
                raw = conn.getresponse()
                r = Response()
                r.status = raw.status
                r.headers = {k.lower(): v for k, v in raw.getheaders()}
                r.body = raw.read()
                r.t_start, r.t_end = t_start, now()
                r.upstream = r.headers.get("x-soak-upstream", "")
                if r.headers.get("connection", "").lower() == "close":
                    conn.close()
                    self.conns.pop(port, None)
                return r
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                self.conns.pop(port, None)
                # A kept-alive connection the peer had closed meanwhile: one retry on a
                # fresh connection. Anything else is the caller's to judge.
                if fresh or not isinstance(e, (http.client.RemoteDisconnected, BrokenPipeError)):
                    raise
        raise RuntimeError("unreachable")


# ---------------------------------------------------------------- the cluster


class Cluster:
    def __init__(self, args, rec):
        self.args = args
        self.rec = rec
        self.work = args.work
        self.bin = args.bin
        self.procs = {}
        self.node_ports = [free_port() for _ in range(3)]
        self.logs = [os.path.join(self.work, f"node{i + 1}.log") for i in range(3)]
        self.lb_port = free_port()
        self.pg_port = free_port()
        self.pg_bin = self._pg_bindir()
        self.pgdata = os.path.join(self.work, "pgdata")
        self.pgsock = os.path.join(self.work, "pgsock")
        self.proxy = None
        self.nginx = None
        self.log_offsets = [0, 0, 0]
        self.dbname = "assetpool"
        self.max_connections = 200

    # -- PostgreSQL
    def _pg_bindir(self):
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                       key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
        if found:
            return os.path.dirname(found[-1])
        initdb = shutil.which("initdb")
        if initdb:
            return os.path.dirname(initdb)
        raise SystemExit("error: initdb not found (install the postgresql package)")

    def as_pg(self, cmd):
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--"] + cmd
        return cmd

    def pg_ctl(self, *args):
        subprocess.run(self.as_pg([os.path.join(self.pg_bin, "pg_ctl"), "-D", self.pgdata, *args]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, timeout=120)

    def start_postgres(self):
        os.makedirs(self.pgsock, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.work, "postgres")
            shutil.chown(self.pgsock, "postgres")
            os.chmod(self.work, 0o755)
        subprocess.run(self.as_pg([os.path.join(self.pg_bin, "initdb"), "-D", self.pgdata, "-A", "trust",
                                   "-U", "postgres", "-E", "UTF8", "--no-sync"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, timeout=120)
        with open(os.path.join(self.pgdata, "postgresql.conf"), "a") as f:
            f.write(f"\nport = {self.pg_port}\nlisten_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{self.pgsock}'\nmax_connections = {self.max_connections}\n")
        self.pg_ctl("-l", os.path.join(self.work, "postgres.log"), "-w", "start")
        subprocess.run(self.as_pg([os.path.join(self.pg_bin, "psql"), "-h", "127.0.0.1", "-p", str(self.pg_port),
                                   "-U", "postgres", "-qc", f"CREATE DATABASE {self.dbname}"]),
                       check=True, timeout=60)

    def restart_postgres(self):
        self.pg_ctl("-m", "fast", "-w", "restart")

    def stop_postgres(self):
        if os.path.exists(os.path.join(self.pgdata, "postmaster.pid")):
            try:
                self.pg_ctl("-m", "immediate", "-w", "stop")
            except Exception:
                pass

    def db_url(self, node=None):
        port = self.proxy.port if (node == 0 and self.proxy) else self.pg_port
        return f"postgres://postgres@127.0.0.1:{port}/{self.dbname}"

    # -- the CLI
    def cli(self, *args, stdin=None):
        out = subprocess.run([self.bin, "--database", self.db_url(), *args], input=stdin,
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"assetpool {args[0]} {args[1] if len(args) > 1 else ''}: {out.stderr.strip()}")
        return out.stdout

    # -- nodes
    def start_node(self, i):
        log = open(self.logs[i], "ab")
        self.log_offsets[i] = log.tell()
        proc = subprocess.Popen(
            [self.bin, "serve", "--database", self.db_url(i), "--listen", f"127.0.0.1:{self.node_ports[i]}",
             "--environment", "production", "--issuer", ISSUER, "--max-staleness", str(self.args.max_staleness),
             "--trusted-proxy", "127.0.0.1/32"],
            stdout=log, stderr=log, start_new_session=True)
        log.close()
        self.procs[i] = proc
        self._record_pids()
        deadline = now() + 60
        while now() < deadline:
            with open(self.logs[i], "rb") as f:
                f.seek(self.log_offsets[i])
                if b"listening on" in f.read():
                    return proc
            if proc.poll() is not None:
                raise RuntimeError(f"node {i + 1} exited at start; see {self.logs[i]}")
            time.sleep(0.02)
        raise RuntimeError(f"node {i + 1} did not start listening in 60 s")

    def kill_node(self, i):
        proc = self.procs[i]
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop_nodes(self):
        """SIGTERM every node (graceful: usage flushed); returns the exit codes."""
        codes = {}
        for i, proc in self.procs.items():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for i, proc in self.procs.items():
            try:
                codes[i] = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[i] = "timeout"
        return codes

    # -- nginx
    def start_nginx(self):
        tmp = os.path.join(self.work, "nginx")
        os.makedirs(tmp, exist_ok=True)
        servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in self.node_ports)
        conf = f"""
{'user root;' if os.geteuid() == 0 else ''}
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  upstream assetpool {{
{servers}
    keepalive 32;
  }}
  server {{
    listen 127.0.0.1:{self.lb_port};
    client_max_body_size 16k;
    location / {{
      proxy_pass http://assetpool;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_connect_timeout 1s;
      proxy_read_timeout 30s;
      proxy_next_upstream error timeout;
      add_header X-Soak-Upstream $upstream_addr always;
    }}
  }}
}}
"""
        path = os.path.join(tmp, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.nginx = subprocess.Popen(["nginx", "-p", tmp, "-e", f"{tmp}/error.log", "-c", path],
                                      stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/stderr.log", "wb"),
                                      start_new_session=True)
        self._record_pids()
        deadline = now() + 20
        while now() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.lb_port), timeout=1):
                    return
            except OSError:
                if self.nginx.poll() is not None:
                    raise RuntimeError("nginx exited at start: " + open(f"{tmp}/stderr.log").read())
                time.sleep(0.05)
        raise RuntimeError("nginx did not start")

    def _record_pids(self):
        pids = [p.pid for p in self.procs.values() if p.poll() is None]
        if self.nginx and self.nginx.poll() is None:
            pids.append(self.nginx.pid)
        with open(os.path.join(self.work, "pids"), "w") as f:
            f.write("\n".join(map(str, pids)) + "\n")

    def shutdown(self):
        for proc in list(self.procs.values()):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if self.nginx and self.nginx.poll() is None:
            self.nginx.terminate()
            try:
                self.nginx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.nginx.kill()
        self.stop_postgres()

    def failures(self, limit=10):
        """The distinct causes the nodes logged for requests that failed with a 500."""
        seen = Counter()
        for i, path in enumerate(self.logs):
            with open(path, "rb") as f:
                for line in f:
                    if b"ERROR" in line and b"request failed" in line:
                        text = line.decode(errors="replace").strip()
                        seen[f"node {i + 1}: " + text.split(" ", 1)[-1][:300]] += 1
        return [f"{n} x {text}" for text, n in seen.most_common(limit)]

    def panics(self):
        found = []
        for i, path in enumerate(self.logs):
            with open(path, "rb") as f:
                for line in f:
                    if b"panicked" in line:
                        found.append(f"node {i + 1}: {line.decode(errors='replace').strip()[:300]}")
        return found


# ---------------------------------------------------------------- the workload


class Driver:
    def __init__(self, cluster, rec, args):
        self.c = cluster
        self.rec = rec
        self.args = args
        self.stop = threading.Event()
        self.usage_ok = Counter()  # node port -> 2xx answers of the usage key
        self.usage_times = []  # (t_end, upstream port) of every 2xx of the usage key
        self.usage_unknown = 0  # usage-key requests without an answer (may have been counted)
        self.lock = threading.Lock()

    # -- judging answers
    def judge(self, r, what, expect, target):
        """Counts the answer and reports what the contract does not allow. EXPECT: the
        statuses this step expects; a 503 with Retry-After during a database fault and a
        502 from nginx during a node kill are allowed besides; anything else is a violation.
        Returns True when the status is expected."""
        self.rec.count((what, r.status))
        if r.status in expect:
            return True
        if r.status >= 500 and r.status not in (502, 503, 504):
            self.rec.violate("5xx", f"{what} via {target}: {r.status} {r.body[:200]!r}")
        elif r.status == 503:
            if "retry-after" not in r.headers:
                self.rec.violate("503-without-retry-after", f"{what} via {target}: {r.body[:200]!r}")
            elif not self.rec.in_fault(r.t_start, r.t_end, DB_FAULTS):
                self.rec.violate("503-outside-fault", f"{what} via {target}: {r.body[:200]!r}")
        elif r.status in (502, 504):
            if target != "lb" or not self.rec.in_fault(r.t_start, r.t_end, ("node-kill",)):
                self.rec.violate("gateway-error", f"{what} via {target}: {r.status} {r.body[:200]!r}")
        else:
            # A 4xx this step did not expect: a credential refused that should pass, or the like.
            if self.rec.in_fault(r.t_start, r.t_end, DB_FAULTS) and r.code() == "storage_unavailable":
                return False
            self.rec.violate("unexpected-answer", f"{what} via {target}: {r.status} {r.body[:200]!r}")
        return False

    def call(self, h, target, method, path, headers=None, body=None, what=None, expect=(200,)):
        """One request to TARGET ('lb' or a node index); None when no answer came."""
        port = self.c.lb_port if target == "lb" else self.c.node_ports[target]
        what = what or f"{method} {path.split('?')[0]}"
        t_start = now()
        try:
            r = h.request(port, method, path, headers, body)
        except (OSError, http.client.HTTPException) as e:
            self.rec.count((what, "no-answer"))
            nodes = None if target == "lb" else [target]
            kinds = ("node-kill",) if target != "lb" else ("node-kill",) + DB_FAULTS
            if not self.rec.in_fault(t_start, now(), kinds, nodes):
                self.rec.violate("no-answer", f"{what} via {target}: {type(e).__name__}: {e}")
            return None
        self.judge(r, what, expect, target)
        return r

    # -- credentials
    def login(self, h, key, email, target="lb"):
        r = self.call(h, target, "POST", "/api/authentication/login", {"x-api-key": key},
                      {"username": email, "password": PASSWORD}, what="login")
        if r is None or r.status != 200:
            return None
        j = r.json()
        return {"access": j["accessToken"], "refresh": j["refreshToken"]}

    def auth(self, key, token):
        return {"x-api-key": key, "authorization": f"Bearer {token}"}

    def admin(self, h, state, method, path, body=None, expect=(200,)):
        """An admin API call through nginx with this thread's admin session."""
        for _ in range(2):
            if state.get("admin") is None:
                state["admin"] = self.login(h, self.admin_key, self.admin_email)
                if state["admin"] is None:
                    return None
            label = "/".join("{id}" if any(ch.isdigit() for ch in seg) and len(seg) > 8 else seg
                             for seg in path.split("/"))
            r = self.call(h, "lb", method, path, self.auth(self.admin_key, state["admin"]["access"]), body,
                          what=f"admin {method} {label}", expect=expect)
            if r is not None and r.status == 401:
                state["admin"] = None
                continue
            return r
        return None

    # -- probing every node after a revocation
    def probe_refused(self, h, key, token, t_ack, kind, codes):
        """After a revocation acknowledged at T_ACK, asks every node directly until each
        refuses with one of CODES; an acceptance sent more than a second after T_ACK is a
        violation (on a node whose database link was down meanwhile: more than max-staleness)."""
        pending = set(range(3))
        deadline = t_ack + self.args.max_staleness + 5
        while pending and now() < deadline:
            for node in sorted(pending):
                t_send = now()
                try:
                    r = h.request(self.c.node_ports[node], "GET", "/v1/resource", self.auth(key, token), timeout=5)
                except (OSError, http.client.HTTPException):
                    self.rec.count(("probe", "no-answer"))
                    continue  # a killed node: it loads its state afresh when it comes back
                self.rec.count(("probe", r.status))
                late = t_send - t_ack
                if r.status == 200:
                    if late > REVOCATION_BOUND:
                        if self.rec.in_fault(t_ack - 1, t_send, DB_FAULTS, [node]) and \
                                late <= self.args.max_staleness + REVOCATION_BOUND:
                            self.rec.note(f"{kind} accepted on a node cut from the database, within max-staleness")
                        else:
                            self.rec.violate("revoked-credential-accepted",
                                             f"{kind}: node {node + 1} accepted it {late:.2f}s after the revocation")
                            pending.discard(node)
                elif r.status in (401, 403):
                    if r.code() not in codes:
                        self.rec.note(f"{kind} refused with {r.code()}")
                    self.record_latency(kind, node, t_ack, r.t_end)
                    pending.discard(node)
                elif r.status == 503:
                    if "retry-after" not in r.headers:
                        self.rec.violate("503-without-retry-after", f"probe of node {node + 1}")
                else:
                    self.judge(r, f"probe {kind}", (), node)
                    pending.discard(node)
            time.sleep(0.02)
        for node in pending:
            if not self.rec.in_fault(t_ack, now(), ("node-kill",) + DB_FAULTS, [node]):
                self.rec.violate("revocation-not-applied", f"{kind}: node {node + 1} never refused it")
        # Once refused, refused for good: one more look at every node after the bound.
        wait = t_ack + REVOCATION_BOUND + 0.3 - now()
        if wait > 0:
            time.sleep(wait)
        for node in range(3):
            try:
                r = h.request(self.c.node_ports[node], "GET", "/v1/resource", self.auth(key, token), timeout=5)
            except (OSError, http.client.HTTPException):
                continue
            self.rec.count(("probe", r.status))
            if r.status == 200:
                if not self.rec.in_fault(t_ack - 1, now(), DB_FAULTS, [node]):
                    self.rec.violate("revoked-credential-accepted", f"{kind}: node {node + 1} accepted it again")
            elif r.status not in (401, 403):
                self.judge(r, f"probe {kind}", (), node)

    def record_latency(self, kind, node, t_ack, t_seen):
        """Acknowledged change -> first answer of NODE that shows it; kept apart when the
        node was in a fault meanwhile (killed, or without its database)."""
        if self.rec.in_fault(t_ack - 1, t_seen, ("node-kill",) + DB_FAULTS, [node], grace=1.0):
            kind += " (node in a fault)"
        self.rec.measure(kind, t_seen - t_ack)

    # -- one worker's life
    def worker(self, idx):
        rng = random.Random(idx)
        h = Http()
        me = self.workers[idx]
        state = {"admin": None}
        session = None
        while not self.stop.is_set():
            if session is None:
                session = self.login(h, me["key"], me["email"])
                if session is None:
                    time.sleep(0.3)
                    continue
            for _ in range(rng.randint(5, 20)):
                if self.stop.is_set():
                    return
                r = self.call(h, "lb", "GET", "/v1/resource", self.auth(me["key"], session["access"]),
                              what="verify")
                if r is not None and r.status == 401:
                    session = None
                    break
            if session is None:
                continue
            if rng.random() < 0.5:
                r = self.call(h, "lb", "GET", "/auth/verify", self.auth(me["key"], session["access"]),
                              what="forward-auth")
            roll = rng.random()
            if roll < 0.40:
                session = self.refresh(h, rng, me, session)
            elif roll < 0.60:
                self.logout(h, me, session)
                session = None
            elif roll < 0.68:
                if self.revoke_key(h, state, me, session):
                    session = None
            elif roll < 0.76:
                self.rotate_key(h, state, me, session)
            elif roll < 0.84:
                self.disable_enable(h, state, me, session)
            else:
                self.admin(h, state, "PATCH", f"/admin/keys/{me['key_id']}",
                           {"metadata": {"soak": rng.randint(0, 10 ** 6)}})

    def refresh(self, h, rng, me, session):
        old = session["refresh"]
        if rng.random() < 0.25:
            return self.double_spend(h, me, session)
        r = self.call(h, "lb", "POST", "/api/authentication/refresh", {"x-api-key": me["key"]},
                      {"refreshToken": old}, what="refresh")
        if r is None or r.status != 200:
            return None
        j = r.json()
        fresh = {"access": j["accessToken"], "refresh": j["refreshToken"]}
        if rng.random() < 0.3:
            # Reuse of the spent refresh token, on one node directly: refused, and the whole
            # session revoked everywhere (its new access token too).
            node = rng.randrange(3)
            r = self.call(h, node, "POST", "/api/authentication/refresh", {"x-api-key": me["key"]},
                          {"refreshToken": old}, what="refresh reuse", expect=(401,))
            if r is None:
                return fresh
            if r.status == 200:
                self.rec.violate("refresh-token-spent-twice", f"a spent refresh token was honoured by node {node + 1}")
            if r.status == 401:
                if r.code() != "invalid_refresh_token":
                    self.rec.violate("unexpected-answer", f"refresh reuse: {r.body[:200]!r}")
                self.probe_refused(h, me["key"], fresh["access"], r.t_end, "session revoked by refresh reuse",
                                   ("token_revoked",))
                return None
        return fresh

    def double_spend(self, h, me, session):
        """One refresh token presented to two nodes at once: at most one is honoured."""
        nodes = random.sample(range(3), 2)
        results = [None, None]

        def go(slot, node):
            results[slot] = self.call(Http(), node, "POST", "/api/authentication/refresh",
                                      {"x-api-key": me["key"]}, {"refreshToken": session["refresh"]},
                                      what="refresh race", expect=(200, 401))

        threads = [threading.Thread(target=go, args=(s, n)) for s, n in enumerate(nodes)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ok = [r for r in results if r is not None and r.status == 200]
        self.rec.count(("refresh race", f"{len(ok)} honoured"))
        if len(ok) > 1:
            self.rec.violate("refresh-token-spent-twice", f"nodes {nodes[0] + 1} and {nodes[1] + 1} both honoured one")
        # Either the loser's reuse revoked the session, or one failed for a fault: log in again.
        return None

    def logout(self, h, me, session):
        r = self.call(h, "lb", "POST", "/api/authentication/logout", self.auth(me["key"], session["access"]),
                      what="logout", expect=(204,))
        if r is None or r.status != 204:
            return
        self.probe_refused(h, me["key"], session["access"], r.t_end, "logout", ("token_revoked",))
        r = self.call(h, "lb", "POST", "/api/authentication/refresh", {"x-api-key": me["key"]},
                      {"refreshToken": session["refresh"]}, what="refresh after logout", expect=(401,))

    def revoke_key(self, h, state, me, session):
        r = self.admin(h, state, "POST", f"/admin/keys/{me['key_id']}/revoke", {"reason": "soak"})
        if r is None or r.status != 200:
            return False
        self.probe_refused(h, me["key"], session["access"], r.t_end, "key revocation", ("api_key_revoked",))
        for _ in range(20):
            r = self.admin(h, state, "POST", "/admin/keys",
                           {"name": f"soak-{me['n']}", "environment": "production", "application": me["app"]},
                           expect=(200, 201))
            if r is not None and r.status in (200, 201):
                j = r.json()
                me["key"], me["key_id"] = j["key"], j["id"]
                return True
            time.sleep(0.5)
        raise RuntimeError("could not make a new key after a revocation")

    def rotate_key(self, h, state, me, session):
        r = self.admin(h, state, "POST", f"/admin/keys/{me['key_id']}/rotate", {"grace": 0}, expect=(200, 201))
        if r is None or r.status not in (200, 201):
            return
        old = me["key"]
        j = r.json()
        me["key"], me["key_id"] = j["key"], j["id"]
        self.probe_refused(h, old, session["access"], r.t_end, "key rotation, grace 0", ("api_key_expired",))

    def disable_enable(self, h, state, me, session):
        r = self.admin(h, state, "POST", f"/admin/keys/{me['key_id']}/disable", expect=(200, 204))
        if r is None or r.status not in (200, 204):
            return
        self.probe_refused(h, me["key"], session["access"], r.t_end, "key disabled", ("api_key_disabled",))
        for _ in range(40):
            r = self.admin(h, state, "POST", f"/admin/keys/{me['key_id']}/enable", expect=(200, 204))
            if r is not None and r.status in (200, 204):
                break
            time.sleep(0.5)
        else:
            raise RuntimeError("could not enable a key again")
        # Enabled again: every node accepts the key and its session's token again.
        t_ack = r.t_end
        pending = set(range(3))
        while pending and not self.stop.is_set():
            for node in sorted(pending):
                try:
                    p = h.request(self.c.node_ports[node], "GET", "/v1/resource",
                                  self.auth(me["key"], session["access"]), timeout=5)
                except (OSError, http.client.HTTPException):
                    p = None
                if p is not None and p.status == 200:
                    self.record_latency("key enabled again", node, t_ack, p.t_end)
                    pending.discard(node)
                elif now() - t_ack > self.args.max_staleness + 10:
                    if not self.rec.in_fault(t_ack, now(), ("node-kill",) + DB_FAULTS, [node]):
                        self.rec.violate("enable-not-applied", f"node {node + 1} still refuses an enabled key")
                    pending.discard(node)
            time.sleep(0.02)

    def usage_worker(self):
        """Verifies with a key of its own through nginx, counting every 2xx by node."""
        h = Http()
        u = self.usage
        session = None
        while not self.stop.is_set():
            if session is None:
                t = now()
                try:
                    r = h.request(self.c.lb_port, "POST", "/api/authentication/login", {"x-api-key": u["key"]},
                                  {"username": u["email"], "password": PASSWORD})
                except (OSError, http.client.HTTPException):
                    self.usage_unknown += 1
                    time.sleep(0.2)
                    continue
                self.judge(r, "login", (200,), "lb")
                self.count_usage(r)
                if r.status == 200:
                    session = r.json()["accessToken"]
                else:
                    time.sleep(0.2)
                continue
            t = now()
            try:
                r = h.request(self.c.lb_port, "GET", "/v1/resource", self.auth(u["key"], session))
            except (OSError, http.client.HTTPException) as e:
                self.usage_unknown += 1
                self.rec.count(("usage verify", "no-answer"))
                if not self.rec.in_fault(t, now(), ("node-kill",) + DB_FAULTS):
                    self.rec.violate("no-answer", f"usage verify: {e}")
                continue
            self.judge(r, "usage verify", (200,), "lb")
            self.count_usage(r)
            if r.status == 401:
                session = None
            time.sleep(self.args.usage_pause)

    def count_usage(self, r):
        if 200 <= r.status < 300:
            port = r.upstream.split(",")[-1].strip().rsplit(":", 1)[-1]
            with self.lock:
                self.usage_ok[port] += 1
                self.usage_times.append((r.t_end, port))
        elif r.status in (502, 504):
            pass  # nginx's own answer: no node saw it through

    # -- faults
    def wait_serving(self, nodes, t_fault, limit=60):
        """Until each node of NODES answers /readyz 200 and a protected request 200 directly."""
        h = Http()
        u = self.probe_creds
        for node in nodes:
            while True:
                if now() - t_fault > limit:
                    return None
                try:
                    ready = h.request(self.c.node_ports[node], "GET", "/readyz", timeout=3)
                    if ready.status == 200:
                        r = h.request(self.c.node_ports[node], "GET", "/v1/resource",
                                      self.auth(u["key"], u["access"]), timeout=3)
                        if r.status == 200:
                            break
                except (OSError, http.client.HTTPException):
                    pass
                time.sleep(0.05)
        return now() - t_fault

    def faults(self, t_end):
        """The fault schedule: cycles of (kill -9 a node and restart it; restart PostgreSQL;
        cut node 1's database link for --cut seconds), one fault at a time."""
        cycle = 0
        kinds = self.args.faults.split(",")
        step = self.args.fault_every
        next_at = now() + self.args.first_fault
        while now() + self.args.cut + 15 < t_end:
            if self.stop.wait(max(0.0, next_at - now())):
                return
            kind = kinds[cycle % len(kinds)]
            n = cycle // len(kinds)
            if kind == "kill":
                node = n % 3
                f = self.rec.fault_begin("node-kill", [node], f"kill -9 node {node + 1}")
                self.c.kill_node(node)
                time.sleep(1.0)
                self.c.start_node(node)
                rec = self.wait_serving([node], f["start"])
            elif kind == "postgres":
                f = self.rec.fault_begin("postgres-restart", [0, 1, 2], "pg_ctl restart -m fast")
                self.c.restart_postgres()
                rec = self.wait_serving([0, 1, 2], f["start"])
            else:
                modes = self.args.cut_modes.split(",")
                mode = modes[n % len(modes)]
                f = self.rec.fault_begin("db-link-cut", [0], f"node 1's database link cut ({mode}) "
                                                            f"for {self.args.cut}s")
                self.c.proxy.cut(mode)
                time.sleep(self.args.cut)
                self.c.proxy.restore()
                rec = self.wait_serving([0], f["start"])
            if rec is None:
                self.rec.violate("not-recovered", f"{f['detail']}: a node did not serve again within 60 s")
            self.rec.fault_end(f, rec)
            cycle += 1
            next_at = now() + step


# ---------------------------------------------------------------- main


def percentile(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--max-staleness", type=int, default=5)
    ap.add_argument("--cut", type=float, default=8)
    ap.add_argument("--faults", default="kill,postgres,cut",
                    help="comma-separated fault kinds, taken in turn: kill, postgres, cut")
    ap.add_argument("--cut-modes", default="drop,blackhole",
                    help="comma-separated, used in turn: drop (RST), blackhole, close (FIN on accept)")
    ap.add_argument("--first-fault", type=float, default=6)
    ap.add_argument("--fault-every", type=float, default=12)
    ap.add_argument("--usage-pause", type=float, default=0.005)
    args = ap.parse_args()

    t0 = now()
    rec = Recorder(t0)
    c = Cluster(args, rec)
    driver = Driver(c, rec, args)
    ok = False

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    try:
        print(f"== PostgreSQL ({c.pg_bin}) on port {c.pg_port}", flush=True)
        c.start_postgres()
        c.proxy = CutProxy(c.pg_port)
        c.cli("migrate")
        print("== users and keys", flush=True)
        c.admin_email = "soak-admin@example.com"
        c.cli("users", "create", "--email", c.admin_email, "--admin", "--password-stdin", stdin=PASSWORD + "\n")

        def key(name):
            return json.loads(c.cli("keys", "create", "--name", name, "--env", "production", "--json"))

        admin_key = key("soak-admin")
        driver.admin_key, driver.admin_email = admin_key["key"], c.admin_email
        driver.workers = []
        for n in range(args.workers + 2):
            email = f"soak-{n}@example.com"
            c.cli("users", "create", "--email", email, "--password-stdin", stdin=PASSWORD + "\n")
            k = key(f"soak-{n}")
            driver.workers.append({"n": n, "email": email, "key": k["key"], "key_id": k["id"],
                                   "app": k["application"]})
        driver.usage = driver.workers.pop()
        probe = driver.workers.pop()
        print(f"== nodes on ports {c.node_ports} (node 1 through the TCP proxy on {c.proxy.port}), "
              f"nginx on {c.lb_port}", flush=True)
        for i in range(3):
            c.start_node(i)
        c.start_nginx()
        h = Http()
        s = driver.login(h, probe["key"], probe["email"])
        if s is None:
            raise RuntimeError("the first login failed")
        driver.probe_creds = {"key": probe["key"], "access": s["access"]}

        print(f"== workload: {args.workers} workers + 1 usage counter for {args.duration:.0f}s; faults from "
              f"t={args.first_fault:.0f}s, one every {args.fault_every:.0f}s after the previous recovered", flush=True)
        t_start = now()
        t_end = t_start + args.duration
        jobs = [(driver.worker, (i,)) for i in range(args.workers)] + [(driver.usage_worker, ())]

        def guarded(fn):
            def run(*a):
                try:
                    fn(*a)
                except Exception as e:  # a driver bug must not pass silently
                    rec.violate("driver-error", f"{fn.__name__}: {type(e).__name__}: {e}")
            return run

        threads = [threading.Thread(target=guarded(fn), args=a, daemon=True) for fn, a in jobs]
        faults = threading.Thread(target=guarded(driver.faults), args=(t_end,), daemon=True)
        for t in threads:
            t.start()
        faults.start()
        last = now()
        while now() < t_end:
            time.sleep(min(1.0, max(0.0, t_end - now())))
            if now() - last >= 30:
                last = now()
                total = sum(rec.counts.values())
                print(f"[t={rec.rel(now()):7.2f}s] {total} answers, {sum(rec.violation_kinds.values())} violations",
                      flush=True)
        driver.stop.set()
        faults.join(timeout=120)
        for t in threads:
            t.join(timeout=60)
        elapsed = now() - t_start

        print("== stopping the nodes (SIGTERM: usage flushed)", flush=True)
        codes = c.stop_nodes()
        for i, code in codes.items():
            if code != 0:
                rec.violate("shutdown", f"node {i + 1} exited with {code} on SIGTERM")
        for line in c.panics():
            rec.violate("panic", line)
        usage = json.loads(c.cli("keys", "usage", driver.usage["key_id"], "--since", "1d", "--json"))
        server_ok = usage["totals"]["success"]
        client_ok = sum(driver.usage_ok.values())
        # What a kill -9 may lose: the answers of the killed node within one flush
        # interval (plus a second of slack) before the kill.
        allowance = 0
        port_of = {i: str(p) for i, p in enumerate(c.node_ports)}
        for f in rec.faults:
            if f["kind"] == "node-kill":
                node = next(iter(f["nodes"]))
                allowance += sum(1 for t, port in driver.usage_times
                                 if port == port_of[node] and f["start"] - FLUSH_SECONDS - 1 <= t <= f["start"])
        lost = client_ok - server_ok
        if lost > allowance:
            rec.violate("usage-lost", f"{lost} successful requests missing from the usage totals, "
                                      f"more than the {allowance} the kills may lose")
        if -lost > driver.usage_unknown:
            rec.violate("usage-overcounted", f"usage totals hold {-lost} more successes than answered "
                                             f"({driver.usage_unknown} requests without a clear answer)")

        # -- summary
        print()
        print("== soak summary")
        print(f"duration {elapsed:.0f}s, {args.workers} workers, binary {args.bin}")
        total = sum(rec.counts.values())
        print(f"answers: {total} ({total / elapsed:.0f}/s)")
        by_op = defaultdict(dict)
        for (op, status), n in rec.counts.items():
            by_op[op][status] = n
        for op in sorted(by_op):
            print(f"  {op:32s} " + ", ".join(f"{s}: {n}" for s, n in sorted(by_op[op].items(), key=str)))
        print("faults (time to every affected node serving again):")
        for f in rec.faults:
            rv = "not recovered" if f["recovery"] is None else f"{f['recovery']:.2f}s"
            print(f"  t={rec.rel(f['start']):7.2f}s {f['detail']:55s} recovery {rv}")
        for kind in ("node-kill", "postgres-restart", "db-link-cut"):
            vals = [f["recovery"] for f in rec.faults if f["kind"] == kind and f["recovery"] is not None]
            if vals:
                print(f"  {kind}: {len(vals)} times, recovery p50 {statistics.median(vals):.2f}s, max {max(vals):.2f}s")
        print("acknowledged change -> seen by each node (probed directly), seconds, per node and change:")
        for kind, vals in sorted(rec.latency.items()):
            print(f"  {kind:40s} n={len(vals):4d} p50 {percentile(vals, 50):.3f} p99 {percentile(vals, 99):.3f} "
                  f"max {max(vals):.3f}")
        for note, n in sorted(rec.notes.items()):
            print(f"  note: {note}: {n}")
        print(f"usage (key used only by the usage counter): {client_ok} successes answered, {server_ok} in the "
              f"usage totals, {lost} missing; allowed by the kills: {allowance} (answers of a killed node within "
              f"{FLUSH_SECONDS + 1}s before its kill); {driver.usage_unknown} requests without a clear answer")
        races = by_op.get("refresh race", {})
        print(f"refresh token presented to two nodes at once: {races.get('1 honoured', 0)} times one honoured, "
              f"{races.get('0 honoured', 0)} times none, {races.get('2 honoured', 0)} times both")
        if rec.violations:
            print(f"VIOLATIONS ({sum(rec.violation_kinds.values())}):")
            for kind, n in sorted(rec.violation_kinds.items()):
                print(f"  {kind}: {n}")
            for v in rec.violations:
                print(f"  {v}")
            causes = c.failures()
            if causes:
                print("causes the nodes logged for failed requests (500):")
                for line in causes:
                    print(f"  {line}")
        else:
            print("no violations")
        ok = not rec.violations
    except KeyboardInterrupt as e:
        rec.closing = True
        print(f"interrupted ({e})", file=sys.stderr)
    finally:
        rec.closing = True
        driver.stop.set()
        c.shutdown()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
