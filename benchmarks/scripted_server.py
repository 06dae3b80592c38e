"""A small OpenAI-compatible HTTP server on 127.0.0.1 that replays scripted outputs with a per-token delay.

For benchmarks of the ``openai`` backend's scheduling where the workload
must be exactly controlled (how many rounds, how long each).  It serves
``POST /v1/completions`` and ``GET /health``; each request sleeps
``delay_per_token`` seconds per generated token, like a server whose every
request decodes in parallel.  Not used by the evaluator itself.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from inftythink_eval.backends.base import Request, SamplingParams
from inftythink_eval.backends.scripted import ScriptedBackend


def serve(rules: list[dict], delay_per_token: float = 0.002, port: int = 0):
    """Start the server in a thread; returns (server, base_url). Stop with ``server.shutdown()``."""
    backend = ScriptedBackend(rules)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def do_GET(self):
            self._send(200, {"status": "ok"})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            params = SamplingParams(max_tokens=body["max_tokens"], stop=tuple(body.get("stop") or ()))
            out = backend.generate([Request(body["prompt"], params)])[0]
            time.sleep(delay_per_token * out.output_tokens)
            self._send(200, {"choices": [{"text": out.text, "finish_reason": out.finish_reason, "index": 0}],
                             "usage": {"prompt_tokens": out.prompt_tokens, "completion_tokens": out.output_tokens}})

        def _send(self, code, payload):
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"
