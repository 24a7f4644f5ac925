"""The README's example, run as written against the real server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import Account

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_example_runs(account: Account, tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 1, "the README has one complete Python example"
    script = tmp_path / "example.py"
    script.write_text(blocks[0])
    env = dict(os.environ)
    env.update(
        ASSETPOOL_URL=account.server.url,
        ASSETPOOL_API_KEY=account.api_key,
        ASSETPOOL_USERNAME=account.username,
        ASSETPOOL_PASSWORD=account.password,
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert f"signed in as {account.username}" in done.stdout
    assert "refused: 403 forbidden" in done.stdout
    assert "logins: 1" in done.stdout
    assert "refused: 401 missing_token" not in done.stdout
    assert "401 {'error': 'missing_token'" in done.stdout
    for secret in (account.api_key, account.password):
        assert secret not in done.stdout and secret not in done.stderr
