#!/usr/bin/env python3
"""Forkd guest agent: forkd 0.1.3's line protocol, served from one warm interpreter.

Requests and replies are one JSON object per line (spec section 3.2): ``ping``, ``exec``,
``eval``, plus Forkd's ``cancel``. What forkd's clients see is forkd's agent; the differences
(listed with reasons in guest/README.md) are extra keys they ignore and behaviour they cannot
observe on TCP:
  * ``eval`` runs in ONE persistent namespace (warm-up state survives the snapshot into every
    child); statements run too and yield the value of a final expression statement, else None.
  * every reply carries ``forkd_generation``: a random id made when this agent process
    started. Children inherit it through the snapshot; a restarted agent (warm state gone)
    has a new one, so the host can tell "restarted" from "slow".
  * ``eval`` replies carry the value as native JSON in ``forkd_value`` (forkd's ``result``, the
    repr string, is unchanged; ``result_json`` stays the Node bridge's, as in forkd).
  * evals run one at a time in the main thread, in arrival order; ``cancel`` interrupts the
    running one (an exception raised through SIGUSR1) or drops a queued one, and kills an
    exec's whole process group. Replies respect the host's ``max_reply`` byte limit.
  * TCP 0.0.0.0:8888 opens after the warm-up handshake, one request per connection (forkd's
    rules). The virtio-serial port ``forkd.agent`` (and AF_VSOCK port 8888, in a guest) carry
    any number of requests with ``id``s, served concurrently, from the start.
Standard library only: it runs on the image's bare Python.
"""

import ast
import errno
import json
import math
import os
import queue
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections import deque

AGENT_PORT = 8888
PORT_NAME = "forkd.agent"
RECIPE_ENV_PATH = "/etc/forkd-recipe.env"
NAN_SENTINEL, POS_INF_SENTINEL, NEG_INF_SENTINEL = "__js_NaN__", "__js_Infinity__", "__js_-Infinity__"
DEFAULT_EXEC_TIMEOUT = 30
DEFAULT_BRIDGE_TIMEOUT = 60.0
DEFAULT_READY_TIMEOUT = 300.0
DEFAULT_MAX_REPLY = 16 << 20  # bytes of one reply line; the host sends its own limit as "max_reply"
CANCEL_SIGNAL = signal.SIGUSR1
# Fixed when this process starts; a snapshot child inherits it with the rest of the warm state.
GENERATION = os.urandom(8).hex()

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


class EvalCancelled(BaseException):
    """Raised in the eval thread when the host cancels; a BaseException so `except Exception` in user code does not swallow it."""


def cancelled_reply(what):
    return {"error": "ForkdCancelled: the host cancelled this %s" % what, "exit_code": 1}


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
        self.state = "starting"
        self._lock = threading.Lock()
        self._lines = queue.Queue()
        self._counter = 0
        self._proc = None

    def start(self, ready_timeout):
        try:
            self._handshake(ready_timeout)
        finally:
            self.state = "ready" if self.ready else "failed"

    def _handshake(self, ready_timeout):
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


class _Job:
    def __init__(self, request_id, work):
        self.request_id = request_id
        self.work = work
        self.reply = None
        self.cancel = False
        self.active = False
        self.done = threading.Event()

    def finish(self, reply):
        if not self.done.is_set():
            self.reply = reply
            self.done.set()


class EvalQueue:
    """Evals run one at a time, in arrival order, in the main thread: a signal handler runs there, so
    SIGUSR1 can raise EvalCancelled even inside time.sleep or a blocking read (PEP 475 retries only
    when the handler returns)."""

    def __init__(self):
        self._jobs = deque()
        self._cv = threading.Condition()
        self._running = None
        self._main_ident = None

    def submit(self, request_id, work):
        job = _Job(request_id, work)
        with self._cv:
            self._jobs.append(job)
            self._cv.notify()
        job.done.wait()
        return job.reply

    def cancel(self, target):
        with self._cv:
            for job in self._jobs:
                if job.request_id == target:
                    self._jobs.remove(job)
                    job.finish(cancelled_reply("eval before it started"))
                    return "queued"
            job = self._running
            if job is None or job.request_id != target:
                return None
            job.cancel = True
        threading.Thread(target=self._interrupt, args=(job,), daemon=True).start()
        return "running"

    def _interrupt(self, job):
        # Repeated: code with a bare `except:` may swallow the first one.
        for _ in range(50):
            if job.done.is_set():
                return
            signal.pthread_kill(self._main_ident, CANCEL_SIGNAL)
            job.done.wait(0.2)

    def _on_signal(self, *_):
        job = self._running
        if job is not None and job.cancel and job.active:
            job.active = False
            raise EvalCancelled()

    def run_forever(self):
        self._main_ident = threading.get_ident()
        signal.signal(CANCEL_SIGNAL, self._on_signal)
        while True:
            with self._cv:
                while not self._jobs:
                    self._cv.wait()
                job = self._jobs.popleft()
                self._running = job
            try:
                try:
                    job.active = True
                    reply = job.work()
                    job.active = False
                except EvalCancelled:
                    reply = cancelled_reply("eval")
            except EvalCancelled:  # arrived just as the work returned
                reply = cancelled_reply("eval")
            with self._cv:
                self._running = None
            job.finish(reply)


class _Capture:
    """Drains one pipe of an exec; keeps the first `limit` bytes and counts the rest (a flood must not fill guest memory)."""

    def __init__(self, pipe, limit):
        self.data = bytearray()
        self.dropped = 0
        self._pipe, self._limit = pipe, limit
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self):
        with self._pipe:
            for chunk in iter(lambda: self._pipe.read1(65536), b""):
                room = self._limit - len(self.data)
                if room > 0:
                    self.data += chunk[:room]
                self.dropped += max(0, len(chunk) - max(room, 0))


def kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass


class ExecRunner:
    """`exec` like forkd's subprocess.run(args, capture_output=True, timeout=...), but in its own process
    group (a timeout or cancel kills everything it started) and with bounded capture."""

    def __init__(self):
        self._lock = threading.Lock()
        self._running = {}

    def cancel(self, target):
        with self._lock:
            entry = self._running.get(target)
        if entry is None:
            return None
        entry["cancelled"] = True
        kill_group(entry["proc"])
        return "running"

    def run(self, request, request_id, limit):
        timeout = request["timeout"] if "timeout" in request else DEFAULT_EXEC_TIMEOUT
        args = request["args"]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        entry = {"proc": proc, "cancelled": False}
        if request_id is not None:
            with self._lock:
                self._running[request_id] = entry
        try:
            out, err = _Capture(proc.stdout, limit), _Capture(proc.stderr, limit)
            deadline = None if timeout is None else time.monotonic() + timeout
            try:
                proc.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
                for capture in (out, err):
                    capture.thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
                    if capture.thread.is_alive():  # something it started still holds the pipe
                        raise subprocess.TimeoutExpired(args, timeout)
            except subprocess.TimeoutExpired:
                kill_group(proc)
                proc.wait()
                raise subprocess.TimeoutExpired(args, timeout) from None
            if entry["cancelled"]:
                return cancelled_reply("exec")
            reply = {"stdout": out.data.decode("utf-8", "replace"), "stderr": err.data.decode("utf-8", "replace"),
                     "exit_code": proc.returncode}
            if out.dropped or err.dropped:
                reply["forkd_truncated"] = {"stdout": out.dropped, "stderr": err.dropped}
            return reply
        finally:
            if request_id is not None:
                with self._lock:
                    self._running.pop(request_id, None)


def reply_limit(request):
    value = request.get("max_reply") if isinstance(request, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else DEFAULT_MAX_REPLY


def encode_within(reply, limit):
    """The reply line, at most `limit` bytes: exec output is cut (and the cut counted), anything else over the limit becomes an error."""
    line = (json.dumps(reply) + "\n").encode("utf-8")
    if len(line) <= limit:
        return line
    if "stdout" in reply and "stderr" in reply:
        trimmed = dict(reply)
        cut = dict(trimmed.get("forkd_truncated") or {"stdout": 0, "stderr": 0})
        while len(line) > limit and (trimmed["stdout"] or trimmed["stderr"]):
            key = "stdout" if len(trimmed["stdout"]) >= len(trimmed["stderr"]) else "stderr"
            text = trimmed[key]
            keep = len(text) // 2
            cut[key] = cut.get(key, 0) + len(text[keep:].encode("utf-8"))
            trimmed[key] = text[:keep]
            trimmed["forkd_truncated"] = cut
            line = (json.dumps(trimmed) + "\n").encode("utf-8")
        if len(line) <= limit:
            return line
    error = {"error": "ReplyTooLarge: the reply is %d bytes, over the host's limit of %d bytes" % (len(line), limit),
             "exit_code": 1}
    for key in ("id", "forkd_generation"):
        if key in reply:
            error[key] = reply[key]
    return (json.dumps(error) + "\n").encode("utf-8")


class Agent:
    def __init__(self, recipe_env_path):
        file_env = read_recipe_env(recipe_env_path)
        self.warmup_cmd = os.environ.get("FORKD_WARMUP_CMD") or file_env.get("FORKD_WARMUP_CMD")
        self.lang = os.environ.get("FORKD_AGENT_LANG") or file_env.get("FORKD_AGENT_LANG") or "python"
        self.bridge = WarmupBridge(self.warmup_cmd, self.lang) if self.warmup_cmd else None
        self.evals = EvalQueue()
        self.execs = ExecRunner()

    def start_warmup(self):
        if self.bridge is not None:
            timeout = float(os.environ.get("FORKD_WARMUP_READY_TIMEOUT") or DEFAULT_READY_TIMEOUT)
            self.bridge.start(timeout)

    def handle(self, raw):
        """One request line in (bytes, its newline included as forkd parses it), one reply line out. Blocks for evals."""
        request_id, limit = None, DEFAULT_MAX_REPLY
        try:
            request = json.loads(raw)
            if isinstance(request, dict):
                request_id = request.get("id")
                limit = reply_limit(request)
            reply = self.dispatch(request, request_id, limit)
        except Exception as exc:
            reply = error_reply(exc)
        if request_id is not None:
            reply = dict({"id": request_id}, **reply)
        reply["forkd_generation"] = GENERATION
        try:
            return encode_within(reply, limit)
        except Exception as exc:  # never leave a request unanswered
            fallback = dict({"id": request_id}, **error_reply(exc)) if request_id is not None else error_reply(exc)
            fallback["forkd_generation"] = GENERATION
            return (json.dumps(fallback) + "\n").encode("utf-8")

    def ping(self):
        reply = {"pong": True, "numpy_version": NUMPY_VERSION, "pid": os.getpid(), "agent_lang": self.lang}
        state = "none" if self.bridge is None else self.bridge.state
        if state != "starting":  # never "false" while the handshake is still running (forkd is not listening then)
            reply["warmup_ready"] = state == "ready"
        reply["python_version"] = "%d.%d.%d" % sys.version_info[:3]
        reply["forkd_warmup"] = state
        return reply

    def dispatch(self, request, request_id, limit):
        action = request.get("action")
        if action == "ping":
            return self.ping()
        if action == "cancel":
            target = request["target"]
            state = self.evals.cancel(target) or self.execs.cancel(target)
            return {"cancelled": state is not None, "state": state or "unknown", "exit_code": 0}
        if action == "exec":
            return self.execs.run(request, request_id, limit)
        if action == "eval":
            code = request["code"]
            if self.lang == "node":
                if self.bridge is None:
                    return {"error": "warmup not ready", "exit_code": 1}
                timeout = float(request.get("timeout") or DEFAULT_BRIDGE_TIMEOUT)
                return self.evals.submit(request_id, lambda: self.bridge.request(code, timeout))
            return self.evals.submit(request_id, lambda: self.evaluate(code))
        return {"error": "unknown action: %s" % (action,), "exit_code": 1}

    @staticmethod
    def evaluate(code):
        try:
            value = run_code(code)
        except EvalCancelled:
            raise
        except BaseException as exc:  # SystemExit / KeyboardInterrupt from user code are its errors, not the agent's end
            # Drop the agent's own leading frames (and ast's): the traceback shows the caller's code.
            tb = exc.__traceback__
            while tb is not None and tb.tb_frame.f_code.co_filename in _OWN_FILES:
                tb = tb.tb_next
            return error_reply(exc, tb, trimmed=True)
        reply = {"result": repr(value), "exit_code": 0}
        try:
            reply["forkd_value"] = to_jsonable(value)
            json.dumps(reply["forkd_value"], allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            reply.pop("forkd_value", None)  # no JSON form: forkd's repr string is all there is
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


def serve_multiplexed(agent, read_chunk, write_all, on_eof=None):
    """A stream carrying many requests (virtio-serial, vsock, stdio): every line is answered from its own
    thread, so ping and cancel are answered while an eval runs. At EOF a final unterminated line is served."""
    buffer = b""
    while True:
        chunk = read_chunk()
        if not chunk:
            if buffer:
                write_all(agent.handle(buffer))
            if on_eof is not None:
                _workers.wait_done(DEFAULT_EXEC_TIMEOUT)  # the answers still being written go out first
                on_eof()
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            answer(agent, line + b"\n", write_all)


def serve_tcp_connection(agent, conn):
    """forkd's rules: read until the first newline (or EOF), answer once, close. Nothing read: no reply."""
    try:
        with conn:
            data = b""
            while b"\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            if not data:
                return
            line = data.split(b"\n", 1)[0] + (b"\n" if b"\n" in data else b"")
            conn.sendall(agent.handle(line))
            conn.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the client went away; nothing to answer


def serve_listener(agent, listener, description, serve_connection):
    log("forkd: agent listening on %s" % description)
    while True:
        try:
            conn, _ = listener.accept()
        except OSError as exc:
            log("forkd: accept error: %s" % exc)
            time.sleep(0.1)
            continue
        start_thread(serve_connection, agent, conn)


def serve_stream_connection(agent, conn):
    lock = threading.Lock()

    def write_all(data):
        with lock:
            try:
                conn.sendall(data)
            except OSError:
                pass

    try:
        with conn:
            serve_multiplexed(agent, lambda: conn.recv(65536), write_all)
    except OSError:
        pass


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
        self._signal_tid = None
        self._write_lock = threading.Lock()

    def install_sigio_handler(self):
        # SIGIO's default action ends the process: a harmless handler in case one ever reaches another thread.
        # It should not: the port signals only the serving thread, which blocks SIGIO and takes it with
        # sigwaitinfo, so no handler, signal frame or wake-up pipe runs (each would be code a fresh child
        # translates under TCG on its first request).
        try:
            signal.signal(signal.SIGIO, lambda *_: None)
        except (OSError, ValueError) as exc:
            log("forkd: no SIGIO handler (%s)" % exc)

    def take_signals(self):
        """Called on the serving thread: from now on SIGIO waits for it in sigwaitinfo."""
        try:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGIO})
            self._signal_tid = threading.get_native_id()
        except (AttributeError, OSError, ValueError) as exc:
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
        if self._signal_tid is None:
            return
        try:
            import fcntl
            import struct

            f_setown_ex, f_owner_tid = 15, 0  # <fcntl.h>; Python's fcntl module lacks them
            fcntl.fcntl(self.fd, f_setown_ex, struct.pack("ii", f_owner_tid, self._signal_tid))
            fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) | os.O_ASYNC)
        except OSError as exc:
            log("forkd: O_ASYNC on the serial port failed (%s); polling it" % exc)
            self._signal_tid = None

    def wait_for_host(self):
        """Returns when the host may have connected: at its SIGIO (already pending if it came after our read)."""
        if self._signal_tid is None:
            time.sleep(0.1)
            return
        signal.sigwaitinfo({signal.SIGIO})

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
        with self._write_lock:
            self._write_unlocked(data)

    def _write_unlocked(self, data):
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


def serve_serial(agent, port):
    port.take_signals()
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
            answer(agent, line + b"\n", port.write_all)


def start_thread(target, *args):
    threading.Thread(target=target, args=args, daemon=True).start()


class RequestWorkers:
    """Threads that answer request lines, kept between requests. A fork's child inherits the parent's idle
    workers, so its first requests start no thread: under TCG every guest code path a child runs for the first
    time is translated again in that child's VMM, and a thread start is a long one. A request that finds no
    idle worker gets a new thread, so evals, execs and cancels never wait for each other here."""

    def __init__(self, idle=2):
        self._jobs = queue.SimpleQueue()
        self._lock = threading.Condition()
        self._idle = idle  # threads waiting for a job (or about to)
        self._pending = 0  # jobs submitted and not yet finished
        for _ in range(idle):
            start_thread(self._work)

    def _work(self):
        while True:
            target, args = self._jobs.get()
            try:
                target(*args)
            except Exception as exc:  # a worker must outlive any one request
                log("forkd: request worker: %s" % exc)
            with self._lock:
                self._idle += 1
                self._pending -= 1
                self._lock.notify_all()

    def submit(self, target, *args):
        with self._lock:
            self._pending += 1
            spawn = self._idle == 0
            if not spawn:
                self._idle -= 1
        self._jobs.put((target, args))
        if spawn:
            start_thread(self._work)

    def wait_done(self, timeout):
        """Until every submitted request is answered (or `timeout` passes): a stream's end must not drop replies."""
        with self._lock:
            return self._lock.wait_for(lambda: self._pending == 0, timeout)


_workers = None


_PING_PREFIX = b'{"action":"ping","id":'
_ping_replies = {}  # warm-up state -> the reply's bytes before and after the request id


def fast_ping(agent, line):
    """The host's readiness ping (exactly {"action":"ping","id":<plain id>}) answered from the reply a first
    ping of the same warm-up state produced. The parent's boot pings fill it, so a fresh child answers its
    first ping with a few byte operations instead of a JSON round trip translated anew under TCG."""
    if not (line.startswith(_PING_PREFIX) and line.endswith(b"}\n")):
        return None
    token = line[len(_PING_PREFIX):-2]
    plain = token.isdigit() if token[:1] != b'"' else (
        len(token) > 2 and token[-1:] == b'"' and b'"' not in token[1:-1] and b"\\" not in token)
    if not plain or len(token) > 100:
        return None
    state = "none" if agent.bridge is None else agent.bridge.state
    parts = _ping_replies.get(state)
    if parts is not None:
        return parts[0] + token + parts[1]
    reply = agent.handle(line)
    at = reply.find(token)
    if at > 0:
        _ping_replies[state] = (reply[:at], reply[at + len(token):])
    return reply


def answer(agent, line, write_all):
    """Pings are answered on the reading thread (they never block); every other line by a worker."""
    if line.startswith(_PING_PREFIX):
        write_all(fast_ping(agent, line) or agent.handle(line))
        return
    _workers.submit(lambda data: write_all(agent.handle(data)), line)


def start_tcp(agent, host, port, prefix=""):
    """forkd's listener: after the warm-up handshake, so no TCP client ever sees a warm-up still starting."""
    try:
        listener = open_listener(socket.AF_INET, (host, port), attempts=30 if port else 1)
    except OSError as exc:
        log("forkd: failed to bind %s:%d after retries: %s" % (host, port, exc))
        return
    bound_host, bound_port = listener.getsockname()[:2]
    start_thread(serve_listener, agent, listener, "%s%s:%d" % (prefix, bound_host, bound_port), serve_tcp_connection)


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
    if listen is not None and (not listen.startswith("tcp:") or ":" not in listen[4:]):
        sys.stderr.write("--listen takes tcp:HOST:PORT\n")
        return 2
    if stdio:
        _log_stream = sys.stderr  # stdout carries the protocol
    agent = Agent(recipe_env)
    global _workers
    _workers = RequestWorkers()  # before any request, so a snapshot holds them idle
    log("forkd: numpy=%s agent starting in PID %d (%s)" % (NUMPY_VERSION, os.getpid(), sys.executable))
    in_guest = os.environ.get("FORKD_GUEST") == "1"

    if stdio:
        lock = threading.Lock()
        stdin, stdout = sys.stdin.buffer, sys.stdout.buffer

        def write_all(data):
            with lock:
                stdout.write(data)
                stdout.flush()

        start_thread(serve_multiplexed, agent, lambda: stdin.read1(65536), write_all, lambda: os._exit(0))
    elif listen is None and (in_guest or find_serial_port() is not None):
        # Our host's channels are there from the start: ping reports the warm-up's progress on them.
        port = SerialPort()
        port.install_sigio_handler()  # must run in the main thread
        start_thread(serve_serial, agent, port)
        if in_guest and hasattr(socket, "AF_VSOCK") and os.path.exists("/dev/vsock"):
            try:
                start_thread(serve_listener, agent,
                             open_listener(socket.AF_VSOCK, (socket.VMADDR_CID_ANY, AGENT_PORT), attempts=1),
                             "vsock port %d" % AGENT_PORT, serve_stream_connection)
            except OSError as exc:
                log("forkd: vsock listener unavailable: %s" % exc)

    def after_warmup():
        agent.start_warmup()
        log("forkd: parent VM ready for snapshot. children inherit this state.")
        if listen is not None:
            host, port = listen[4:].rsplit(":", 1)
            start_tcp(agent, host, int(port), "tcp:")
            return
        if not stdio:
            start_tcp(agent, "0.0.0.0", AGENT_PORT)

    start_thread(after_warmup)
    agent.evals.run_forever()  # main thread: the cancel signal is handled here
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
