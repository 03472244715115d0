"""redis_py_check.py - redis-py (Debian's python3-redis) against raftconf-server, the way an
application uses it: get/set/mget/scan_iter, pipelines with and without a transaction,
transaction() with a WATCH retry under contention, Pub/Sub with health_check_interval
(PING inside subscribed mode), CFG.SET/CFG.GET/CFG.WATCH through execute_command,
reconnection after a server restart, and a 3-node cluster (write on one node, read on the
others).

    /usr/bin/python3 redis_py_check.py PORT RESTART_DIR [CLUSTER_PORTS]

Prints "ok NAME" / "FAIL NAME: why" per check; exit status 1 when any failed.
"""
import os
import subprocess
import sys
import threading
import time

import redis

PORT = int(sys.argv[1])
RESTART_DIR = sys.argv[2]
CLUSTER = [int(p) for p in sys.argv[3].split(",")] if len(sys.argv) > 3 and sys.argv[3] else []
HERE = os.path.dirname(os.path.abspath(__file__))
TAG = "py-%d" % os.getpid()
failures = 0


def ok(name):
    print("ok   " + name)


def fail(name, why):
    global failures
    failures += 1
    print("FAIL %s: %s" % (name, why))


def check(name, got, want):
    if got == want:
        ok(name)
    else:
        fail(name, "expected %r, got %r" % (want, got))


def step(fn):
    """Run one group of checks; an exception fails the group, the run goes on."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - report any client error as a failure
        fail(fn.__name__, "%s: %s" % (type(e).__name__, e))


def fields(reply):
    """A RESP2 flat list of field/value pairs -> dict of str -> value."""
    it = iter(reply)
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in zip(it, it)}


def flat(x, out=None):
    out = [] if out is None else out
    if isinstance(x, (list, tuple)):
        for e in x:
            flat(e, out)
    elif isinstance(x, dict):
        for k, v in x.items():
            flat(k, out)
            flat(v, out)
    elif isinstance(x, bytes):
        out.append(x.decode())
    elif x is not None:
        out.append(str(x))
    return out


def client(port, **kw):
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=10, **kw)


r = client(PORT)


def basics():
    check("ping", r.ping(), True)
    check("set", r.set(TAG + ":a", "1"), True)
    check("get", r.get(TAG + ":a"), b"1")
    check("get missing", r.get(TAG + ":nosuch"), None)
    r.mset({TAG + ":b": "2", TAG + ":c": "3"})
    check("mget", r.mget([TAG + ":a", TAG + ":nosuch", TAG + ":c"]), [b"1", None, b"3"])
    check("set nx", r.set(TAG + ":a", "x", nx=True), None)
    check("exists", r.exists(TAG + ":a", TAG + ":b", TAG + ":nosuch"), 2)
    check("delete", r.delete(TAG + ":c"), 1)
    check("echo", r.echo("hi"), b"hi")
    check("info loading", r.info("persistence")["loading"], 0)
    check("config get save", r.config_get("save"), {"save": ""})


def scan_iter():
    with r.pipeline(transaction=False) as p:
        for i in range(500):
            p.set("%s:s:%d" % (TAG, i), i)
        p.execute()
    got = set(k.decode() for k in r.scan_iter(match=TAG + ":s:*", count=37))
    check("scan_iter", got, set("%s:s:%d" % (TAG, i) for i in range(500)))


def pipeline_plain():
    p = r.pipeline(transaction=False)
    for i in range(100):
        p.set("%s:p:%d" % (TAG, i), i)
    p.get("%s:p:99" % TAG)
    res = p.execute()
    check("pipeline (no transaction)", (len(res), res[0], res[-1]), (101, True, b"99"))


def pipeline_transaction():
    p = r.pipeline(transaction=True)
    p.set(TAG + ":t", "tv").get(TAG + ":t").execute_command("CFG.SET", "/%s/t" % TAG, "v")
    res = p.execute()
    check("pipeline (transaction) set/get", res[:2], [True, b"tv"])
    check("pipeline (transaction) cfg.set", fields(res[2]).get("version"), 1)


def watch_retry():
    """transaction() retries when a watched key changes between WATCH and EXEC."""
    key = TAG + ":counter"
    r.set(key, 0)
    other = client(PORT)
    calls = [0]

    def incr(pipe):
        calls[0] += 1
        v = int(pipe.get(key))
        if calls[0] == 1:  # a competing writer slips in after WATCH: EXEC must fail
            other.set(key, 100)
        pipe.multi()
        pipe.set(key, v + 1)

    r.transaction(incr, key)
    check("transaction() retried after a conflicting write", calls[0], 2)
    check("transaction() result", r.get(key), b"101")

    # contention: 4 threads x 20 increments through transaction(); none may be lost
    r.set(key, 0)

    def worker():
        c = client(PORT)
        for _ in range(20):
            c.transaction(lambda p: (lambda v: (p.multi(), p.set(key, v + 1)))(int(p.get(key))),
                          key)

    ts = [threading.Thread(target=worker) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    check("transaction() under contention", r.get(key), b"80")


def pubsub_health():
    c = client(PORT, health_check_interval=1)
    p = c.pubsub(ignore_subscribe_messages=True)
    p.subscribe(TAG + ":ch")
    p.psubscribe(TAG + ":p*")
    time.sleep(1.2)  # past the interval: the next read sends PING in subscribed mode
    check("publish", r.publish(TAG + ":ch", "m1"), 1)
    r.publish(TAG + ":px", "m2")
    got = []
    deadline = time.time() + 5
    while len(got) < 2 and time.time() < deadline:
        m = p.get_message(timeout=0.5)
        if m:
            got.append((m["type"], m["channel"], m["data"]))
    check("pubsub messages", sorted(got), [("message", (TAG + ":ch").encode(), b"m1"),
                                           ("pmessage", (TAG + ":px").encode(), b"m2")])
    time.sleep(1.2)
    p.check_health()  # an explicit health check; a bad PONG raises
    check("pubsub ping in subscribed mode", p.get_message(timeout=0.5), None)
    p.close()


def cfg_commands():
    s = fields(r.execute_command("CFG.SET", "/%s/a" % TAG, "x1"))
    check("cfg.set version", s.get("version"), 1)
    g = fields(r.execute_command("CFG.GET", "/%s/a" % TAG))
    check("cfg.get", (g.get("value"), g.get("version")), (b"x1", 1))
    try:
        r.execute_command("CFG.SET", "/%s/a" % TAG, "x2", "IFVERSION", "0")
        fail("cfg.set ifversion", "no error")
    except redis.ResponseError as e:
        check("cfg.set ifversion", str(e).startswith("VERSION"), True)


def cfg_watch():
    rev = fields(r.execute_command("CFG.SET", "/%s/w/a" % TAG, "w1"))["revision"]
    r.execute_command("CFG.SET", "/%s/w/b" % TAG, "w2")
    got = flat(r.execute_command("CFG.WATCH", "/%s/w/" % TAG, "FROM", rev - 1, "COUNT", 10))
    check("cfg.watch", ("/%s/w/a" % TAG in got, "w1" in got, "/%s/w/b" % TAG in got),
          (True, True, True))


def reconnect():
    r.set(TAG + ":r", "before")
    subprocess.run(["bash", os.path.join(HERE, "..", "lib.sh"), "restart", RESTART_DIR],
                   check=True, timeout=30, stdout=subprocess.DEVNULL)
    v, last = None, None
    for _ in range(50):  # the pooled connection is dead; redis-py reconnects on retry
        try:
            v = r.get(TAG + ":r")
            break
        except redis.ConnectionError as e:
            last = e
            time.sleep(0.1)
    check("reconnect after restart (value kept)", v, b"before")
    if v is None:
        fail("reconnect", last)
    check("set after reconnect", r.set(TAG + ":r", "after"), True)


def cluster():
    cs = [client(p) for p in CLUSTER]
    for i, c in enumerate(cs):
        check("cluster set via node %d" % (i + 1), c.set("%s:c%d" % (TAG, i), i), True)
        for j, d in enumerate(cs):  # linearizable reads: visible on every node at once
            check("cluster get %d via node %d" % (i + 1, j + 1), d.get("%s:c%d" % (TAG, i)),
                  str(i).encode())
    s = fields(cs[0].execute_command("CFG.SET", "/%s/c" % TAG, "cv"))
    g = fields(cs[2].execute_command("CFG.GET", "/%s/c" % TAG))
    check("cluster cfg via two nodes", (g["value"], g["mod_revision"]), (b"cv", s["revision"]))
    p = cs[1].pubsub(ignore_subscribe_messages=True)
    p.subscribe(TAG + ":cch")
    check("cluster publish on the same node", cs[1].publish(TAG + ":cch", "x"), 1)
    m, deadline = None, time.time() + 3
    while m is None and time.time() < deadline:  # the confirmation is consumed first
        m = p.get_message(timeout=0.5)
    check("cluster message", m and m["data"], b"x")
    p.close()
    with cs[2].pipeline(transaction=True) as pipe:
        pipe.set(TAG + ":ct", "1").get(TAG + ":ct")
        check("cluster transaction on a follower", pipe.execute(), [True, b"1"])


for fn in (basics, scan_iter, pipeline_plain, pipeline_transaction, watch_retry,
           pubsub_health, cfg_commands, cfg_watch, reconnect):
    step(fn)
if CLUSTER:
    step(cluster)
print("redis-py %s: %s" % (redis.__version__, "all passed" if not failures
                           else "%d failed" % failures))
sys.exit(1 if failures else 0)
