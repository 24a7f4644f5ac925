"""Fixtures: the real `assetpool` binary (ASSETPOOL_BIN), serving on 127.0.0.1:0
with SQLite in a temporary folder; keys and users made with its CLI."""

from __future__ import annotations

import itertools
import json
import os
import queue
import subprocess
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

PASSWORD = "correct horse battery staple 42"
_counter = itertools.count()

def binary() -> str:
    path = os.environ.get("ASSETPOOL_BIN")
    if not path or not os.access(path, os.X_OK):
        pytest.fail(
            "ASSETPOOL_BIN must name the assetpool binary "
            "(cargo build -p assetpool-server --bin assetpool; target/debug/assetpool)"
        )
    return path

@dataclass
class Server:
    """A running `assetpool serve` and its database."""

    url: str
    database: str
    process: subprocess.Popen

    def cli(self, *args: str, stdin: Optional[str] = None) -> str:
        env = {name: value for name, value in os.environ.items() if not name.startswith("ASSETPOOL_")}
        done = subprocess.run(
            [binary(), "--database", self.database, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        if done.returncode != 0:
            raise AssertionError(f"assetpool {' '.join(args)} failed: {done.stderr}")
        return done.stdout

    def create_key(self, *extra: str) -> str:
        name = f"key-{next(_counter)}"
        created = json.loads(
            self.cli("keys", "create", "--name", name, "--env", "production", "--json", *extra)
        )
        return created["key"]

    def create_user(self, *extra: str) -> str:
        email = f"user{next(_counter)}@example.com"
        self.cli("users", "create", "--email", email, "--password-stdin", "--json", *extra, stdin=PASSWORD + "\n")
        return email

def _start(tmp: Path, token_ttl: int) -> Iterator[Server]:
    database = f"sqlite://{tmp}/assetpool.db"
    env = {name: value for name, value in os.environ.items() if not name.startswith("ASSETPOOL_")}
    stderr = open(tmp / "server.stderr", "wb")
    process = subprocess.Popen(
        [
            binary(),
            "--database",
            database,
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--token-ttl",
            str(token_ttl),
        ],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=env,
    )
    lines: "queue.Queue[str]" = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 30
    url = None
    while url is None:
        left = deadline - time.monotonic()
        if left <= 0 or process.poll() is not None:
            process.kill()
            raise AssertionError(
                f"the server did not start: {(tmp / 'server.stderr').read_text(errors='replace')}"
            )
        try:
            line = lines.get(timeout=min(left, 0.5))
        except queue.Empty:
            continue
        if line.startswith("listening on "):
            url = line.split(" ", 2)[2].strip()
    try:
        yield Server(url=url, database=database, process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        stderr.close()

@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose tokens live 60 s."""
    yield from _start(tmp_path_factory.mktemp("server"), token_ttl=60)

@pytest.fixture(scope="session")
def short_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose tokens live 3 s."""
    yield from _start(tmp_path_factory.mktemp("short"), token_ttl=3)

@dataclass
class Account:
    server: Server
    api_key: str
    username: str
    password: str = PASSWORD

@pytest.fixture
def account(server: Server) -> Account:
    return Account(server, server.create_key(), server.create_user())

@pytest.fixture
def short_account(short_server: Server) -> Account:
    return Account(short_server, short_server.create_key(), short_server.create_user())

class Stub:
    """A scripted HTTP server of the test's own: `answers[path]` is a list of
    (status, headers, body) given in turn (the last one repeats); every request
    is recorded as (method, path, headers, monotonic time)."""

    def __init__(self) -> None:
        self.answers: Dict[str, List[Tuple[int, Dict[str, str], object]]] = {}
        self.calls: List[Tuple[str, str, Dict[str, str], float]] = []
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                with stub.lock:
                    stub.calls.append((self.command, self.path, dict(self.headers), time.monotonic()))
                    script = stub.answers.get(self.path, [(404, {}, {"error": "not_found", "message": "not found"})])
                    status, headers, body = script.pop(0) if len(script) > 1 else script[0]
                payload = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if body is not None:
                    self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def calls_to(self, path: str) -> List[Tuple[str, str, Dict[str, str], float]]:
        with self.lock:
            return [call for call in self.calls if call[1] == path]

def tokens(number: int, expires_in: int = 3600) -> Dict[str, object]:
    return {
        "accessToken": f"t{number}",
        "expiresIn": expires_in,
        "tokenType": "Bearer",
        "refreshToken": f"r{number}",
    }

@pytest.fixture
def stub() -> Iterator[Stub]:
    server = Stub()
    try:
        yield server
    finally:
        server.http.shutdown()
        server.http.server_close()

class LoginCounter:
    """An httpx event hook counting requests by path."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.paths: Dict[str, int] = {}

    def __call__(self, request) -> None:  # type: ignore[no-untyped-def]
        with self.lock:
            self.paths[request.url.path] = self.paths.get(request.url.path, 0) + 1

    async def async_hook(self, request) -> None:  # type: ignore[no-untyped-def]
        self(request)

    def count(self, path: str) -> int:
        with self.lock:
            return self.paths.get(path, 0)

@pytest.fixture
def counter() -> LoginCounter:
    return LoginCounter()
