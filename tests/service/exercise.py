"""Exercises every route of the REST API v1 against a running controller and a real snapshot, with client.py.
Usage: python3 exercise.py URL TOKEN_FILE TAG [--cafile PEM] [--delete] (--delete: finally DELETE the snapshot). Ends with 'N passed, N failed'; exit 1 on any failure."""
import sys
import time

from client import Controller, ControllerError

results = []


def check(name, condition, detail=""):
    results.append(bool(condition))
    print(("ok   " if condition else "FAIL ") + name + ("" if condition else f"  ({detail})"), flush=True)


def expect_error(name, status, fn):
    try:
        fn()
        check(name, False, "no error")
    except ControllerError as e:
        check(name, e.status == status and isinstance(e.message, str) and e.message, f"{e.status} {e.message}")


def main():
    url, token_file, tag = sys.argv[1], sys.argv[2], sys.argv[3]
    cafile = sys.argv[sys.argv.index("--cafile") + 1] if "--cafile" in sys.argv else None
    token = open(token_file).read().strip()
    c = Controller(url, token=token, cafile=cafile)

    check("GET /healthz without a token", c.healthz() == {"ok": True})
    expect_error("no token is 401", 401, lambda: Controller(url, cafile=cafile).list_snapshots())
    expect_error("wrong token is 401", 401, lambda: Controller(url, token=token + "x", cafile=cafile).list_snapshots())
    v = c.version()
    check("GET /version", v.get("api") == "v1" and isinstance(v.get("version"), str), v)
    status, headers, text = c.metrics()
    check("GET /metrics", status == 200 and "forkd_snapshots_total" in text and "forkd_sandboxes_active" in text
          and "forkd_build_info" in text and headers.get("Content-Type", "").startswith("text/plain"), headers)

    snaps = c.list_snapshots()
    check("GET /v1/snapshots lists the tag", any(s["tag"] == tag for s in snaps), snaps)
    check("SnapshotInfo has forkd's fields", all({"tag", "dir", "created_at_unix"} <= set(s) for s in snaps), snaps)
    info = c.snapshot_info(tag)
    check("GET /v1/snapshots/:tag/info", info["snapshot"]["tag"] == tag and info["chain"] == [tag], info)
    expect_error("info of a hostile tag is 400", 400, lambda: c.snapshot_info("../etc"))
    expect_error("fork of a hostile tag is 400", 400, lambda: c.create_sandboxes("../../etc"))
    expect_error("fork of a missing tag is 404", 404, lambda: c.create_sandboxes("no-such-tag"))
    expect_error("fork of n=0 is 400", 400, lambda: c.create_sandboxes(tag, n=0))

    started = time.monotonic()
    boxes = c.create_sandboxes(tag, n=1)
    check("POST /v1/sandboxes forks a child", len(boxes) == 1 and boxes[0]["snapshot_tag"] == tag, boxes)
    sb = boxes[0]
    sid = sb["id"]
    check("SandboxInfo has forkd's fields", {"id", "snapshot_tag", "netns", "guest_addr", "created_at_unix", "pid", "memory_limit_mib"} <= set(sb), sb)
    print(f"     forked {sid} in {(time.monotonic() - started) * 1000:.0f} ms", flush=True)
    check("GET /v1/sandboxes lists it", any(s["id"] == sid for s in c.list_sandboxes()))
    check("GET /v1/sandboxes/:id", c.get_sandbox(sid)["id"] == sid)
    expect_error("GET of a hostile id is 400", 400, lambda: c.get_sandbox("../../etc/passwd"))
    expect_error("GET of a missing id is 404", 404, lambda: c.get_sandbox("sb-missing"))

    p = c.ping(sid)
    check("POST ping returns the agent's reply", p.get("pong") is True and isinstance(p.get("pid"), int), p)
    e = c.eval(sid, "sum(i * i for i in range(10))")
    check("POST eval", e["result"] == "285" and e["error"] is None and e["exit_code"] == 0, e)
    e = c.eval(sid, "1/0")
    check("POST eval reports the guest's error", e["error"] and "ZeroDivisionError" in e["error"] and e["exit_code"] != 0, e)
    x = c.exec(sid, ["python3", "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"])
    check("POST exec", x["stdout"] == "out\n" and x["stderr"] == "err\n" and x["exit_code"] == 3, x)
    expect_error("exec with empty args is 400", 400, lambda: c.exec(sid, []))
    c.eval(sid, "branch_marker = 'before'")
    b = c.branch(sid, tag=tag + "-br")
    check("POST branch snapshots the running child (forkd 0.1.4)", b["snapshot"]["tag"] == tag + "-br" and b["pause_ms"] >= 0, b)
    c.eval(sid, "branch_marker = 'after'")
    kids = c.create_sandboxes(tag + "-br")
    seen = c.eval(kids[0]["id"], "branch_marker")
    check("a child of the branch sees the state at the branch, not later changes", seen["result"] == "'before'", seen)
    c.delete_sandbox(kids[0]["id"])
    expect_error("branching onto an existing tag is 409", 409, lambda: c.branch(sid, tag=tag + "-br"))
    expect_error("branching onto a hostile tag is 400", 400, lambda: c.branch(sid, tag="../x"))
    check("DELETE of the branch snapshot", c.delete_snapshot(tag + "-br") is None)
    expect_error("deleting a snapshot with running children is 409", 409, lambda: c.delete_snapshot(tag))

    check("DELETE /v1/sandboxes/:id", c.delete_sandbox(sid) is None)
    expect_error("the deleted sandbox is 404", 404, lambda: c.get_sandbox(sid))
    expect_error("DELETE of a missing snapshot is 404", 404, lambda: c.delete_snapshot("no-such-tag"))
    expect_error("DELETE of a hostile tag is 400", 400, lambda: c.delete_snapshot(".hidden"))

    if "--delete" in sys.argv:
        check("DELETE /v1/snapshots/:tag", c.delete_snapshot(tag) is None)
        check("the deleted snapshot is gone", all(s["tag"] != tag for s in c.list_snapshots()))

    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
