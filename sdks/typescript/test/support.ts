/**
 * Test fixtures: the real `assetpool serve` (binary from `ASSETPOOL_BIN`) on
 * 127.0.0.1:0 with SQLite in a temporary folder, keys and users made with
 * its CLI, and small local HTTP servers of the tests' own.
 */

import { execFile, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, openSync } from "node:fs";
import { createServer } from "node:http";
import type { IncomingMessage, Server as HttpServer, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

export const PASSWORD = "violet-anchor-29-quartz";

/** The assetpool binary: `ASSETPOOL_BIN`, which the tests cannot run without. */
export function binary(): string {
  const bin = process.env.ASSETPOOL_BIN;
  if (bin === undefined || bin === "") {
    throw new Error("ASSETPOOL_BIN is not set: point it at an assetpool binary (cargo build -p assetpool-server)");
  }
  if (!existsSync(bin)) throw new Error(`ASSETPOOL_BIN names no file: ${bin}`);
  return bin;
}

export interface ServerOptions {
  tokenTtl?: number;
  environment?: "development" | "staging" | "production";
  extra?: string[];
}

export interface KeyJson {
  id: string;
  key: string;
  environment: string;
  application: string;
}

/** A running `assetpool serve` and its CLI against the same database. */
export class AssetpoolServer {
  readonly url: string;
  readonly dir: string;
  readonly database: string;
  readonly environment: string;
  readonly #child: ChildProcess;

  private constructor(url: string, dir: string, database: string, environment: string, child: ChildProcess) {
    this.url = url;
    this.dir = dir;
    this.database = database;
    this.environment = environment;
    this.#child = child;
  }

  static async start(options: ServerOptions = {}): Promise<AssetpoolServer> {
    const bin = binary();
    const dir = mkdtempSync(join(tmpdir(), "assetpool-ts-"));
    const database = `sqlite://${dir}/assetpool.db`;
    const environment = options.environment ?? "production";
    const stderr = openSync(join(dir, "server.stderr"), "w");
    const child = spawn(
      bin,
      [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database",
        database,
        "--environment",
        environment,
        "--token-ttl",
        String(options.tokenTtl ?? 3600),
        ...(options.extra ?? []),
      ],
      { stdio: ["ignore", "pipe", stderr] },
    );
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`no "listening on" line within 20 s; stderr: ${readFileSync(join(dir, "server.stderr"), "utf8")}`));
      }, 20_000);
      const lines = createInterface({ input: child.stdout! });
      lines.on("line", (line) => {
        const match = /^listening on (http:\/\/\S+)/.exec(line);
        if (match?.[1] !== undefined) {
          clearTimeout(timer);
          resolve(match[1]);
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`the server exited (${code}) before listening; stderr: ${readFileSync(join(dir, "server.stderr"), "utf8")}`));
      });
    });
    return new AssetpoolServer(url, dir, database, environment, child);
  }

  /** Runs `assetpool ARGS --database DB`, with `stdin` as its input; its stdout. */
  cli(args: string[], stdin?: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = execFile(binary(), [...args, "--database", this.database], { timeout: 30_000 }, (error, stdout, stderr) => {
        if (error) reject(new Error(`assetpool ${args.join(" ")} failed: ${stderr}`));
        else resolve(stdout);
      });
      child.stdin?.end(stdin ?? "");
    });
  }

  async createKey(extra: string[] = []): Promise<KeyJson> {
    const env = { production: "prod", staging: "stg", development: "dev" }[this.environment] ?? "prod";
    return JSON.parse(await this.cli(["keys", "create", "--name", "sdk-test", "--env", env, "--json", ...extra])) as KeyJson;
  }

  async createUser(email: string, extra: string[] = []): Promise<void> {
    await this.cli(["users", "create", "--email", email, "--password-stdin", "--json", ...extra], `${PASSWORD}\n`);
  }

  stderr(): string {
    return readFileSync(join(this.dir, "server.stderr"), "utf8");
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode === null) {
      const exited = new Promise((resolve) => this.#child.once("exit", resolve));
      this.#child.kill("SIGKILL");
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A `fetch` that records every request it passes on (method and path). */
export function countingFetch(): { fetch: typeof globalThis.fetch; calls: { method: string; path: string; status: number }[] } {
  const calls: { method: string; path: string; status: number }[] = [];
  const wrapped: typeof globalThis.fetch = async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const response = await globalThis.fetch(input, init);
    calls.push({ method: init?.method ?? "GET", path: url.pathname, status: response.status });
    return response;
  };
  return { fetch: wrapped, calls };
}

/** A local HTTP server of the test's own; `url` is its base URL. */
export async function stubServer(
  handler: (request: IncomingMessage, response: ServerResponse, body: string) => void,
): Promise<{ url: string; close: () => Promise<void>; server: HttpServer }> {
  const server = createServer((request, response) => {
    let body = "";
    request.setEncoding("utf8");
    request.on("data", (chunk: string) => (body += chunk));
    request.on("end", () => handler(request, response, body));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Answers `status` with a JSON body. */
export function json(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  response.writeHead(status, { "content-type": "application/json", ...headers });
  response.end(JSON.stringify(body));
}

/** A token answer of a stub server. */
export function tokens(n: number, expiresIn = 3600): Record<string, unknown> {
  return { accessToken: `at-${n}`, expiresIn, tokenType: "Bearer", refreshToken: `rt-${n}` };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
