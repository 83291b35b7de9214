"""Real servers for the server-mode tests: ``chroma run`` and ``python -m llama_cpp.server``.

Each starts on a free loopback port, is waited for until it answers (Chroma's
heartbeat, the LLM server's model list), and is stopped when its ``with``
block ends, whatever happened inside.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 120.0) -> None:
    """Poll ``url`` until it answers 200; fail with the server's log if it dies or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s:\n{log.read_text()[-2000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def running(command: list[str], ready_url: str, log: Path, env: dict[str, str] | None = None,
            timeout: float = 120.0) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                   env={**os.environ, **(env or {})})
    try:
        wait_for(ready_url, process, log, timeout)
        yield process
    finally:
        stop(process)


@contextmanager
def chroma_server(path: Path, log: Path, port: int | None = None) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``chroma run`` on ``port`` (default: a free one); yields its URL and process."""
    port = port or free_port()
    chroma = Path(sys.executable).parent / "chroma"
    command = [str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with running(command, f"{url}/api/v2/heartbeat", log) as process:
        yield url, process


@contextmanager
def llm_server(model: Path, log: Path, port: int | None = None) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """llama-cpp-python's OpenAI-compatible server on ``port`` (default: a free one); yields its /v1 URL and process."""
    port = port or free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
               "--port", str(port), "--n_ctx", "4096", "--n_threads", "1", "--n_threads_batch", "1",
               "--logits_all", "False"]
    url = f"http://127.0.0.1:{port}/v1"
    with running(command, f"{url}/models", log) as process:
        yield url, process


def run_qa(*args: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """The ``qa`` command as a user runs it."""
    return subprocess.run([sys.executable, "-m", "qa", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=ROOT)


class Relay:
    """A TCP relay on a free loopback port in front of ``port``, which can break a reply off mid-stream.

    After :meth:`cut_next_reply`, the next reply is relayed up to the end of its second server-sent
    event (the first words of an answer) and then the connection is dropped, as a server that dies
    in the middle of an answer drops it; ``cut`` is set when that happened. A relay whose server is
    down closes each connection at once, as the server's own port would refuse it.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.cut = threading.Event()
        self._cut_next = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_next_reply(self) -> None:
        self.cut.clear()
        self._cut_next = True

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
        self._pump(upstream, client, True)

    def _pump(self, source: socket.socket, sink: socket.socket, replies: bool) -> None:
        held = b""
        try:
            while data := source.recv(65536):
                if replies and self._cut_next and (held or b"data:" in data):
                    held += data
                    end = _after_second_event(held)
                    if end is None:
                        continue
                    self._cut_next = False
                    sink.sendall(held[:end])
                    self.cut.set()
                    break
                sink.sendall(data)
            if held and not self.cut.is_set():
                sink.sendall(held)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                end.close()


def _after_second_event(data: bytes) -> int | None:
    """Where the second server-sent event of ``data`` ends, if it is there yet."""
    at = data.find(b"data:")
    for _ in range(2):
        if at < 0:
            return None
        end = data.find(b"\r\n\r\n", at)
        end = data.find(b"\n\n", at) if end < 0 else end
        if end < 0:
            return None
        at = data.find(b"data:", end)
        last = end + 4 if data[end:end + 2] == b"\r\n" else end + 2
    return last
