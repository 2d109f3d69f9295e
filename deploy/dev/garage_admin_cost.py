#!/usr/bin/env python3
"""Garage's CPU time per admin API call, by endpoint (deploy/dev/garage-admin-cost.sh).

Usage: garage_admin_cost.py STATE_DIR [N]. STATE_DIR is a running node's (garage.sh start):
its env, admin-token and garage.pid files. Creates N buckets and keys named
serre-probe-<i> the way the operator provisions a sandbox, then reads them back, and prints
Garage's CPU time (from /proc/<pid>/stat) and the wall time per call for each step.
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request

state = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
env = dict(line.strip().split("=", 1) for line in open(os.path.join(state, "env")) if "=" in line)
base = env["SERRE_GARAGE_ADMIN_ENDPOINT"] + "/v2/"
token = open(os.path.join(state, "admin-token")).read().strip()
pid = int(open(os.path.join(state, "garage.pid")).read().strip())


def call(op, query="", body=None):
    req = urllib.request.Request(
        base + op + query,
        data=None if body is None else json.dumps(body).encode(),
        method="POST" if body is not None else "GET",
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return {"status": e.code}


def cpu_s():
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def step(name, count, fn):
    c0, t0 = cpu_s(), time.time()
    for i in range(count):
        fn(i)
    c1, t1 = cpu_s(), time.time()
    print(f"| {name} | {count} | {1000 * (c1 - c0) / count:.1f} ms | {1000 * (t1 - t0) / count:.1f} ms |", flush=True)


buckets, keys = {}, {}
print("| call | count | Garage CPU per call | wall per call |")
print("|---|---|---|---|")
step("CreateBucket", n, lambda i: buckets.__setitem__(i, call("CreateBucket", body={"globalAlias": f"serre-probe-{i}"})["id"]))
step("UpdateBucket (quota)", n, lambda i: call("UpdateBucket", f"?id={buckets[i]}", {"quotas": {"maxSize": 10**10, "maxObjects": None}}))
step("GetKeyInfo?search= (no such key)", n, lambda i: call("GetKeyInfo", f"?search=serre-probe-{i}&showSecretKey=true"))
step("CreateKey", n, lambda i: keys.__setitem__(i, call("CreateKey", body={"name": f"serre-probe-{i}"})["accessKeyId"]))
step("AllowBucketKey", n, lambda i: call("AllowBucketKey", body={"bucketId": buckets[i], "accessKeyId": keys[i], "permissions": {"read": True, "write": True, "owner": False}}))
step("GetBucketInfo?globalAlias=", n, lambda i: call("GetBucketInfo", f"?globalAlias=serre-probe-{i}"))
step("GetKeyInfo?search= (found)", n, lambda i: call("GetKeyInfo", f"?search=serre-probe-{i}&showSecretKey=true"))
step(f"ListKeys ({n} keys)", 50, lambda i: call("ListKeys"))
