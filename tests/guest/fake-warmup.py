#!/usr/bin/env python3
"""A stand-in warm-up process for the agent's bridge (spec 3.4), used by the agent tests.

Sends {"ready": true}, then answers each {"id", "code"} line:
  "nan"          -> result NaN (as Python's json writes it: the agent must turn it into a sentinel)
  "fail"         -> {"id", "error", "stack"}
  "slow:<secs>"  -> sleeps, then replies (tests the agent's timeout and reply-id check)
  "noise"        -> first a reply with a wrong id, then the real one
  anything else  -> {"id", "result": "echoed: <code>"}
"""
import json
import sys
import time

sys.stderr.write("fake-warmup: started\n")
sys.stderr.flush()
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    try:
        request = json.loads(line)
    except ValueError as exc:
        print(json.dumps({"error": "bad json: %s" % exc}), flush=True)
        continue
    rid, code = request.get("id"), request.get("code", "")
    if code == "nan":
        print(json.dumps({"id": rid, "result": [float("nan"), float("inf"), -float("inf"), 1.5]}), flush=True)
    elif code == "fail":
        print(json.dumps({"id": rid, "error": "ReferenceError: x is not defined", "stack": "at <eval>:1"}), flush=True)
    elif code.startswith("slow:"):
        time.sleep(float(code[5:]))
        print(json.dumps({"id": rid, "result": "slow done"}), flush=True)
    elif code == "noise":
        print(json.dumps({"id": "not-" + str(rid), "result": "wrong"}), flush=True)
        print(json.dumps({"id": rid, "result": "right"}), flush=True)
    else:
        print(json.dumps({"id": rid, "result": "echoed: " + code}), flush=True)
