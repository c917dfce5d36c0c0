"""A webhook receiver for tests, run as its own process:

    python tests/webhook_receiver.py RECORD_FILE

prints its port on the first line of stdout, then serves until killed. Every POST
(except to /_mode) is appended to RECORD_FILE as one JSON line: path, headers,
body (text), the answer it got. `POST /_mode` with body `ok`, `fail` (answer 500)
or `hang:SECONDS` (answer 200 only after sleeping) sets how later requests are answered.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE = {"value": "ok"}
LOCK = threading.Lock()


def handler_for(record_path: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/_mode":
                MODE["value"] = body.decode()
                self._answer(200)
                return
            mode = MODE["value"]
            status = 500 if mode == "fail" else 200
            with LOCK, open(record_path, "a", encoding="utf-8") as out:
                out.write(json.dumps({
                    "path": self.path, "headers": dict(self.headers.items()), "body": body.decode("utf-8"),
                    "mode": mode, "status": status, "received_at": time.time(),
                }) + "\n")
            if mode.startswith("hang:"):
                time.sleep(float(mode.split(":", 1)[1]))
            self._answer(status)

        def _answer(self, status: int) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:  # the sender gave up (timeout) and closed the connection
                pass

    return Handler


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(sys.argv[1]))
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
