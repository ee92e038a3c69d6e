#!/usr/bin/env python3
"""Test HTTP server for the Hub Pester tests, on 127.0.0.1 with a random port.

GET  /files/<name>      the file <root>/<name> (404 when absent)
GET  /forbidden/<name>  403, like an expired presigned URL
GET  /redirect/<name>   302 to /files/<name>
GET  /slow/<name>       headers and half the body, then stalls (for Ctrl+C tests)
PUT  /upload/<name>     stores the body as <root>/<name>.uploaded and its headers as <name>.headers.json
PUT  /stall/<name>      writes <root>/<name>.started, then reads nothing for 120 s (for Stop-Job and Ctrl+C tests)
Writes its port to argv[2] once it listens.
"""
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = sys.argv[1]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _plain(self, code, text=b""):
        self.send_response(code)
        self.send_header("Content-Length", str(len(text)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(text)

    def do_GET(self):
        parts = self.path.split("?")[0].strip("/").split("/", 1)
        if len(parts) != 2 or "/" in parts[1] or parts[1].startswith("."):
            return self._plain(404, b"not found")
        kind, name = parts
        path = os.path.join(ROOT, name)
        if kind == "forbidden":
            return self._plain(403, b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>")
        if kind == "redirect":
            self.send_response(302)
            self.send_header("Location", "/files/" + name)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if kind not in ("files", "slow") or not os.path.isfile(path):
            return self._plain(404, b"not found")
        data = open(path, "rb").read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if kind == "slow":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            time.sleep(120)
            return
        self.wfile.write(data)

    def do_PUT(self):
        name = self.path.split("?")[0].rsplit("/", 1)[-1]
        if self.path.split("?")[0].strip("/").split("/", 1)[0] == "stall":
            open(os.path.join(ROOT, name + ".started"), "w").close()
            time.sleep(120)
            return
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        with open(os.path.join(ROOT, name + ".uploaded"), "wb") as f:
            f.write(body)
        with open(os.path.join(ROOT, name + ".headers.json"), "w") as f:
            json.dump({k.lower(): v for k, v in self.headers.items()}, f)
        self._plain(200)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
with open(sys.argv[2] + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
server.serve_forever()
