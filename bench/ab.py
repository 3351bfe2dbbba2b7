#!/usr/bin/python3
"""Two (or more) Postern binaries side by side, for an optimisation's
before/after: each gets its own Postern in one scenario of bench/run.py
(--policy all by default), and smtp-source runs go round robin (direct,
A, B, direct, A, B, ...) so all see the same machine load.

    /usr/bin/python3 bench/ab.py OLD_BINARY NEW_BINARY [--size 10] [--conc 10]
                                 [--count 2000] [--rounds 5] [--policy all]

A binary may carry settings of its own: build/postern,policy.workers=4
compares a setting with the same binary.

Prints the median msg/s, the ratio to direct and Postern's CPU
microseconds per message (all threads, /proc), the steadier figure on a
shared machine. Loopback only, with the servers bench/run.py starts.
"""
import argparse
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import allchecks  # noqa: E402
import authmail  # noqa: E402
import run  # noqa: E402
from harness import LOOPBACK, Postern, TempDir, Unbound, free_port  # noqa: E402

CONF = {"proxy.max_connections": 20000, "proxy.max_connections_per_ip": 20000,
        "log.level": "warning"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("binaries", nargs="+")
    ap.add_argument("--size", type=int, default=10, help="KB: 1, 10 or 100")
    ap.add_argument("--conc", type=int, default=10)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--policy", choices=run.MODES, default="all")
    args = ap.parse_args()
    size = args.size * 1024
    tmp = TempDir(prefix="postern-ab-")
    sink = unbound = None
    ps = []
    try:
        sink_port = free_port()
        sink = run.start_sink(sink_port)
        key = authmail.rsa_key(2048)
        unbound = Unbound(tmp.join("unbound"), local_data=allchecks.records(key),
                          local_zones=allchecks.ZONES).start()
        msg = allchecks.messages(tmp, key, [size])[size]
        mode = {"off": run.POLICY_OFF, "default": {}, "all": allchecks.settings()}[args.policy]
        for i, b in enumerate(args.binaries):
            path, *sets = b.split(",")
            own = dict(kv.split("=", 1) for kv in sets)
            p = Postern(tmp.join("p%d" % i), "%s:%d" % (LOOPBACK, sink_port), unbound.addr,
                        binary=os.path.abspath(path), conf={**CONF, **mode, **own})
            if args.policy == "all":
                allchecks.train(p, tmp)
            ps.append(p.start())
            run.source_run(p.port, size, args.conc, 300, msg)      # warm up
        rate = {k: [] for k in ["direct"] + args.binaries}
        cpu = {b: [] for b in args.binaries}
        for r in range(args.rounds):
            rate["direct"].append(run.source_run(sink_port, size, args.conc, args.count, msg))
            for b, p in zip(args.binaries, ps):
                c0 = run.cpu_s(p.proc.pid)
                rate[b].append(run.source_run(p.port, size, args.conc, args.count, msg))
                cpu[b].append((run.cpu_s(p.proc.pid) - c0) * 1e6 / args.count)
            run.progress("round %d: %s" % (r + 1, "  ".join(
                "%.0f" % (v[-1] or 0) for v in rate.values())))
        d = statistics.median(x or 0 for x in rate["direct"])
        print("policy %s, %d KB x %d sessions, %d messages, %d rounds: direct %.0f msg/s"
              % (args.policy, args.size, args.conc, args.count, args.rounds, d))
        for b in args.binaries:
            m = statistics.median(x or 0 for x in rate[b])
            print("  %-30s %7.0f msg/s  ratio %.2f  CPU %5.0f us/msg (runs %s)" % (
                b, m, m / d if d else 0, statistics.median(cpu[b]),
                " ".join("%.0f" % c for c in cpu[b])))
    finally:
        for p in ps:
            p.stop(check=False)
        if unbound:
            unbound.stop()
        if sink:
            sink.terminate()
            sink.wait(10)
        tmp.cleanup()


if __name__ == "__main__":
    main()
