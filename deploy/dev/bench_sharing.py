"""Delta Sharing serving, end to end (issue 15 §3): the real PyPI `delta-sharing` client
reading a grant through the gateway's file links, against the same client stack (pyarrow
over fsspec's HTTP ranges) reading the same bytes straight from Garage with a presigned
GET. Run by deploy/dev/bench-sharing.sh, which starts Garage and the gateway.

Usage: bench_sharing.py PROFILE TABLE VIEW_FILE S3_ENDPOINT BUCKET KEY_ID SECRET GATEWAY_PID ROUNDS

Per round, alternating which goes first: (1) `delta_sharing.load_as_pandas` (protocol
query + range reads of the file link + decoding) and the same pyarrow/fsspec read of the
presigned Garage URL; (2) the raw range reads alone: fsspec's HTTP file read whole in
its default blocks (the ranges pyarrow asks for), file link vs presigned URL. The
gateway's RSS is sampled every 20 ms during the gateway's reads (peak above the RSS
before them). Prints one JSON object.
"""
import datetime
import hashlib
import hmac
import json
import sys
import threading
import time
import urllib.parse

import delta_sharing
import fsspec
import pyarrow.dataset as ds
import requests

(profile_path, table, view_file, endpoint, bucket, key_id, secret, gw_pid, rounds) = sys.argv[1:10]
rounds = int(rounds)


def presign(method, key, expires=3600):
    """AWS SigV4 query-string signature (path style), region `garage`."""
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    host = urllib.parse.urlparse(endpoint).netloc
    scope = f"{day}/garage/s3/aws4_request"
    path = f"/{bucket}/{urllib.parse.quote(key)}"
    query = {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": f"{key_id}/{scope}",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": str(expires),
        "X-Amz-SignedHeaders": "host",
    }
    canonical_query = "&".join(
        f"{urllib.parse.quote(k, safe='')}={urllib.parse.quote(v, safe='')}" for k, v in sorted(query.items())
    )
    canonical = f"{method}\n{path}\n{canonical_query}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD"
    to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    k = f"AWS4{secret}".encode()
    for part in (day, "garage", "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{endpoint}{path}?{canonical_query}&X-Amz-Signature={signature}"


def rss_kb(pid, field="VmRSS:"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


class RssSampler:
    """Peak VmRSS of `pid` while running, sampled every 20 ms."""

    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, 0, threading.Event()

    def __enter__(self):
        self.before = rss_kb(self.pid)
        self.peak = self.before
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        return self

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_kb(self.pid))
            time.sleep(0.02)

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.peak = max(self.peak, rss_kb(self.pid))


# The same bytes in Garage, unencrypted, read with a presigned GET.
with open(view_file, "rb") as f:
    view = f.read()
size = len(view)
put = requests.put(presign("PUT", "direct/view.parquet"), data=view, timeout=600)
put.raise_for_status()
del view
direct_url = presign("GET", "direct/view.parquet")

with open(profile_path) as f:
    profile = json.load(f)
share, schema, name = table.split(".")


def file_link():
    r = requests.post(
        f"{profile['endpoint']}/shares/{share}/schemas/{schema}/tables/{name}/query",
        headers={"Authorization": f"Bearer {profile['bearerToken']}"},
        json={},
        timeout=60,
    )
    r.raise_for_status()
    lines = [json.loads(line) for line in r.text.splitlines() if line]
    return next(line["file"]["url"] for line in lines if "file" in line)


def via_sharing():
    return delta_sharing.load_as_pandas(f"{profile_path}#{table}")


def via_garage():
    fs = fsspec.filesystem("http")
    return ds.dataset(source=direct_url, format="parquet", filesystem=fs).to_table().to_pandas(
        date_as_object=True, use_threads=False, split_blocks=False, self_destruct=True
    )


def read_ranges(url):
    """fsspec's HTTP file, read whole: range requests of its default block size."""
    fs = fsspec.filesystem("http")
    n = 0
    with fs.open(url, "rb") as f:
        while True:
            chunk = f.read(1 << 22)
            if not chunk:
                break
            n += len(chunk)
    return n


pid = int(gw_pid)
results = {"bytes": size, "pandas": [], "ranges": [], "rss_kb_before": rss_kb(pid), "rss_kb_peak": 0}
rows = None
for i in range(rounds):
    order = ["gateway", "garage"] if i % 2 == 0 else ["garage", "gateway"]
    times = {}
    for who in order:
        t = time.perf_counter()
        if who == "gateway":
            with RssSampler(pid) as s:
                df = via_sharing()
            results["rss_kb_peak"] = max(results["rss_kb_peak"], s.peak)
        else:
            df = via_garage()
        times[who] = time.perf_counter() - t
        shape = (len(df), int(df["id"].sum()))
        assert rows in (None, shape), f"{who} read other rows: {shape} vs {rows}"
        rows = shape
        del df
    results["pandas"].append(times)
    times = {}
    link = file_link()
    for who in order:
        url = link if who == "gateway" else direct_url
        t = time.perf_counter()
        if who == "gateway":
            with RssSampler(pid) as s:
                n = read_ranges(url)
            results["rss_kb_peak"] = max(results["rss_kb_peak"], s.peak)
        else:
            n = read_ranges(url)
        times[who] = time.perf_counter() - t
        assert n == size, f"{who}: read {n} of {size} bytes"
    results["ranges"].append(times)
results["rows"] = rows[0]
print(json.dumps(results))
