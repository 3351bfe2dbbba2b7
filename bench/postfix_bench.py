#!/usr/bin/python3
"""Postern in front of a real Postfix: throughput with the backend pool on
and off, as a ratio to smtp-source talking to the same Postfix directly.

    /usr/bin/python3 bench/postfix_bench.py [--reps N] [--count N] [--conc 10,50]
    (make bench and make bench-postfix run it)

smtp-source -> Postfix (direct), smtp-source -> Postern (pool on) -> Postfix
and smtp-source -> Postern (proxy.backend_pool = 0) -> Postfix, 1 KB
messages, one message per connection, runs interleaved (direct, pool on,
pool off, all checks, direct, ...) so all see the same machine load;
medians and the ratio to direct. Postern's checks are off in "pool on" and
"pool off" (the cost of the proxy and its backend leg); "all checks" is
bench/run.py's --policy all in front of Postfix (rDNS, SPF, DKIM, DMARC,
one DNS list, the starter rules, the trained classifier; pool on): what
an admin who turns everything on sees. Every kind sends that scenario's
DKIM-signed 1 KB message (smtp-source -F). Postfix authorises XCLIENT for every address
(`static:all`, as docs/deploy.md suggests for a loopback-only smtpd):
with README.md's `127.0.0.1` a connection cannot be reused and "pool on"
is "pool off". The backend connections Postfix saw per run (maillog
"connect from" lines) show the reuse. Postfix's own queue (cleanup writes
every message to disk) bounds all three. Numbers are reported, never
asserted; the table goes to stdout and bench/results/postfix.txt.
"""
import argparse
import os
import re
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import allchecks  # noqa: E402
import authmail  # noqa: E402
from harness import Postern, Postfix, TempDir, Unbound  # noqa: E402
from run import (POLICY_OFF, fmt_rate, int_list, progress, source_run,  # noqa: E402
                 stop_posterns, write_report)

CONNECT = re.compile(r"\]: connect from ")


def start_postern(tmp, name, backend, unbound, pool, checks=None):
    """A Postern with its checks off, or with checks (settings) on and
    its classifier trained."""
    p = Postern(tmp.join(name), backend, unbound.addr,
                conf=dict(checks or POLICY_OFF, **{
                    "proxy.max_connections": 5000,
                    "proxy.max_connections_per_ip": 5000,
                    "proxy.backend_pool": pool,
                    "log.level": "warning"}))
    if checks:
        allchecks.train(p, tmp)
    return p.start()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3, help="interleaved repetitions (3)")
    ap.add_argument("--count", type=int, default=500, help="messages per run (500)")
    ap.add_argument("--conc", type=int_list, default=[10, 50],
                    help="concurrent sessions, comma-separated (10,50)")
    args = ap.parse_args()

    tmp = TempDir(prefix="postern-pfbench-")
    lines, posterns = [], {}
    pf = unbound = None
    try:
        pf = Postfix(tmp.join("postfix"), xclient_hosts="all").start()
        key = authmail.rsa_key(2048)
        unbound = Unbound(tmp.join("unbound"), local_data=allchecks.records(key),
                          local_zones=allchecks.ZONES).start()
        msg = allchecks.messages(tmp, key, [1024])[1024]
        posterns["pool on"] = start_postern(tmp, "pool-on", pf.addr, unbound, 16)
        posterns["pool off"] = start_postern(tmp, "pool-off", pf.addr, unbound, 0)
        posterns["all checks"] = start_postern(tmp, "all", pf.addr, unbound, 16,
                                               allchecks.settings())
        kinds = ["direct", "pool on", "pool off", "all checks"]
        rates = {(c, k): [] for c in args.conc for k in kinds}
        conns = {(c, k): [] for c in args.conc for k in kinds}
        t0 = time.monotonic()
        for rep in range(args.reps):
            for conc in args.conc:
                for kind in kinds:
                    port = pf.port if kind == "direct" else posterns[kind].port
                    before = len(CONNECT.findall(pf.maillog()))
                    rate = source_run(port, 1024, conc, args.count, msg)
                    if rate is not None:
                        rates[(conc, kind)].append(rate)
                    time.sleep(1)   # Postfix logs the last sessions' lines
                    conns[(conc, kind)].append(len(CONNECT.findall(pf.maillog())) - before)
                    progress("rep %d %-10s x%-3d %s msg/s, %d connections at Postfix"
                             % (rep + 1, kind, conc, fmt_rate(rate).strip(),
                                conns[(conc, kind)][-1]))
        elapsed = time.monotonic() - t0
        lines.append("Postern in front of Postfix %s" % time.strftime(
            "%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
        lines.append("smtp-source -> [Postern ->] Postfix (smtpd_authorized_xclient_hosts = "
                     "static:all), 1 KB, %d messages per run, one per connection, median of %d "
                     "interleaved runs, %d cores, load average %.2f at the end"
                     % (args.count, args.reps, os.cpu_count(), os.getloadavg()[0]))
        lines.append("pool on, pool off: Postern's checks off, the proxy and its backend leg; "
                     "all checks: every check on (bench/allchecks.py), pool on")
        lines.append("")
        lines.append("  sessions  kind          msg/s   ratio to direct   connections at Postfix per run")
        for conc in args.conc:
            d = rates[(conc, "direct")]
            dm = statistics.median(d) if d else None
            for kind in kinds:
                r = rates[(conc, kind)]
                m = statistics.median(r) if r else None
                ratio = "%.2f" % (m / dm) if m and dm else "n/a"
                lines.append("  %8d  %-10s %9s   %15s   %d" % (
                    conc, kind, fmt_rate(m), ratio, statistics.median(conns[(conc, kind)])))
        seen = allchecks.checks_seen(posterns["all checks"])
        lines.append("  all checks counted: " + ", ".join(
            "%s=%d" % kv for kv in sorted(seen.items())))
        if allchecks.missing(seen):
            lines.append("  WARNING: all checks did not run: %s" % allchecks.missing(seen))
        lines.append("(runs took %.0f s)" % elapsed)
    finally:
        stop_posterns(posterns, lines)
        if unbound:
            unbound.stop()
        if pf:
            pf.stop()
        tmp.cleanup()

    write_report(lines, "postfix.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
