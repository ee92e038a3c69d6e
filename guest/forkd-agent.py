#!/usr/bin/env python3
"""Forkd guest agent: forkd 0.1.3's line protocol, served from one warm interpreter.

Requests and replies are one JSON object per line (spec section 3.2): ``ping``, ``exec``,
``eval``. Differences from forkd 0.1.3, all compatible with its clients:
  * ``eval`` runs in ONE persistent namespace, so warm-up state (imports, models, data)
    survives the snapshot into every child; code that is not an expression runs as
    statements in that namespace and yields the value of a final expression statement,
    else ``None``.
  * replies carry ``result_json`` (JSON of the value, NaN/Infinity as forkd's sentinels).
  * a request may carry ``"id"``; the reply echoes it. Several requests per connection.
  * transports: the virtio-serial port named ``forkd.agent`` (survives host reconnects,
    e.g. every child of a snapshot gets a new host socket), TCP 0.0.0.0:8888 when the
    guest has a network, AF_VSOCK port 8888 when vsock is loaded; on the host (tests):
    ``--listen tcp:HOST:PORT`` or ``--stdio``.
  * the warm-up bridge checks reply ids and has timeouts.
Standard library only: it runs on the image's bare Python.
"""

import ast
import errno
import json
import math
import os
import queue
import select
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

AGENT_PORT = 8888
PORT_NAME = "forkd.agent"
RECIPE_ENV_PATH = "/etc/forkd-recipe.env"
NAN_SENTINEL, POS_INF_SENTINEL, NEG_INF_SENTINEL = "__js_NaN__", "__js_Infinity__", "__js_-Infinity__"
DEFAULT_EXEC_TIMEOUT = 30
DEFAULT_BRIDGE_TIMEOUT = 60.0
DEFAULT_READY_TIMEOUT = 300.0

_log_stream = sys.stdout


def log(message):
    try:
        _log_stream.write(message + "\n")
        _log_stream.flush()
    except (OSError, ValueError):
        pass


try:
    import numpy  # noqa: F401  (kept in the eval namespace)

    NUMPY_VERSION = numpy.__version__
except Exception:  # any failure just means "no numpy" for this image
    numpy = None
    NUMPY_VERSION = "not-installed"

# The one namespace every eval shares: warm state lives here.
NAMESPACE = {"__name__": "__forkd__", "__builtins__": __builtins__}
if numpy is not None:
    NAMESPACE["numpy"] = numpy
    NAMESPACE["np"] = numpy


def read_recipe_env(path):
    """KEY=VALUE lines; '#' comments; one layer of matching quotes removed (spec 3.3)."""
    values = {}
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return values
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key, value = key.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def to_jsonable(value):
    """The value as plain JSON types; non-finite floats become forkd's string sentinels."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value):
            return NAN_SENTINEL
        if math.isinf(value):
            return POS_INF_SENTINEL if value > 0 else NEG_INF_SENTINEL
        return float(value)
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise TypeError("dict keys must be strings")
        return {key: to_jsonable(item) for key, item in value.items()}
    if type(value).__module__ == "numpy" and callable(getattr(value, "tolist", None)):
        return to_jsonable(value.tolist())
    raise TypeError("%s is not JSON-serialisable" % type(value).__name__)


def json_or_none(value):
    try:
        return json.dumps(to_jsonable(value), allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return None


_OWN_FILES = {os.path.abspath(__file__), __file__, ast.__file__}


def error_reply(exc, tb=None, trimmed=False):
    if trimmed:
        text = "".join(traceback.format_exception(type(exc), exc, tb))
    else:
        text = traceback.format_exc()
    return {"error": "%s: %s" % (type(exc).__name__, exc), "traceback": text, "exit_code": 1}


class WarmupBridge:
    """Talks to a recipe's warm-up process: a ready line, then {"id","code"} -> {"id","result"|"error"}."""

    def __init__(self, command, lang):
        self.command = command
        self.lang = lang
        self.ready = False
        self._lock = threading.Lock()
        self._lines = queue.Queue()
        self._counter = 0
        self._proc = None

    def start(self, ready_timeout):
        log("forkd: starting warmup (lang=%s): %s" % (self.lang, self.command))
        try:
            self._proc = subprocess.Popen(shlex.split(self.command), stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        except Exception as exc:
            log("forkd: failed to spawn warmup: %s" % exc)
            return
        threading.Thread(target=self._forward_stderr, daemon=True).start()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        try:
            line = self._lines.get(timeout=ready_timeout)
        except queue.Empty:
            log("forkd: warmup not ready after %gs" % ready_timeout)
            return
        if line is None:
            log("forkd: warmup exited before ready (rc=%s)" % self._proc.poll())
            return
        try:
            message = json.loads(line)
        except ValueError as exc:
            log("forkd: warmup ready parse error: %s, raw=%r" % (exc, line))
            return
        if isinstance(message, dict) and message.get("ready"):
            self.ready = True
            log("forkd: warmup ready")
        else:
            log("forkd: warmup signalled: %s" % (message,))

    def _forward_stderr(self):
        for raw in iter(self._proc.stderr.readline, b""):
            log("forkd-warmup: " + raw.decode("utf-8", "replace").rstrip("\n"))

    def _read_stdout(self):
        for raw in iter(self._proc.stdout.readline, b""):
            self._lines.put(raw.decode("utf-8", "replace").strip())
        self._lines.put(None)

    def request(self, code, timeout):
        if not self.ready:
            return {"error": "warmup not ready", "exit_code": 1}
        with self._lock:
            self._counter += 1
            request_id = str(self._counter)
            try:
                self._proc.stdin.write((json.dumps({"id": request_id, "code": code}) + "\n").encode("utf-8"))
                self._proc.stdin.flush()
            except OSError as exc:
                return {"error": "warmup pipe: %s" % exc, "exit_code": 1}
            deadline = time.monotonic() + timeout
            while True:
                remaining = deadline - time.monotonic()
                try:
                    line = self._lines.get(timeout=max(remaining, 0.0)) if remaining > 0 else self._lines.get_nowait()
                except queue.Empty:
                    return {"error": "warmup timeout: no reply to request %s after %gs" % (request_id, timeout), "exit_code": 1}
                if line is None:
                    self._lines.put(None)  # stays closed for later requests
                    return {"error": "warmup closed stdout", "exit_code": 1}
                try:
                    reply = json.loads(line)
                except ValueError as exc:
                    return {"error": "bridge parse: %s" % exc, "raw": line, "exit_code": 1}
                if not isinstance(reply, dict) or str(reply.get("id")) != request_id:
                    # A late reply to a request that timed out, or noise: not ours.
                    log("forkd: warmup reply ignored (waiting for id %s): %s" % (request_id, line[:200]))
                    continue
                if "error" in reply:
                    return {"error": reply.get("error"), "stack": reply.get("stack") or "", "exit_code": 1}
                value = reply.get("result")
                encoded = json_or_none(value)
                return {"result_json": encoded if encoded is not None else "null", "exit_code": 0}


class Agent:
    def __init__(self, recipe_env_path):
        file_env = read_recipe_env(recipe_env_path)
        self.warmup_cmd = os.environ.get("FORKD_WARMUP_CMD") or file_env.get("FORKD_WARMUP_CMD")
        self.lang = os.environ.get("FORKD_AGENT_LANG") or file_env.get("FORKD_AGENT_LANG") or "python"
        self.bridge = WarmupBridge(self.warmup_cmd, self.lang) if self.warmup_cmd else None

    def start_warmup(self):
        if self.bridge is not None:
            timeout = float(os.environ.get("FORKD_WARMUP_READY_TIMEOUT") or DEFAULT_READY_TIMEOUT)
            self.bridge.start(timeout)

    def handle_line(self, raw):
        """One request line in, one reply line out (bytes, newline-terminated)."""
        request_id = None
        try:
            request = json.loads(raw)
            if isinstance(request, dict):
                request_id = request.get("id")
            reply = self.dispatch(request)
        except Exception as exc:
            reply = error_reply(exc)
        if request_id is not None:
            reply = dict({"id": request_id}, **reply)
        try:
            return (json.dumps(reply) + "\n").encode("utf-8")
        except Exception as exc:  # never leave a request unanswered
            return (json.dumps(dict({"id": request_id}, **error_reply(exc))) + "\n").encode("utf-8")

    def dispatch(self, request):
        action = request.get("action")
        if action == "ping":
            return {"pong": True, "numpy_version": NUMPY_VERSION, "pid": os.getpid(), "agent_lang": self.lang,
                    "warmup_ready": bool(self.bridge and self.bridge.ready),
                    "python_version": "%d.%d.%d" % sys.version_info[:3]}
        if action == "exec":
            timeout = request["timeout"] if "timeout" in request else DEFAULT_EXEC_TIMEOUT
            done = subprocess.run(request["args"], capture_output=True, timeout=timeout)
            return {"stdout": done.stdout.decode("utf-8", "replace"), "stderr": done.stderr.decode("utf-8", "replace"),
                    "exit_code": done.returncode}
        if action == "eval":
            code = request["code"]
            if self.lang == "node":
                if self.bridge is None:
                    return {"error": "warmup not ready", "exit_code": 1}
                return self.bridge.request(code, float(request.get("timeout") or DEFAULT_BRIDGE_TIMEOUT))
            return self.evaluate(code)
        return {"error": "unknown action: %s" % (action,), "exit_code": 1}

    @staticmethod
    def evaluate(code):
        try:
            value = run_code(code)
        except Exception as exc:
            # Drop the agent's own leading frames (and ast's): the traceback shows the caller's code.
            tb = exc.__traceback__
            while tb is not None and tb.tb_frame.f_code.co_filename in _OWN_FILES:
                tb = tb.tb_next
            return error_reply(exc, tb, trimmed=True)
        reply = {"result": repr(value), "exit_code": 0}
        encoded = json_or_none(value)
        if encoded is not None:
            reply["result_json"] = encoded
        return reply


def run_code(code):
    """An expression gives its value. Anything else runs as statements in the shared namespace; when
    the last statement is an expression (``import math; math.pi``) its value is the result, else None."""
    try:
        return eval(compile(code, "<forkd-eval>", "eval"), NAMESPACE)  # noqa: S307 - evaluating code is this agent's job
    except SyntaxError:
        pass
    module = ast.parse(code, "<forkd-eval>", "exec")
    last = module.body.pop() if module.body and isinstance(module.body[-1], ast.Expr) else None
    exec(compile(module, "<forkd-eval>", "exec"), NAMESPACE)  # noqa: S102
    if last is None:
        return None
    return eval(compile(ast.Expression(last.value), "<forkd-eval>", "eval"), NAMESPACE)  # noqa: S307


def serve_lines(agent, read_chunk, write_all):
    """Serves newline-delimited requests one at a time until EOF. A final unterminated line is served too."""
    buffer = b""
    while True:
        chunk = read_chunk()
        if not chunk:
            if buffer.strip():
                write_all(agent.handle_line(buffer))
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                write_all(agent.handle_line(line))


def serve_socket_connection(agent, conn):
    try:
        with conn:
            serve_lines(agent, lambda: conn.recv(65536), conn.sendall)
    except OSError:
        pass  # the client went away; nothing to answer


def serve_listener(agent, listener, description):
    log("forkd: agent listening on %s" % description)
    while True:
        try:
            conn, _ = listener.accept()
        except OSError as exc:
            log("forkd: accept error: %s" % exc)
            time.sleep(0.1)
            continue
        threading.Thread(target=serve_socket_connection, args=(agent, conn), daemon=True).start()


def open_listener(family, address, attempts=30):
    last = None
    for _ in range(attempts):
        try:
            listener = socket.socket(family, socket.SOCK_STREAM)
            if family == socket.AF_INET:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(address)
            listener.listen(128)
            return listener
        except OSError as exc:
            last = exc
            time.sleep(0.2)
    raise last


def find_serial_port():
    """/dev/<vportNpM> whose /sys/class/virtio-ports/<vportNpM>/name is forkd.agent, or None."""
    base = "/sys/class/virtio-ports"
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return None
    for name in names:
        try:
            with open(os.path.join(base, name, "name"), encoding="ascii") as handle:
                if handle.read().strip() == PORT_NAME:
                    return "/dev/" + name
        except OSError:
            continue
    return None


class SerialPort:
    """The virtio-serial port. The host end comes and goes (snapshot children reconnect), so EOF,
    EPIPE and EIO mean "no host right now": wait for the next one on the same device."""

    def __init__(self):
        self.fd = None
        self._wakeup = None

    def install_wakeup(self):
        # The port raises SIGIO when the host connects; without it we poll every 100 ms.
        try:
            read_end, write_end = os.pipe()
            os.set_blocking(write_end, False)
            os.set_blocking(read_end, False)
            signal.signal(signal.SIGIO, lambda *_: None)
            # Every SIGIO (also those for incoming data) writes a byte; a full pipe just drops it.
            signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
            self._wakeup = read_end
        except (OSError, ValueError) as exc:
            log("forkd: no SIGIO wake-up (%s); polling the serial port" % exc)

    def open(self):
        announced = False
        while True:
            path = find_serial_port()
            if path is not None:
                try:
                    self.fd = os.open(path, os.O_RDWR)
                    self._enable_sigio()
                    log("forkd: agent listening on %s (%s)" % (path, PORT_NAME))
                    return
                except OSError as exc:
                    if exc.errno not in (errno.ENXIO, errno.ENOENT, errno.EBUSY) and not announced:
                        log("forkd: cannot open %s: %s" % (path, exc))
                        announced = True
            time.sleep(0.05)

    def _enable_sigio(self):
        if self._wakeup is None:
            return
        try:
            import fcntl

            fcntl.fcntl(self.fd, fcntl.F_SETOWN, os.getpid())
            fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) | os.O_ASYNC)
        except OSError as exc:
            log("forkd: O_ASYNC on the serial port failed: %s" % exc)

    def wait_for_host(self):
        if self._wakeup is None:
            time.sleep(0.1)
            return
        select.select([self._wakeup], [], [], 0.1)
        try:
            while os.read(self._wakeup, 512):
                pass
        except OSError:
            pass

    def read_chunk(self):
        """Bytes from the host; b"" when the host is not connected."""
        while True:
            try:
                return os.read(self.fd, 65536)
            except OSError as exc:
                if exc.errno in (errno.EIO, errno.EPIPE, errno.EAGAIN):
                    return b""
                if exc.errno == errno.EINTR:
                    continue
                raise

    def write_all(self, data):
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.fd, view)
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                log("forkd: reply dropped, host gone: %s" % exc)
                return
            view = view[written:]


def serve_serial(agent):
    port = SerialPort()
    port.install_wakeup()
    port.open()
    buffer = b""
    while True:
        try:
            chunk = port.read_chunk()
        except OSError as exc:  # ENODEV: the port was unplugged; find it again
            log("forkd: serial port lost (%s); reopening" % exc)
            try:
                os.close(port.fd)
            except OSError:
                pass
            port.open()
            buffer = b""
            continue
        if not chunk:
            buffer = b""  # a new host connection is a new stream
            port.wait_for_host()
            continue
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                port.write_all(agent.handle_line(line))


def has_network():
    try:
        return any(name != "lo" for name in os.listdir("/sys/class/net"))
    except OSError:
        return False


def start_thread(target, *args):
    threading.Thread(target=target, args=args, daemon=True).start()


def run_in_vm(agent):
    if has_network():
        try:
            start_thread(serve_listener, agent, open_listener(socket.AF_INET, ("0.0.0.0", AGENT_PORT)),
                         "0.0.0.0:%d" % AGENT_PORT)
        except OSError as exc:
            log("forkd: failed to bind 0.0.0.0:%d after retries: %s" % (AGENT_PORT, exc))
    if hasattr(socket, "AF_VSOCK") and os.path.exists("/dev/vsock"):
        try:
            start_thread(serve_listener, agent,
                         open_listener(socket.AF_VSOCK, (socket.VMADDR_CID_ANY, AGENT_PORT), attempts=1),
                         "vsock port %d" % AGENT_PORT)
        except OSError as exc:
            log("forkd: vsock listener unavailable: %s" % exc)
    serve_serial(agent)  # main thread: SIGIO is delivered here


def main(argv):
    global _log_stream
    listen, stdio, recipe_env = None, False, RECIPE_ENV_PATH
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--listen" and args:
            listen = args.pop(0)
        elif arg == "--stdio":
            stdio = True
        elif arg == "--recipe-env" and args:
            recipe_env = args.pop(0)
        else:
            sys.stderr.write("usage: forkd-agent.py [--listen tcp:HOST:PORT | --stdio] [--recipe-env PATH]\n")
            return 2
    if stdio:
        _log_stream = sys.stderr  # stdout carries the protocol
    agent = Agent(recipe_env)
    log("forkd: numpy=%s agent starting in PID %d (%s)" % (NUMPY_VERSION, os.getpid(), sys.executable))
    # The warm-up handshake runs beside the listeners: ping answers at once and reports
    # warmup_ready, instead of the agent being unreachable while a slow warm-up starts.
    start_thread(agent.start_warmup)
    log("forkd: parent VM ready for snapshot. children inherit this state.")
    if stdio:
        stdin, stdout = sys.stdin.buffer, sys.stdout.buffer

        def write_all(data):
            stdout.write(data)
            stdout.flush()

        serve_lines(agent, lambda: stdin.read1(65536), write_all)
        return 0
    if listen is not None:
        if not listen.startswith("tcp:") or ":" not in listen[4:]:
            sys.stderr.write("--listen takes tcp:HOST:PORT\n")
            return 2
        host, port = listen[4:].rsplit(":", 1)
        listener = open_listener(socket.AF_INET, (host, int(port)), attempts=1)
        bound_host, bound_port = listener.getsockname()[:2]
        serve_listener(agent, listener, "tcp:%s:%d" % (bound_host, bound_port))
        return 0
    run_in_vm(agent)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
