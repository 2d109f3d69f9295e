"""Reads a Serre grant through Delta Sharing with the real PyPI client (delta-sharing).

Usage: delta_sharing_client.py PROFILE SHARE.SCHEMA.TABLE
Prints one JSON object: the tables the profile lists, the columns, rows and ids of the
table as loaded by `load_as_pandas`, the largest age, and the URL of the file link that a
raw protocol query returns (so the caller can check it after revocation).
"""
import json
import sys

import delta_sharing
import requests

profile_path, table = sys.argv[1], sys.argv[2]
client = delta_sharing.SharingClient(profile_path)
tables = [f"{t.share}.{t.schema}.{t.name}" for t in client.list_all_tables()]
df = delta_sharing.load_as_pandas(f"{profile_path}#{table}")

with open(profile_path) as f:
    profile = json.load(f)
share, schema, name = table.split(".")
r = requests.post(
    f"{profile['endpoint']}/shares/{share}/schemas/{schema}/tables/{name}/query",
    headers={"Authorization": f"Bearer {profile['bearerToken']}"},
    json={},
    timeout=30,
)
r.raise_for_status()
assert "delta-table-version" in {k.lower() for k in r.headers}, r.headers
lines = [json.loads(line) for line in r.text.splitlines() if line]
file_url = next(line["file"]["url"] for line in lines if "file" in line)

print(json.dumps({
    "tables": tables,
    "columns": [str(c) for c in df.columns],
    "rows": int(len(df)),
    "ids": [str(x) for x in df["id"]],
    "maxAge": int(df["age"].max()),
    "fileUrl": file_url,
}))
