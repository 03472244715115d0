"""cli_pty.py - redis-cli in interactive mode under a pseudo-terminal, as a person uses it.

redis-cli (7.x) asks the server for COMMAND DOCS when it starts and builds its inline hints
and HELP text from the reply. Typing "CFG.SET " must show the hint built from raftconf's
docs ("key value [IFVERSION version]": no static table in redis-cli knows CFG.SET), "SET "
must show raftconf's syntax for SET (without the expiry options Redis has), and
"HELP CFG.SET" must print the summary and group the server sent.

    /usr/bin/python3 cli_pty.py PORT
Prints "ok NAME" / "FAIL NAME: why"; exit status 1 when any check failed.
"""
import fcntl
import os
import pty
import select
import struct
import sys
import tempfile
import termios
import time

PORT = sys.argv[1]
failures = 0


def check(name, cond, detail):
    global failures
    if cond:
        print("ok   " + name)
    else:
        failures += 1
        print("FAIL %s: %s" % (name, detail))


def read_for(fd, seconds):
    out = b""
    end = time.time() + seconds
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            # linenoise asks where the cursor is (ESC [ 6 n) and waits for the answer
            for _ in range(chunk.count(b"\x1b[6n")):
                os.write(fd, b"\x1b[1;1R")
    return out.decode("utf-8", "replace")


def type_slowly(fd, text):
    read_for(fd, 0.1)  # answer a pending cursor query, let the prompt settle
    for ch in text:  # linenoise refreshes (and shows hints) per key press
        os.write(fd, ch.encode())
        time.sleep(0.01)


home = tempfile.mkdtemp(prefix="rc-cli-home-")
env = dict(os.environ, TERM="xterm", HOME=home, REDISCLI_HISTFILE="/dev/null",
           REDISCLI_RCFILE="/dev/null")
pid, fd = pty.fork()
if pid == 0:
    os.execvpe("redis-cli", ["redis-cli", "-h", "127.0.0.1", "-p", PORT], env)
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))  # 40 x 200 terminal

try:
    banner = read_for(fd, 1.0)
    check("prompt", ("127.0.0.1:%s>" % PORT) in banner, repr(banner[-200:]))

    type_slowly(fd, "CFG.SET ")
    out = read_for(fd, 0.5)
    check("hint for CFG.SET from COMMAND DOCS", "key value [IFVERSION version]" in out,
          repr(out[-300:]))
    os.write(fd, b"\x15")  # Ctrl-U: clear the line
    read_for(fd, 0.2)

    type_slowly(fd, "SET ")
    out = read_for(fd, 0.5)
    check("hint for SET is raftconf's", "key value [NX|XX] [GET]\x1b" in out and
          "KEEPTTL" not in out, repr(out[-300:]))
    type_slowly(fd, "k1 ")
    out = read_for(fd, 0.5)
    check("hint drops typed arguments", "value [NX|XX] [GET]" in out and
          "key value" not in out, repr(out[-300:]))
    os.write(fd, b"\x15")
    read_for(fd, 0.2)

    type_slowly(fd, "HELP CFG.SET\r")
    out = read_for(fd, 0.8)
    check("HELP text from COMMAND DOCS", "compare-and-set" in out and "raftconf" in out,
          repr(out[-400:]))

    type_slowly(fd, "HELP @pubsub\r")
    out = read_for(fd, 0.8)
    check("HELP @group from COMMAND DOCS", "PUBLISH" in out and "PSUBSCRIBE" in out,
          repr(out[-400:]))

    type_slowly(fd, "CLIENT SETN")
    out = read_for(fd, 0.3)
    os.write(fd, b"\t")  # tab completion from the subcommand docs
    out = read_for(fd, 0.5)
    check("tab completes a subcommand", "CLIENT SETNAME" in out, repr(out[-300:]))
    os.write(fd, b"\x15")
    read_for(fd, 0.2)

    type_slowly(fd, "CLIENT LIST ")
    out = read_for(fd, 0.5)
    check("hint for a subcommand", "[TYPE NORMAL|MASTER|REPLICA|PUBSUB] [ID client-id "
          "[client-id ...]]" in out, repr(out[-300:]))
    os.write(fd, b"\x15")
    read_for(fd, 0.2)

    type_slowly(fd, "SET /pty/k hello\r")
    out = read_for(fd, 0.8)
    check("SET in the REPL", "OK" in out, repr(out[-200:]))
    type_slowly(fd, "GET /pty/k\r")
    out = read_for(fd, 0.8)
    check("GET in the REPL", '"hello"' in out, repr(out[-200:]))
    type_slowly(fd, "quit\r")
    read_for(fd, 0.5)
finally:
    try:
        os.kill(pid, 9)
    except OSError:
        pass
    os.waitpid(pid, 0)
print("cli_pty: %s" % ("all passed" if not failures else "%d failed" % failures))
sys.exit(1 if failures else 0)
