#!/usr/bin/python3
"""Postern benchmark: throughput through Postern against a direct
connection, and resident memory per idle session.

    /usr/bin/python3 bench/run.py [--quick] [--reps N] [--sessions N] [--rules FILE]
                                  [--policy off,default,all,cluster] [--sizes 1,10]
                                  [--conc 10,100] [--out FILE] [--scale N]
                                  [--db-url URL | --pg]
    (make bench runs it twice: off and default in every cell, then all)

--policy says which Postern is measured, comma-separated (default:
off,default; "both" is the same), one table each:
  default  Postern as configured out of the box: SPF, DKIM and DMARC on,
           greylisting off (it would defer every message), verdicts
           written to SQLite. What an admin gets.
  off      checks off (spf/dkim/dmarc/greylist disabled, no DNS lists):
           the cost of the proxy itself -- two TCP legs, the session state
           machine, the spool, the access lists and the verdict log.
  all      every check on (bench/allchecks.py): rDNS, SPF, DKIM, DMARC
           passing, one DNS list, the starter rules and the trained
           classifier, on DKIM-signed messages (all kinds then send that
           message, direct too, with smtp-source -F). The goal is at least
           0.6 of direct at 10 and 100 sessions, 1 KB and 10 KB (make bench
           measures those cells: its second run.py line).
  cluster  two nodes with the default policy on one store (docs/cluster.md):
           by default one SQLite file both open (db.path), with --db-url a
           PostgreSQL, with --pg one this script starts through
           tests/integration/harness/pg.py. Each run splits the load: one
           smtp-source per node at the same time, each with half the
           sessions (at least one, so a 1-session cell runs two) and half
           the messages; msg/s is all messages over the slower one's time,
           CPU both nodes'. Put it beside "default" (--policy
           default,cluster) to compare one node with two in the same run.

--rules FILE (e.g. etc/rules.txt) loads that rule set into the Postern
under test (rules.file, imported at its first start), so the table shows
the throughput with content rules running on every message.

Throughput: Postfix's smtp-source -> Postern -> smtp-sink, against
smtp-source -> smtp-sink directly, for 1 KB / 10 KB / 100 KB messages and
1 / 10 / 100 concurrent sessions (one message per connection, as an MX
sees them). Each kind first gets 300 warm-up messages, not counted. Direct
and Postern runs are interleaved (direct, postern,
direct, postern, ...) so both see the same machine load; the table shows
medians and the ratio postern/direct, Postern's CPU per message, and
smtp-source's and smtp-sink's together in the direct run and in the
Postern run (so one sees whether the load generator, not Postern, fills
the two cores). Numbers are reported, never asserted.
The sizes are smtp-source -l payloads or, with "all", the signed message
files of about that size.

Memory: 5,000 sessions are opened by an asyncio client, each past EHLO;
VmRSS of the Postern process before and after, divided by the count.

Everything runs on loopback with servers this script starts and stops:
smtp-sink, an unbound (Postern's dns.resolver; with "all" it holds that
scenario's records), Postern. The table goes to stdout and to
bench/results/latest.txt (--out names another file there).
"""
import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

from harness import (LOOPBACK, Postern, TempDir, Unbound, free_port,  # noqa: E402
                     wait_port)
import allchecks  # noqa: E402
import authmail  # noqa: E402
import eod  # noqa: E402

SIZES = [1024, 10 * 1024, 100 * 1024]
CONCURRENCY = [1, 10, 100]
# Messages per run, by size; --quick divides them by 4. Direct runs take
# about a second; through a proxy a few seconds (bounded by RUN_TIMEOUT).
COUNTS = {1024: 4000, 10 * 1024: 3000, 100 * 1024: 1000}
RUN_TIMEOUT = 120
WARMUP = 300		# messages of each kind before the measured runs
EOD_COUNT = 1000      # messages per end-of-data latency cell
IDLE_SESSIONS = 5000
# --policy off: everything that looks beyond the envelope is disabled.
POLICY_OFF = {"spf.enabled": "no", "dkim.enabled": "no", "dmarc.enabled": "no",
              "greylist.enabled": "no", "rbl.zones": "", "rbl.rhsbl_zones": ""}
POLICY_LABEL = {
    "default": "policy default (SPF, DKIM, DMARC on; greylisting off; verdicts to SQLite)",
    "off": "policy off (spf/dkim/dmarc/greylist off, no DNS lists): the proxy alone",
    "all": "every check on (rDNS, SPF, DKIM, DMARC pass; one DNS list; starter rules; "
           "trained classifier)",
    "cluster": "two nodes on one store, policy default, the load split between them",
}
MODES = ("off", "default", "all", "cluster")


def progress(msg):
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def start_sink(port):
    p = subprocess.Popen(["smtp-sink", "-u", "postfix", "-m", "2000",
                          "%s:%d" % (LOOPBACK, port), "2048"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_port(port, proc=p)
    return p


def source_run(port, size, sessions, count, msgfile=None):
    """One smtp-source run (a -l size payload, or msgfile); msgs/s, or None
    on failure."""
    body = ["-F", msgfile] if msgfile else ["-l", str(size)]
    argv = ["smtp-source", "-s", str(sessions), "-m", str(count), *body,
            "-f", "bench@example.org", "-t", "sink@example.org",
            "-M", "bench.example.org", "%s:%d" % (LOOPBACK, port)]
    t0 = time.monotonic()
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        progress("  smtp-source timed out after %ds" % RUN_TIMEOUT)
        return None
    dt = time.monotonic() - t0
    if r.returncode != 0:
        progress("  smtp-source failed (%d): %s" % (r.returncode, (r.stderr or r.stdout)[-300:]))
        return None
    return count / dt


def eod_table(posterns, sink_port, kinds, sizes, concs):
    """bench/eod.py per kind, size and sessions: lines of p50/p99 in ms."""
    out = ["", "End of data to the final reply, ms (p50 / p99 of %d messages, one per "
           "connection):" % EOD_COUNT]
    out.append("  size  sessions  " + "".join("%-18s" % k for k in kinds))
    for size in sizes:
        for conc in concs:
            row = "  %3d KB  %7d  " % (size // 1024, conc)
            for kind in kinds:
                p = posterns.get(kind)
                nodes = p if isinstance(p, list) else [p] if p else []
                ports = [sink_port] if kind == "direct" else [n.port for n in nodes]
                ms = eod.measure(ports, size, conc, EOD_COUNT) if ports else None
                row += "%-18s" % ("%.2f / %.2f" % (eod.pct(ms, 50), eod.pct(ms, 99))
                                  if ms else "n/a")
                progress("eod %-7s %4d KB x%-3d %s" % (kind, size // 1024, conc,
                                                        "done" if ms else "failed"))
            out.append(row)
    return out


def source_split(ports, size, sessions, count, msgfile=None):
    """One smtp-source per port at the same time, the sessions and messages
    split between them; msgs/s over the slowest one's time, or None when
    one failed."""
    body = ["-F", msgfile] if msgfile else ["-l", str(size)]
    n = len(ports)
    procs = []
    t0 = time.monotonic()
    for i, port in enumerate(ports):
        argv = ["smtp-source", "-s", str(max(1, sessions // n)), "-m", str(count // n),
                *body, "-f", "bench@example.org", "-t", "sink@example.org",
                "-M", "bench.example.org", "%s:%d" % (LOOPBACK, port)]
        procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    ok = True
    for p in procs:
        try:
            out, _ = p.communicate(timeout=max(1, RUN_TIMEOUT - (time.monotonic() - t0)))
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
            progress("  smtp-source timed out after %ds" % RUN_TIMEOUT)
            ok = False
            continue
        if p.returncode != 0:
            progress("  smtp-source failed (%d): %s" % (p.returncode, out[-300:]))
            ok = False
    dt = time.monotonic() - t0
    return (count // n) * n / dt if ok else None


def cpu_s(pid):
    """User+system CPU seconds of a process and all its threads so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peers_cpu_s(sink):
    """CPU seconds so far of smtp-sink and of the smtp-source runs (our
    waited-for children)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return cpu_s(sink.pid) + r.ru_utime + r.ru_stime


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def open_idle(port, n, hold):
    """Open n sessions, each through EHLO; run `hold` (a coroutine
    function) while they are all open; close them."""
    conns, failed = [], 0
    sem = asyncio.Semaphore(200)

    async def one(i):
        nonlocal failed
        async with sem:
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection(LOOPBACK, port), 30)
                await asyncio.wait_for(r.readline(), 30)
                w.write(b"EHLO idle%d.example.org\r\n" % i)
                while True:
                    line = await asyncio.wait_for(r.readline(), 30)
                    if not line or line[3:4] != b"-":
                        break
                conns.append(w)
            except (OSError, asyncio.TimeoutError):
                failed += 1
    tasks = [asyncio.create_task(one(i)) for i in range(n)]
    for k in range(0, n, 1000):
        await asyncio.gather(*tasks[k:k + 1000])
        progress("  %d/%d sessions open" % (min(k + 1000, n), n))
    result = await hold(len(conns), failed)
    for w in conns:
        w.close()
    return result


def measure_memory(postern, n):
    before = rss_kb(postern.proc.pid)

    async def hold(opened, failed):
        await asyncio.sleep(1)   # let the server settle its buffers
        return opened, failed, rss_kb(postern.proc.pid)
    opened, failed, after = asyncio.run(open_idle(postern.port, n, hold))
    per = (after - before) / opened if opened else float("nan")
    return before, after, opened, failed, per


def fmt_rate(v):
    return "%9.1f" % v if v is not None else "      n/a"


def int_list(text):
    return [int(x) for x in text.split(",") if x.strip()]


def mode_list(text):
    modes = ["off", "default"] if text == "both" else [m for m in text.split(",") if m]
    for m in modes:
        if m not in MODES:
            raise argparse.ArgumentTypeError("%s: one of %s or both" % (m, ", ".join(MODES)))
    return modes


def start_postern(tmp, name, sink_port, unbound, args, extra):
    """A Postern for one policy mode, or (None, why) when it did not start.
    For "cluster", a list of the two nodes (or None, why)."""
    if name.endswith("-cluster"):
        nodes = []
        for node in ("a", "b"):
            p, why = start_postern(tmp, name + "-" + node, sink_port, unbound, args, extra)
            if p is None:
                stop_posterns({n.dir: n for n in nodes}, [])
                return None, why
            nodes.append(p)
        return nodes, None
    p = Postern(tmp.join(name), "%s:%d" % (LOOPBACK, sink_port), unbound.addr,
                conf={"proxy.max_connections": 20000,
                      "proxy.max_connections_per_ip": 20000,
                      "log.level": "warning",
                      **extra,
                      **({"rules.file": os.path.abspath(args.rules)}
                         if args.rules else {})})
    try:
        if name.endswith("-all"):
            allchecks.train(p, tmp)
        p.start()
    except Exception as e:  # noqa: BLE001 -- bench reports instead
        why = str(e).splitlines()[-1]
        progress("Postern (%s) did not start: %s" % (name, why))
        return None, why
    return p, None


def stop_posterns(posterns, lines):
    """Stop each {name: Postern, [Postern, ...] or None}; a bad exit or log
    goes in lines."""
    for name, ps in posterns.items():
        for p in (ps if isinstance(ps, list) else [ps] if ps else []):
            rc = p.stop(check=False)
            bad = p.bad_log_lines()
            if rc != 0 or bad:
                lines.append("Postern (%s) exit code %s; log problems: %s" % (name, rc, bad[:5]))


def write_report(lines, name):
    """The table to stdout and to bench/results/<name>."""
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", name), "w") as f:
        f.write(text)


def table(lines, results, cpu, cells, kind, peers):
    """cpu: Postern's CPU microseconds per message (all threads), by cell:
    steadier than msg/s on a busy machine. peers: smtp-source's and
    smtp-sink's together, by cell and kind (direct or this one): what the
    load generator itself takes of the two cores in each kind of run."""
    lines.append("  size  sessions   direct msg/s  postern msg/s   postern/direct   postern CPU us/msg"
                 "   source+sink us/msg (direct, postern)")
    for size, conc in cells:
        d = results[(size, conc)]["direct"]
        p = results[(size, conc)][kind]
        c = cpu[(size, conc)][kind]
        dm = statistics.median(d) if d else None
        pm = statistics.median(p) if p else None
        ratio = "%14.2f" % (pm / dm) if dm and pm else "           n/a"
        cm = "%20.0f" % statistics.median(c) if c else "                 n/a"
        pr = ["%4.0f" % statistics.median(v) if v else " n/a"
              for v in (peers[(size, conc)]["direct"], peers[(size, conc)][kind])]
        lines.append("%4d KB  %8d   %12s  %13s   %s %s   %s, %s" % (
            size // 1024, conc, fmt_rate(dm), fmt_rate(pm), ratio, cm, pr[0], pr[1]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer messages, one repetition")
    ap.add_argument("--reps", type=int, default=None, help="repetitions per cell (default 3)")
    ap.add_argument("--sessions", type=int, default=IDLE_SESSIONS, help="idle sessions for memory")
    ap.add_argument("--rules", default=None, help="rule file to load into Postern (rules.file)")
    ap.add_argument("--policy", type=mode_list, default=["off", "default"],
                    help="which Posterns to measure, comma-separated: off, default, all, "
                    "cluster (default off,default; a table each)")
    ap.add_argument("--db-url", default=None,
                    help="cluster: the nodes share this PostgreSQL (db.url) instead of a "
                    "SQLite file")
    ap.add_argument("--pg", action="store_true",
                    help="cluster: start a PostgreSQL of its own (tests/integration/harness/pg.py)")
    ap.add_argument("--sizes", type=int_list, default=[s // 1024 for s in SIZES],
                    help="message sizes in KB, comma-separated (1,10,100)")
    ap.add_argument("--conc", type=int_list, default=CONCURRENCY,
                    help="concurrent sessions, comma-separated (1,10,100)")
    ap.add_argument("--eod", action="store_true",
                    help="also measure end-of-data latency (p50, p99) per kind")
    ap.add_argument("--no-memory", action="store_true", help="skip the idle-session measurement")
    ap.add_argument("--out", default="latest.txt", help="report file in bench/results/")
    ap.add_argument("--scale", type=int, default=None,
                    help="divide the messages per run by this (default 1; --quick: 4)")
    args = ap.parse_args()
    reps = args.reps or (1 if args.quick else 3)
    scale = args.scale or (4 if args.quick else 1)
    idle = min(args.sessions, 1000) if args.quick else args.sessions
    modes = args.policy
    sizes = [k * 1024 for k in args.sizes]
    for size in sizes:
        if size not in COUNTS:
            ap.error("--sizes: one of 1, 10, 100")

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    tmp = TempDir(prefix="postern-bench-")
    lines = []
    sink = unbound = pg = None
    posterns, why = {}, {}
    try:
        sink_port = free_port()
        sink = start_sink(sink_port)
        msgfiles = {}
        if "all" in modes:
            key = authmail.rsa_key(2048)
            unbound = Unbound(tmp.join("unbound"), local_data=allchecks.records(key),
                              local_zones=allchecks.ZONES).start()
            msgfiles = allchecks.messages(tmp, key, sizes)
        else:
            unbound = Unbound(tmp.join("unbound")).start()
        store = {"db.path": tmp.join("cluster.db")}
        if "cluster" in modes and args.pg:
            from harness.pg import PgServer
            pg = PgServer(tmp.join("pg")).start()
            store = {"db.url": pg.createdb("bench")}
        elif args.db_url:
            store = {"db.url": args.db_url}
        for mode in modes:
            posterns[mode], why[mode] = start_postern(
                tmp, "postern-" + mode, sink_port, unbound, args,
                {"off": POLICY_OFF, "default": {}, "all": allchecks.settings(),
                 "cluster": store}[mode])

        cells = [(s, c) for s in sizes for c in args.conc]
        kinds = ["direct"] + modes
        total = len(cells) * reps * len(kinds)
        done = 0
        results = {cell: {k: [] for k in kinds} for cell in cells}
        cpu = {cell: {k: [] for k in modes} for cell in cells}
        peers = {cell: {k: [] for k in kinds} for cell in cells}
        def nodes_of(kind):
            p = posterns.get(kind)
            return p if isinstance(p, list) else [p] if p else []

        def run_kind(kind, size, conc, count):
            nodes = nodes_of(kind)
            if kind == "direct":
                return source_run(sink_port, size, conc, count, msgfiles.get(size))
            if len(nodes) > 1:
                return source_split([n.port for n in nodes], size, conc, count,
                                    msgfiles.get(size))
            return source_run(nodes[0].port, size, conc, count, msgfiles.get(size)) if nodes else None

        # A warm-up run of each kind first, as bench/ab.py does: the first
        # messages of a fresh Postern compile the rules' patterns, fault the
        # classifier's table in and fill the DNS cache, which the runs
        # measured are to leave out.
        for kind in kinds:
            run_kind(kind, sizes[0], args.conc[0], WARMUP)
        t_start = time.monotonic()
        for rep in range(reps):
            for size, conc in cells:
                count = max(COUNTS[size] // scale, conc * 2)
                for kind in kinds:
                    done += 1
                    nodes = nodes_of(kind)
                    c0 = sum(cpu_s(n.proc.pid) for n in nodes)
                    s0 = peers_cpu_s(sink)
                    rate = run_kind(kind, size, conc, count)
                    if rate is not None:
                        results[(size, conc)][kind].append(rate)
                        peers[(size, conc)][kind].append((peers_cpu_s(sink) - s0) * 1e6 / count)
                        if nodes:
                            cpu[(size, conc)][kind].append(
                                (sum(cpu_s(n.proc.pid) for n in nodes) - c0) * 1e6 / count)
                    progress("[%d/%d] rep %d %-7s %4d KB x%-3d %s msg/s" % (
                        done, total, rep + 1, kind, size // 1024, conc, fmt_rate(rate).strip()))
        elapsed = time.monotonic() - t_start
        eod_lines = []
        if args.eod:
            eod_lines = eod_table(posterns, sink_port, kinds, sizes, args.conc)

        lines.append("Postern benchmark %s (%s)" % (time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                                                   "quick" if args.quick else "full"))
        lines.append("smtp-source -> [Postern ->] smtp-sink, one message per connection, "
                     "median of %d interleaved runs, %d cores, load average %.2f at the end"
                     % (reps, os.cpu_count(), os.getloadavg()[0]))
        if args.rules:
            lines.append("Postern with the rules of %s loaded" % args.rules)
        if msgfiles:
            lines.append("Every kind sends a DKIM-signed message of %s bytes (smtp-source -F)"
                         % ", ".join(str(os.path.getsize(msgfiles[s])) for s in sizes))
        for mode in modes:
            lines.append("")
            label = POLICY_LABEL[mode]
            if mode == "cluster":
                label += " (%s)" % ("PostgreSQL" if "db.url" in store else "one SQLite file")
            lines.append("Postern with %s:" % label)
            table(lines, results, cpu, cells, mode, peers)
            if mode == "all" and posterns.get(mode):
                seen = allchecks.checks_seen(posterns[mode])
                lines.append("  checks counted: %s%s" % (
                    ", ".join("%s=%d" % kv for kv in sorted(seen.items())),
                    "".join("  MISSING: " + m for m in allchecks.missing(seen))))
        lines.append("(throughput runs took %.0f s)" % elapsed)
        lines.extend(eod_lines)
        lines.append("")
        mem = posterns.get(modes[0])
        if isinstance(mem, list):
            mem = mem[0]
        if args.no_memory:
            pass
        elif mem and mem.alive():
            progress("memory: opening %d idle sessions" % idle)
            before, after, opened, failed, per = measure_memory(mem, idle)
            lines.append("Idle sessions (policy %s): %d open (%d failed); Postern VmRSS %d kB "
                         "before, %d kB after" % (modes[0], opened, failed, before, after))
            lines.append("Resident memory per idle session: %.1f kB" % per)
        else:
            lines.append("Postern not measured: %s" % (why.get(modes[0]) or "exited during the runs"))
    finally:
        stop_posterns(posterns, lines)
        if unbound:
            unbound.stop()
        if pg:
            pg.destroy()
        if sink:
            sink.terminate()
            try:
                sink.wait(10)
            except subprocess.TimeoutExpired:
                sink.kill()
        tmp.cleanup()

    write_report(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
