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
- ``slow``: sleeps ``slow_seconds`` before answering (a read timeout for the client);
- ``stall``: a streamed answer that sends its first word, then nothing for ``slow_seconds``;
- ``bad_utf8``: a streamed answer whose first chunk holds bytes that are not UTF-8 (and a NUL);
- ``no_usage``: a normal answer without ``usage``;
- ``stop_left_in``: the answer keeps the stop string and what follows it.

Every request is logged (``server.log``: prompt, fault, request body, arrival
time ``t``) so tests count attempts; a client that hangs up mid-answer is
logged too (``server.hangups``), never printed.  ``restart`` closes the
listening socket and opens it again on the same port after a pause (a
server restarted mid-run).  For tests and benchmarks of the ``openai`` backend where the
workload must be exactly controlled; timings from it are not evidence about
any real engine.  Does not know: the evaluator.
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
                 slow_seconds: float = 5.0, port: int = 0) -> None:
        self.rules, self.delay_per_token, self.max_model_len = rules, delay_per_token, max_model_len
        self.slow_seconds = slow_seconds
        self.log: list[dict] = []
        self.hangups = 0
        self._seen: dict[int, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._open(port)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def _open(self, port: int) -> None:
        self.httpd = _Server(("127.0.0.1", port), _handler(self))
        self.httpd.daemon_threads = True
        self.httpd.handle_error = self._hangup
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _hangup(self, request, client_address) -> None:
        with self._lock:
            self.hangups += 1

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def restart(self, down_seconds: float) -> None:
        """Stop listening (connections are refused), wait ``down_seconds``, listen again on the same port."""
        self.close()
        time.sleep(down_seconds)
        self._open(self.port)

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
            server.log.append({"prompt": body["prompt"], "fault": fault, "body": body, "t": time.time()})
            if fault in ("500", "502", "503", "429"):
                return self._json(int(fault), {"error": {"message": f"injected {fault}"}})
            if fault == "context":
                return self._json(400, {"error": {"message": "This model's maximum context length is 2048 tokens. "
                                                  "However, you requested 4096 tokens. Please reduce the length."}})
            if fault == "slow":
                time.sleep(server.slow_seconds)
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
                    time.sleep(server.slow_seconds)
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
