"""`alphacut keys ...` and `alphacut serve`, end to end in subprocesses."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from servers import free_port

EXE = str(Path(sys.executable).with_name("alphacut"))


def run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ALPHACUT_DATA_DIR": str(data_dir)}
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=env, timeout=120)


def test_keys_lifecycle(tmp_path: Path) -> None:
    created = run(tmp_path, "keys", "create", "--name", "ci", "--stage", "live")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert re.fullmatch(r"live_[A-Za-z0-9]{40}", secret)
    key_id = re.search(r"(key_[a-z0-9]{12})", created.stderr)
    assert key_id is not None
    listing = json.loads(run(tmp_path, "keys", "list", "--json").stdout)
    assert [(k["id"], k["name"], k["stage"], k["revoked_at"]) for k in listing] == [
        (key_id.group(1), "ci", "live", None)
    ]
    assert listing[0]["prefix"] == secret[:9]
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("alphacut.db*"))
    assert secret.encode() not in stored, "only a hash is stored"
    assert "ci" in run(tmp_path, "keys", "list").stdout
    assert json.loads(run(tmp_path, "keys", "usage", "--json").stdout) == []
    assert run(tmp_path, "keys", "revoke", key_id.group(1)).returncode == 0
    revoked = json.loads(run(tmp_path, "keys", "list", "--json").stdout)[0]
    assert revoked["revoked_at"] is not None
    again = run(tmp_path, "keys", "revoke", key_id.group(1))
    assert again.returncode == 1 and "no active key" in again.stderr
    bad = run(tmp_path, "keys", "create", "--stage", "prod")
    assert bad.returncode == 2 and "test or live" in bad.stderr


def test_serve_creates_a_first_key_and_answers(tmp_path: Path, photo: Path) -> None:
    port = free_port()
    env = {**os.environ, "ALPHACUT_DATA_DIR": str(tmp_path)}
    process = subprocess.Popen(
        [EXE, "serve", "--port", str(port)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            lines.append(line)
            if "Uvicorn running" in line or not line:
                break
        text = "".join(lines)
        secret = re.search(r"(test_[A-Za-z0-9]{40})", text)
        assert secret, text
        assert f"curl -s -H 'x-api-key: {secret.group(1)}'" in text
        base = f"http://127.0.0.1:{port}"
        response = httpx.post(
            f"{base}/v1/images/upload",
            headers={"x-api-key": secret.group(1)},
            data={"name": "p"},
            files={"image": ("p.jpg", photo.read_bytes())},
        )
        assert response.status_code == 201
        assert (tmp_path / "alphacut.db").exists() and (tmp_path / "blobs").is_dir()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        if process.stderr:
            process.stderr.close()
    second = subprocess.Popen(
        [EXE, "serve", "--port", str(port)], stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert second.stderr is not None
        line = ""
        while "Uvicorn running" not in line:
            line = second.stderr.readline()
            assert "No API key existed" not in line, "only an empty data directory gets a key"
            if not line:
                break
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
        if second.stderr:
            second.stderr.close()


def test_serve_prints_the_page_link_and_keeps_credentials_out_of_logs(tmp_path: Path) -> None:
    """The page's key is printed as ``/#key=...``; a second server that cannot start (port in
    use) leaves the first one's key working; access logs shorten /p/ and /results/ tokens;
    a clean stop revokes the page's key."""
    port = free_port()
    env = {**os.environ, "ALPHACUT_DATA_DIR": str(tmp_path)}
    first = subprocess.Popen(
        [EXE, "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert first.stderr is not None
        lines: list[str] = []
        while not lines or ("Uvicorn running" not in lines[-1] and lines[-1]):
            lines.append(first.stderr.readline())
        link = re.search(
            rf"http://127\.0\.0\.1:{port}/#key=(test_[A-Za-z0-9]{{40}})", "".join(lines)
        )
        assert link, "".join(lines)
        page_key = link.group(1)
        second = subprocess.run(
            [EXE, "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert second.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port}" in second.stderr
        assert "#key=" not in second.stderr, "it created no key"
        base = f"http://127.0.0.1:{port}"
        mine = httpx.get(f"{base}/v1/images", headers={"x-api-key": page_key}, timeout=60)
        assert mine.status_code == 200, "the running server's key still works"
        proxied = httpx.get(f"{base}/web/local-key", headers={"Host": f"127.0.0.1:{port}"})
        assert proxied.status_code == 404, "what a local reverse proxy sends gets no key"
        published, result = "Pub1" + "x" * 39, "Res1" + "0" * 44
        assert httpx.get(f"{base}/p/{published}").status_code == 404
        assert httpx.get(f"{base}/results/{result}.png").status_code == 404
    finally:
        first.send_signal(signal.SIGTERM)
        out, errors = first.communicate(timeout=60)
    logs = out + errors
    assert "/p/Pub1… HTTP/1.1" in logs and "/results/Res1… HTTP/1.1" in logs
    assert published not in logs and result not in logs
    listing = json.loads(run(tmp_path, "keys", "list", "--json").stdout)
    page = [k for k in listing if k["prefix"] == page_key[:9]]
    assert len(page) == 1 and page[0]["revoked_at"] is not None, "revoked when it stopped"
