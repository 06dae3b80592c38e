"""A small OpenAI-compatible server on 127.0.0.1 that replays scripted outputs and injects faults.

Owns: ``POST /v1/completions`` (plain JSON or server-sent events when the
request asks ``stream``), ``GET /v1/models`` (with a configurable
``max_model_len``) and ``GET /health``; per-token delays so requests take
time like a real server's (every request decodes in parallel, each finishes
on its own clock); and faults, consumed in order by the requests whose
prompt matches a rule:

- ``500``, ``502``, ``503``, ``429``: that HTTP status;
- ``context``: HTTP 400 "maximum context length exceeded" (vLLM's wording);
- ``die``: the connection is closed mid-answer (headers sent, body not);
- ``cut``: a body shorter than its Content-Length, then close;
- ``malformed``: HTTP 200 with a body that is not JSON;
- ``slow``: answers nothing until released (a read timeout for the client);
- ``stall``: a streamed answer that sends its first word, then nothing until released;
- ``bad_utf8``: a streamed answer whose first chunk holds bytes that are not UTF-8 (and a NUL);
- ``no_usage``: a normal answer without ``usage``;
- ``stop_left_in``: the answer keeps the stop string and what follows it.

"Released" means ``release()`` or ``close()`` was called (``slow_seconds``
only bounds a wait nobody ends): a stalled answer outlasts any client timeout
by construction, not by being long.  ``hold(match)`` makes every request whose
prompt contains ``match`` wait the same way (logged, unanswered), and
``wait_held(n)`` blocks until ``n`` requests are waiting at once: tests order
events on the server's state instead of on sleeps.

Every request is logged (``server.log``: prompt, fault, request body, arrival
time ``t``) so tests count attempts; a client that hangs up mid-answer is
logged too (``server.hangups``), never printed.  ``stop_listening`` closes the
listening socket (connections are refused; answers in progress go on) and
``listen_again`` opens it on the same port (a server restarted mid-run);
``down_at=n`` stops listening when the n-th request arrives, and no request
is answered before that: every later request meets the closed port.

For tests and benchmarks of the ``openai`` backend where the workload must be
exactly controlled; timings from it are not evidence about any real engine.
Does not know: the evaluator.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional


class FaultServer:
    """``rules``: [{"match": substring, "output": text, "faults": ["503", "die", ...]}], first match wins."""

    def __init__(self, rules: list[dict], delay_per_token: float = 0.0, max_model_len: Optional[int] = None,
                 slow_seconds: float = 300.0, port: int = 0, down_at: Optional[int] = None) -> None:
        self.rules, self.delay_per_token, self.max_model_len = rules, delay_per_token, max_model_len
        self.slow_seconds, self.down_at = slow_seconds, down_at
        self.log: list[dict] = []
        self.hangups = 0
        self._seen: dict[int, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._held = threading.Condition(self._lock)
        self.waiting = 0
        self._released = threading.Event()
        self._hold: Optional[str] = None
        self._down = threading.Event()   # set once the down_at-th request has closed the listening socket
        self._listen_lock = threading.Lock()
        self._open(port)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def _open(self, port: int) -> None:
        self.httpd = _Server(("127.0.0.1", port), _handler(self))
        self.httpd.daemon_threads = True
        self.httpd.handle_error = self._hangup
        self.listening = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _hangup(self, request, client_address) -> None:
        with self._lock:
            self.hangups += 1

    def stop_listening(self) -> None:
        """Close the listening socket: new connections are refused; answers in progress go on."""
        with self._listen_lock:
            if self.listening:
                self.httpd.shutdown()
                self.httpd.server_close()
                self.listening = False

    def listen_again(self) -> None:
        """Listen on the same port again (after ``stop_listening``)."""
        with self._listen_lock:
            if not self.listening:
                self._open(self.port)

    def close(self) -> None:
        """Stop listening and release every waiting answer (their handler threads end)."""
        self.release()
        self._down.set()
        self.stop_listening()

    def hold(self, match: str = "") -> None:
        """From now on, requests whose prompt contains ``match`` wait, logged and unanswered, until ``release()``."""
        self._released.clear()
        self._hold = match

    def release(self) -> None:
        """End every wait: held requests, ``slow`` and ``stall`` answers go on (and later ones do not wait)."""
        self._hold = None
        self._released.set()

    def wait_held(self, n: int, timeout: float) -> bool:
        """Block until ``n`` answers wait at once (held, ``slow`` or ``stall``); False if ``timeout`` passes first."""
        with self._held:
            return self._held.wait_for(lambda: self.waiting >= n, timeout)

    def _wait_released(self) -> None:
        with self._held:
            self.waiting += 1
            self._held.notify_all()
        try:
            self._released.wait(self.slow_seconds)
        finally:
            with self._held:
                self.waiting -= 1

    def __enter__(self) -> "FaultServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def plan(self, prompt: str) -> tuple[dict, Optional[str]]:
        """The rule for a prompt and the fault this attempt gets (None: answer normally)."""
        for index, rule in enumerate(self.rules):
            if rule.get("match", "") in prompt:
                with self._lock:
                    k = self._seen[index]
                    self._seen[index] += 1
                faults = rule.get("faults") or []
                return rule, faults[k] if k < len(faults) else None
        raise LookupError(f"fault server: no rule matches {prompt[:80]!r}")


class _Server(ThreadingHTTPServer):
    request_queue_size = 512   # many clients connect at once (the default backlog of 5 resets them)


def _words(text: str) -> list[str]:
    out, word = [], ""
    for ch in text:
        if ch.isspace() and word.strip():
            out.append(word)
            word = ""
        word += ch
    return out + ([word] if word else [])


def _handler(server: FaultServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True   # each streamed event leaves at once, as from a real server

        def log_message(self, *args):  # quiet
            pass

        def do_GET(self):
            if self.path.rstrip("/").endswith("/models"):
                entry = {"id": "fault-model", "object": "model"}
                if server.max_model_len:
                    entry["max_model_len"] = server.max_model_len
                return self._json(200, {"object": "list", "data": [entry]})
            return self._json(200, {"status": "ok"})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            rule, fault = server.plan(body["prompt"])
            with server._lock:
                server.log.append({"prompt": body["prompt"], "fault": fault, "body": body, "t": time.time()})
                down = len(server.log) == server.down_at
            if down:  # later connections are refused; the answers of the first down_at still go out
                server.stop_listening()
                server._down.set()
            elif server.down_at is not None and not server._down.is_set():
                server._down.wait(server.slow_seconds)   # no answer before the port is closed
            held = server._hold
            if held is not None and held in body["prompt"]:
                server._wait_released()
            if fault in ("500", "502", "503", "429"):
                return self._json(int(fault), {"error": {"message": f"injected {fault}"}})
            if fault == "context":
                return self._json(400, {"error": {"message": "This model's maximum context length is 2048 tokens. "
                                                  "However, you requested 4096 tokens. Please reduce the length."}})
            if fault == "slow":
                server._wait_released()
            text = rule.get("output", "")
            words = _words(text)
            limit = int(body.get("max_tokens") or len(words))
            finish = "length" if len(words) > limit else "stop"
            words = words[:limit]
            text = "".join(words)
            stops = [s for s in body.get("stop") or [] if s and s in text]
            if stops and fault != "stop_left_in":
                text, finish = text[:min(text.find(s) for s in stops)], "stop"
            usage = {"prompt_tokens": len(_words(body["prompt"])), "completion_tokens": len(_words(text))}
            if fault == "no_usage":
                usage = None
            if fault == "die":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.flush()
                self.close_connection = True
                return
            if body.get("stream") and fault not in ("malformed", "cut"):
                return self._stream(_words(text), finish, usage, fault)
            time.sleep(server.delay_per_token * len(_words(text)))
            payload = {"choices": [{"index": 0, "text": text, "finish_reason": finish}]}
            if usage:
                payload["usage"] = usage
            if fault == "malformed":
                return self._raw(200, b"<html>upstream error</html>", "application/json")
            data = json.dumps(payload).encode()
            if fault == "cut":
                return self._raw(200, data[: len(data) // 2], "application/json", length=len(data))
            return self._raw(200, data, "application/json")

        def _stream(self, words, finish, usage, fault=None):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            if fault == "bad_utf8":  # raw bytes inside the JSON string that are not UTF-8, and an escaped NUL
                self.wfile.write(b'data: {"choices": [{"index": 0, "text": "\xff\xfe\\u0000 ", "finish_reason": null}]}\n\n')
            for index, word in enumerate(words):
                time.sleep(server.delay_per_token)
                self._event({"choices": [{"index": 0, "text": word, "finish_reason": None}]})
                if fault == "stall" and index == 0:
                    server._wait_released()
            self._event({"choices": [{"index": 0, "text": "", "finish_reason": finish}]})
            if usage:
                self._event({"choices": [], "usage": usage})
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

        def _event(self, payload):
            self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
            self.wfile.flush()

        def _json(self, code, payload):
            self._raw(code, json.dumps(payload).encode(), "application/json")

        def _raw(self, code, data, kind, length=None):
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(length if length is not None else len(data)))
            if length is not None:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()

    return Handler
