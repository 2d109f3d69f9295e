"""CPU time a Prometheus server spends on each shape of the accounting window's queries.

Usage: prometheus_query_cost.py URL PROMETHEUS_PID WINDOW_END_UNIX [REPEATS] [NAME...]

Against a Prometheus holding the usage_prometheus bench's series (10,000 pods; e.g. one
started on a TSDB that bench made), each query is sent REPEATS times (default 5) one
after the other and the server's CPU time (utime + stime from /proc) is divided by
REPEATS: a figure the machine's load inflates less than wall time. Variants beside the
production shapes show where the cost lies (per series selected, not per sample).
"""
import sys
import time
import urllib.parse
import urllib.request

url, pid, end = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
repeats = int(sys.argv[4]) if len(sys.argv) > 4 else 5
C = 'container_cpu_usage_seconds_total{container!="",image!=""}'
L = f"last_over_time({C}[300s])"
P = f"last_over_time({C}[3600s] offset 300s)"
K = "kepler_pod_cpu_joules_total"
REQ = "kube_pod_container_resource_requests"
QUERIES = {
    # Production shapes (namespace pass).
    "cpu_difference": f"sum by (namespace) (({L} - {P} >= 0) or {L})",
    "cpu_requested": f'sum by (namespace) (sum_over_time({REQ}{{resource="cpu"}}[299999ms:30s])) * 30',
    "memory_requested": f'sum by (namespace) (sum_over_time({REQ}{{resource="memory"}}[299999ms:30s])) * 3e-08',
    "memory_used": 'sum by (namespace) (sum_over_time(container_memory_working_set_bytes{container!="",image!=""}[299999ms:30s])) * 3e-08',
    "kepler_package": f'sum by (pod_namespace) (increase({K}{{zone="package"}}[300s]))',
    "kepler_dram": f'sum by (pod_namespace) (increase({K}{{zone="dram"}}[300s]))',
    # Variants.
    "last_in_window_only": f"sum by (namespace) ({L})",
    "previous_only": f"sum by (namespace) ({P})",
    "kepler_both_zones": f'sum by (pod_namespace, zone) (increase({K}{{zone=~"package|dram"}}[300s]))',
    "requests_all_resources": f'sum by (namespace, resource) (sum_over_time({REQ}{{resource=~"cpu|memory|nvidia_com_gpu"}}[299999ms:30s]))',
    "memory_used_no_subquery": 'sum by (namespace) (sum_over_time(container_memory_working_set_bytes{container!="",image!=""}[300s]))',
    "count_only": f'count({REQ}{{resource="cpu"}})',
}


def cpu_s():
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100


for name in sys.argv[5:] or list(QUERIES):
    c0, t0 = cpu_s(), time.perf_counter()
    for _ in range(repeats):
        q = urllib.parse.urlencode({"query": QUERIES[name], "time": end})
        urllib.request.urlopen(f"{url}/api/v1/query?{q}").read()
    print(f"{name:24} {(cpu_s() - c0) / repeats * 1000:6.0f} ms CPU/query  {(time.perf_counter() - t0) / repeats * 1000:6.0f} ms wall")
