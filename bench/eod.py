"""End-of-data latency: the time from the client's final "." of a message
to the server's reply to it, the wait a sending MTA sees while Postern
runs its DATA checks (and, in a cluster, waits for its store).

conc client threads each send one message per connection, as smtp-source
does, until count messages went; in a cluster the connections go to the
nodes in turn. Only loopback. Returns the sorted latencies in ms, or None
when a message was not accepted."""
import socket
import threading
import time

TIMEOUT = 60


def _reply(f):
    """One SMTP reply: its code (multi-line replies read whole)."""
    while True:
        line = f.readline()
        if not line:
            raise OSError("connection closed")
        if line[3:4] != b"-":
            return int(line[:3])


def _one(port, body):
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        f = s.makefile("rb")
        steps = [None, b"EHLO eod.example.org\r\n", b"MAIL FROM:<eod@example.org>\r\n",
                 b"RCPT TO:<sink@example.org>\r\n", b"DATA\r\n"]
        for cmd in steps:
            if cmd:
                s.sendall(cmd)
            code = _reply(f)
            if code >= 400:
                return None
        s.sendall(body)
        t0 = time.perf_counter()
        code = _reply(f)
        dt = (time.perf_counter() - t0) * 1000.0
        s.sendall(b"QUIT\r\n")
        return dt if code == 250 else None


def measure(ports, size, conc, count):
    text = (b"x" * 76 + b"\r\n") * max(1, size // 78)
    body = (b"From: <eod@example.org>\r\nTo: <sink@example.org>\r\n"
            b"Subject: end-of-data latency\r\n\r\n" + text + b".\r\n")
    lock = threading.Lock()
    state = {"next": 0, "bad": 0}
    got = []

    def worker():
        while True:
            with lock:
                i = state["next"]
                if i >= count or state["bad"]:
                    return
                state["next"] = i + 1
            try:
                dt = _one(ports[i % len(ports)], body)
            except OSError:
                dt = None
            with lock:
                if dt is None:
                    state["bad"] += 1
                else:
                    got.append(dt)
    threads = [threading.Thread(target=worker) for _ in range(conc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 4)
    if state["bad"] or len(got) < count:
        return None
    return sorted(got)


def pct(sorted_ms, q):
    """The q-th percentile (nearest rank)."""
    k = max(0, min(len(sorted_ms) - 1, int(round(q / 100.0 * len(sorted_ms) + 0.5)) - 1))
    return sorted_ms[k]
