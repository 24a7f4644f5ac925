"""Checks the clients generated from the OpenAPI document (.ci/openapi).

usage: openapi_clients.py DOCUMENT PYTHON_DIR TS_DIR

- Python (openapi-python-client, package `assetpool_api` in PYTHON_DIR): every
  operation has its module, which imports and has `sync_detailed` and
  `asyncio_detailed`; an operation with a request body takes a typed `body`
  (a generated model, or a list of them), never `Any`; an operation with a JSON
  success answer returns a typed value, never `Any`.
- TypeScript (openapi-typescript's TS_DIR/schema.d.ts): writes
  TS_DIR/operations.ts, which `tsc --strict` then compiles: it fails unless
  every operation, each request body and each documented response content is
  a type other than `unknown` or `never`, and unless `ErrorCode` accepts any string.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import sys
import typing
from pathlib import Path

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def snake(name: str) -> str:
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return re.sub(r"[^a-zA-Z0-9]+", "_", name).strip("_").lower()


def operations(document: dict):
    for path, item in sorted(document["paths"].items()):
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def annotation_text(annotation: object) -> str:
    return annotation if isinstance(annotation, str) else repr(annotation)


def check_python(document: dict, python_dir: Path) -> list:
    problems = []
    sys.path.insert(0, str(python_dir))
    package = importlib.import_module("assetpool_api")
    api_dir = Path(package.__file__).parent / "api"
    modules = {path.stem: path for path in api_dir.glob("*/*.py") if path.stem != "__init__"}
    count = 0
    for path, method, operation in operations(document):
        count += 1
        label = f"{method.upper()} {path}"
        operation_id = operation.get("operationId")
        if not operation_id:
            problems.append(f"python: {label} has no operationId")
            continue
        file = modules.get(snake(operation_id))
        if file is None:
            problems.append(f"python: {label} ({operation_id}) has no module")
            continue
        module = importlib.import_module(
            f"assetpool_api.api.{file.parent.name}.{file.stem}"
        )
        for function in ("sync_detailed", "asyncio_detailed", "sync"):
            if not callable(getattr(module, function, None)):
                problems.append(f"python: {label}: no {function}")
        if problems and problems[-1].startswith(f"python: {label}"):
            continue
        hints = typing.get_type_hints(module.sync_detailed)
        if "requestBody" in operation:
            body = hints.get("body")
            text = annotation_text(body)
            if body is None or "Any" in text or body is dict:
                problems.append(f"python: {label}: request body not typed ({text})")
            elif not ("assetpool_api.models" in text or "list[" in text.lower()):
                problems.append(f"python: {label}: request body is not a model ({text})")
        json_success = any(
            status.startswith("2") and "application/json" in answer.get("content", {})
            for status, answer in operation["responses"].items()
        )
        if json_success:
            returned = annotation_text(typing.get_type_hints(module.sync).get("return"))
            if returned == "None" or "Any" in returned:
                problems.append(f"python: {label}: answer not typed ({returned})")
    for model in ("OAuthTokenForm", "IntrospectionForm"):
        if not hasattr(importlib.import_module("assetpool_api.models"), model):
            problems.append(f"python: no model {model} for a form body")
    print(f"python: {count} operations checked")
    return problems


def write_typescript_checks(document: dict, ts_dir: Path) -> int:
    lines = [
        'import type { paths, components } from "./schema";',
        "type Known<T> = [T] extends [never] ? false : unknown extends T ? false : true;",
        'const errorCodeIsOpen: string extends components["schemas"]["ErrorCode"] ? true : false = true;',
    ]
    count = 0
    for index, (path, method, operation) in enumerate(operations(document)):
        count += 1
        target = f"paths[{json.dumps(path)}][{json.dumps(method)}]"
        lines.append(f"// {method.upper()} {path}")
        lines.append(f"const op{index}: Known<{target}> = true;")
        for content_type in operation.get("requestBody", {}).get("content", {}):
            lines.append(
                f"const op{index}Body{len(lines)}: Known<NonNullable<{target}[\"requestBody\"]>"
                f"[\"content\"][{json.dumps(content_type)}]> = true;"
            )
        for status, answer in operation["responses"].items():
            for content_type in answer.get("content", {}):
                lines.append(
                    f"const op{index}Answer{len(lines)}: Known<{target}[\"responses\"][{status}]"
                    f"[\"content\"][{json.dumps(content_type)}]> = true;"
                )
    lines.append(
        "export const checked = [errorCodeIsOpen, "
        + ", ".join(f"op{index}" for index in range(count))
        + "];"
    )
    (ts_dir / "operations.ts").write_text("\n".join(lines) + "\n")
    print(f"typescript: {count} operations written for tsc")
    return count


def main() -> int:
    document_path, python_dir, ts_dir = (Path(arg) for arg in sys.argv[1:4])
    document = json.loads(document_path.read_text())
    problems = check_python(document, python_dir)
    write_typescript_checks(document, ts_dir)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
