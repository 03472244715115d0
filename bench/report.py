#!/usr/bin/python3
"""bench/report.py - turns bench/run.sh's raw measurements into the table and the JSON file.

Inputs (written by run.sh):
  --raw       CSV rows: system,config,op,tool,clients,pipeline,round,rps,p50,p99,errors,
              cli_cpu,srv_cpu,other_cpu (one row per measured run; other_cpu is the machine's
              busy CPU minus server and client: load from processes outside the benchmark)
  --failover  CSV rows: mode,rep,avail_ms,max_gap_ms,failed,failed_leader_conns,exit_ms,rps
  --recovery  lines of key=value tokens
Each table cell is the median over rounds. A ratio compares a raftconf row with the
reference row of the same round (same tool and pipeline; etcd: its own tool, pipeline 1,
same 50 clients), and the median of those per-round ratios is shown, so drift of the
machine between rounds hits both sides alike. Mean latency by Little's law is
clients x pipeline / ops/s: at pipeline > 1 redis-benchmark's p50/p99 are times to the
first reply of a batch, not per request.
"""
import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import time

WRITE = {"SET", "CFG.SET", "put"}
READ = {"GET", "CFG.GET", "GET READONLY", "range"}
REFS = [("vs redis AOF", ("redis", "appendonly always")),
        ("vs redis mem", ("redis", "no persistence")),
        ("vs etcd", ("etcd-3", "3 members"))]
SYS_ORDER = ["raftconf", "raftconf-3", "redis", "etcd-3"]
OP_ORDER = ["SET", "CFG.SET", "put", "GET", "CFG.GET", "GET READONLY", "range", "MIX 90/10"]


def opclass(op):
    return "write" if op in WRITE else "read" if op in READ else "mixed"


def ref_op(ref_sys, cls):
    if ref_sys == "etcd-3":
        return {"write": "put", "read": "range", "mixed": "MIX 90/10"}[cls]
    return {"write": "SET", "read": "GET", "mixed": "MIX 90/10"}[cls]


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def load_raw(path):
    rows = []
    with open(path) as f:
        for r in csv.reader(f):
            if len(r) != 14:
                continue
            rows.append(dict(system=r[0], config=r[1], op=r[2], tool=r[3], clients=int(r[4]),
                             pipeline=int(r[5]), round=int(r[6]), rps=float(r[7]),
                             p50=float(r[8]), p99=float(r[9]), errors=int(r[10]),
                             cli_cpu=float(r[11]), srv_cpu=float(r[12]),
                             other_cpu=float(r[13])))
    return rows


def find_ref(rows, row, ref):
    cls = opclass(row["op"])
    sys_, cfg = ref
    want = ref_op(sys_, cls)
    out = {}
    for r in rows:
        if (r["system"], r["config"], r["op"]) != (sys_, cfg, want):
            continue
        if sys_ == "etcd-3":
            if row["pipeline"] != 1 or r["clients"] != row["clients"]:
                continue
        elif r["tool"] != row["tool"] or r["pipeline"] != row["pipeline"]:
            continue
        out[r["round"]] = r["rps"]
    return out


def build_table(rows):
    cells = {}
    for r in rows:
        key = (r["system"], r["config"], r["op"], r["tool"], r["clients"], r["pipeline"])
        cells.setdefault(key, []).append(r)
    table = []
    for key, rs in cells.items():
        system, config, op, tool, clients, pipeline = key
        rps = median([r["rps"] for r in rs])
        t = dict(system=system, config=config, op=op, tool=tool, clients=clients,
                 pipeline=pipeline, rounds=len(rs), ops_per_s=rps,
                 p50_ms=median([r["p50"] for r in rs]), p99_ms=median([r["p99"] for r in rs]),
                 little_mean_ms=(1000.0 * clients * pipeline / rps) if rps else None,
                 client_cpu_pct=median([r["cli_cpu"] for r in rs]),
                 server_cpu_pct=median([r["srv_cpu"] for r in rs]),
                 other_cpu_pct=median([r["other_cpu"] for r in rs]),
                 errors=sum(r["errors"] for r in rs))
        if system.startswith("raftconf"):
            for name, ref in REFS:
                ratios = []
                for r in rs:
                    refs = find_ref(rows, r, ref)
                    if refs.get(r["round"]):
                        ratios.append(r["rps"] / refs[r["round"]])
                t[name] = median(ratios)
        table.append(t)

    def order(t):
        return (t["pipeline"], OP_ORDER.index(t["op"]) if t["op"] in OP_ORDER else 99,
                t["tool"], SYS_ORDER.index(t["system"]) if t["system"] in SYS_ORDER else 9,
                t["config"])
    return sorted(table, key=order)


def fmt(v, nd=2):
    if v is None:
        return "-"
    if isinstance(v, float) and nd == 0:
        return f"{v:,.0f}"
    return f"{v:.{nd}f}"


def print_table(table):
    head = ["system", "config", "op", "tool", "c", "P", "ops/s", "p50 ms", "p99 ms",
            "mean ms", "client CPU %", "server CPU %", "other CPU %", "vs redis AOF",
            "vs redis mem",
            "vs etcd"]
    print("| " + " | ".join(head) + " |")
    print("| " + " | ".join("---" if i < 4 else "---:" for i in range(len(head))) + " |")
    for t in table:
        vals = [t["system"], t["config"], t["op"], t["tool"], str(t["clients"]),
                str(t["pipeline"]), fmt(t["ops_per_s"], 0), fmt(t["p50_ms"]), fmt(t["p99_ms"]),
                fmt(t["little_mean_ms"]), fmt(t["client_cpu_pct"], 0),
                fmt(t["server_cpu_pct"], 0), fmt(t["other_cpu_pct"], 0)]
        for name, _ in REFS:
            vals.append(fmt(t.get(name)) if name in t else "")
        if t["errors"]:
            vals[2] += " (ERRORS)"
        print("| " + " | ".join(vals) + " |")


def load_failover(path):
    reps = {}
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        for r in csv.reader(f):
            if len(r) < 7:
                continue
            reps.setdefault(r[0], []).append(dict(
                rep=int(r[1]), avail_ms=float(r[2]), max_gap_ms=float(r[3]),
                failed=int(r[4]), failed_leader_conns=int(r[5]), exit_ms=float(r[6]),
                write_rps=float(r[7]) if len(r) > 7 and r[7] else None))
    out = {}
    for mode, rs in reps.items():
        ok = [r["avail_ms"] for r in rs if r["avail_ms"] >= 0]
        out[mode] = dict(repetitions=len(rs), never_available=len(rs) - len(ok),
                         median_ms=median(ok), worst_ms=max(ok) if ok else None,
                         best_ms=min(ok) if ok else None,
                         median_max_gap_ms=median([r["max_gap_ms"] for r in rs]),
                         worst_max_gap_ms=max(r["max_gap_ms"] for r in rs),
                         failed_writes=sum(r["failed"] for r in rs),
                         failed_writes_on_leader_connections=sum(
                             r["failed_leader_conns"] for r in rs),
                         median_old_leader_exit_ms=median([r["exit_ms"] for r in rs]),
                         reps=rs)
    return out


def load_recovery(path):
    kv = {}
    if not os.path.exists(path):
        return kv
    with open(path) as f:
        for tok in f.read().split():
            if "=" in tok:
                k, v = tok.split("=", 1)
                try:
                    kv[k] = float(v) if "." in v else int(v)
                except ValueError:
                    kv[k] = v
    keys = kv.get("keys")
    if keys:
        for who in ("rc", "redis"):
            a, b = kv.get(f"{who}_rss_empty_kb"), kv.get(f"{who}_rss_loaded_kb")
            if isinstance(a, int) and isinstance(b, int):
                kv[f"{who}_mib_per_million_keys"] = round((b - a) / 1024 * 1e6 / keys, 1)
                kv[f"{who}_rss_loaded_mib"] = round(b / 1024, 1)
        a, b = kv.get("rc_rss_empty_kb"), kv.get("snap_leader_rss_kb")
        if isinstance(a, int) and isinstance(b, int):
            kv["rc_compacted_mib_per_million_keys"] = round((b - a) / 1024 * 1e6 / keys, 1)
        for who in ("rc", "redis", "snap"):
            s = kv.get(f"{who}_load_s")
            if isinstance(s, (int, float)) and s > 0:
                kv[f"{who}_load_keys_per_s"] = round(keys / s)
    return kv


def print_recovery(kv):
    g = kv.get
    if "idle_term_changes" in kv:
        print(f"\nidle cluster: {g('idle_term_changes')} term changes in {g('idle_seconds')} s "
              "without load (false election timeouts)")
    if "keys" not in kv:
        return
    print(f"\nrecovery and memory, {g('keys'):,} keys of 64 bytes (redis-cli --pipe):")
    print(f"  restart with {g('rc_log_entries', '?'):,} log entries past the snapshot "
          f"({g('rc_dir_mb')} MB on disk): after SIGTERM {g('restart_clean_ms')} ms, after "
          f"kill -9 {g('restart_crash_ms')} ms (exec to first read served)")
    print(f"  new node catching up by snapshot: {g('snapshot_catchup_ms')} ms (leader snapshot "
          f"index {g('snap_leader_snapshot_index')}, snapshots received "
          f"{g('snapshots_received')})")
    print(f"  RSS raftconf, log kept: {g('rc_rss_loaded_mib')} MiB "
          f"({g('rc_mib_per_million_keys')} MiB per 1M keys over the empty node); log "
          f"compacted (defaults): {round(g('snap_leader_rss_kb', 0) / 1024, 1)} MiB "
          f"({g('rc_compacted_mib_per_million_keys')} per 1M keys); after the restart "
          f"{round(g('rc_rss_restarted_kb', 0) / 1024, 1)} MiB; the new node "
          f"{round(g('snap_follower_rss_kb', 0) / 1024, 1)} MiB")
    print(f"  data directory: log kept {g('rc_dir_mb')} MB, defaults (leader) "
          f"{g('snap_leader_dir_mb')} MB, the node that joined by snapshot "
          f"{g('snap_follower_dir_mb')} MB")
    print(f"  RSS redis: {g('redis_rss_loaded_mib')} MiB ({g('redis_mib_per_million_keys')} "
          f"MiB per 1M keys)")
    print(f"  mass load: raftconf {g('rc_load_keys_per_s')} keys/s (log kept), "
          f"{g('snap_load_keys_per_s')} keys/s (defaults); redis "
          f"{g('redis_load_keys_per_s')} keys/s")


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except Exception:
        return ""


def machine():
    mem_kb = int(sh("awk '/MemTotal/ {print $2}' /proc/meminfo") or 0)
    return dict(cores=os.cpu_count(), memory_gib=round(mem_kb / 1048576, 1),
                cpu=sh("awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo"),
                kernel=platform.release(), loadavg=sh("cut -d' ' -f1-3 /proc/loadavg"),
                disk=sh("df -T /tmp | awk 'NR==2 {print $2}'"))


def main():
    ap = argparse.ArgumentParser()
    for a in ("raw", "failover", "recovery", "out", "mode", "bin", "commit", "command"):
        ap.add_argument("--" + a, default="")
    ap.add_argument("--rounds", type=int, default=0)
    ap.add_argument("--seconds", type=int, default=0)
    a = ap.parse_args()
    rows = load_raw(a.raw) if a.raw and os.path.exists(a.raw) else []
    table = build_table(rows)
    fo = load_failover(a.failover)
    rec = load_recovery(a.recovery)
    commit = a.commit
    meta = dict(date=time.strftime("%Y-%m-%d %H:%M:%S %Z"), commit=commit,
                machine=machine(), mode=a.mode, rounds=a.rounds, seconds=a.seconds,
                command=a.command, binary=a.bin,
                versions=dict(redis=sh("redis-server --version"),
                              etcd=sh("etcd --version | head -1"),
                              wrk=sh("wrk --version 2>&1 | head -1")))
    print(f"\n# {meta['date']}, commit {commit}, {meta['machine']['cores']} cores, "
          f"{meta['machine']['memory_gib']} GiB, {meta['mode']} mode, {a.rounds} round(s), "
          f"{a.seconds} s")
    print(f"# {meta['versions']['redis']}; {meta['versions']['etcd']}\n")
    if table:
        print_table(table)
    if fo:
        print("\nfailover (default settings; time from the signal to the first successful "
              "write sent after it):")
        for mode, s in fo.items():
            print(f"  {mode:4s}: {s['repetitions']} reps, median {fmt(s['median_ms'], 0)} ms, "
                  f"worst {fmt(s['worst_ms'], 0)} ms, best {fmt(s['best_ms'], 0)} ms; "
                  f"longest write gap median {fmt(s['median_max_gap_ms'], 0)} ms, worst "
                  f"{fmt(s['worst_max_gap_ms'], 0)} ms; failed writes {s['failed_writes']} "
                  f"(+{s['failed_writes_on_leader_connections']} on the old leader's "
                  f"connections); old leader exited after "
                  f"{fmt(s['median_old_leader_exit_ms'], 0)} ms (median)")
    if rec:
        print_recovery(rec)
    result = dict(meta=meta, table=table, failover=fo, recovery=rec, raw=rows)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1)
        print(f"\nJSON: {a.out}")



if __name__ == "__main__":
    main()
