"""A client for forkd's REST API v1 (forkd 0.1.3 spec, section 5.4), written from the API description
alone, with the standard library only (urllib). It talks to forkd-controller and to Forkd's controller alike.

    c = Controller("http://127.0.0.1:8889", token=open("/etc/forkd/token").read().strip())
    sb = c.create_sandboxes("py", n=1)[0]
    print(c.eval(sb["id"], "1 + 1")["result"])
"""
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request


class ControllerError(Exception):
    """A non-2xx answer: the HTTP status and forkd's {"error": "..."} message (plus Forkd's error_id if sent)."""

    def __init__(self, status, message, error_id=None, retry_after=None):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.error_id = error_id
        self.retry_after = retry_after


class Controller:
    def __init__(self, url, token=None, timeout=120, cafile=None, insecure=False):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._ssl = None
        if self.url.startswith("https:"):
            self._ssl = ssl.create_default_context(cafile=cafile)
            if insecure:
                self._ssl.check_hostname = False
                self._ssl.verify_mode = ssl.CERT_NONE

    # --- transport -------------------------------------------------------------------------------
    def request(self, method, path, body=None, auth=True, raw=False):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if auth and self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self._ssl) as resp:
                payload = resp.read()
                if raw:
                    return resp.status, resp.headers, payload.decode()
                if resp.status == 204 or not payload:
                    return None
                return json.loads(payload)
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")
            message, error_id = text, None
            try:
                parsed = json.loads(text)
                message, error_id = parsed.get("error", text), parsed.get("error_id")
            except ValueError:
                pass
            raise ControllerError(e.code, message, error_id, e.headers.get("Retry-After")) from None

    @staticmethod
    def _seg(value):
        # Path segments are quoted completely, so an id can never add a path level.
        return urllib.parse.quote(value, safe="")

    # --- routes (spec 5.4, 10.1, 10.6) -----------------------------------------------------------
    def healthz(self):
        return self.request("GET", "/healthz", auth=False)

    def version(self):
        return self.request("GET", "/version")

    def metrics(self):
        return self.request("GET", "/metrics", raw=True)

    def list_snapshots(self):
        return self.request("GET", "/v1/snapshots")

    def snapshot_info(self, tag):
        return self.request("GET", f"/v1/snapshots/{self._seg(tag)}/info")

    def delete_snapshot(self, tag):
        return self.request("DELETE", f"/v1/snapshots/{self._seg(tag)}")

    def create_sandboxes(self, snapshot_tag, n=1, per_child_netns=False, memory_limit_mib=None):
        return self.request("POST", "/v1/sandboxes", {
            "snapshot_tag": snapshot_tag, "n": n, "per_child_netns": per_child_netns, "memory_limit_mib": memory_limit_mib})

    def list_sandboxes(self):
        return self.request("GET", "/v1/sandboxes")

    def get_sandbox(self, sandbox_id):
        return self.request("GET", f"/v1/sandboxes/{self._seg(sandbox_id)}")

    def delete_sandbox(self, sandbox_id):
        return self.request("DELETE", f"/v1/sandboxes/{self._seg(sandbox_id)}")

    def ping(self, sandbox_id):
        return self.request("POST", f"/v1/sandboxes/{self._seg(sandbox_id)}/ping")

    def exec(self, sandbox_id, args, timeout_secs=30):
        return self.request("POST", f"/v1/sandboxes/{self._seg(sandbox_id)}/exec", {"args": list(args), "timeout_secs": timeout_secs})

    def eval(self, sandbox_id, code):
        return self.request("POST", f"/v1/sandboxes/{self._seg(sandbox_id)}/eval", {"code": code})

    def branch(self, sandbox_id, tag=None):
        return self.request("POST", f"/v1/sandboxes/{self._seg(sandbox_id)}/branch", {} if tag is None else {"tag": tag})
