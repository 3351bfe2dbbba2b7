#!/usr/bin/python3
"""Throughput with the whole policy on, as a fraction of policy off.

Postfix's smtp-source sends one DKIM-signed 10 KB message over and over
(a new session per message, SESSIONS in parallel) through Postern to
Postfix's smtp-sink. Two Postern configurations, run interleaved
(off, on, off, on, ...) in one invocation, medians compared:

  off:   greylisting, DNS lists, SPF, DKIM and DMARC all disabled;
  lists: as "on" without SPF, DKIM and DMARC (what policy/ and db/ cost:
         DNS lists, greylisting, access lists, rate limits, verdict log);
  on:    DNS block/allow lists for the client (two zones, answers cached),
         RHSBL for HELO and sender, greylisting (the one triplet passed
         during warm-up), SPF pass, DKIM pass, DMARC pass, access lists
         (a few entries), rate limits on (high), verdict log and stats.

Everything listens on loopback; the DNS is a private unbound. Prints the
throughput ratio on/off (the goal is >= 0.8) and, because a shared machine
makes wall-clock rates noisy, also the CPU time Postern itself spent per
message (from /proc/PID/stat), which other tenants do not disturb.
Numbers are reported, never asserted. Usage: bench/policy_bench.py [--quick]
"""
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import authmail as am                               # noqa: E402
from dnszone import txt_rdata                       # noqa: E402
from harness.net import LOOPBACK, TempDir, free_port, wait_port  # noqa: E402
from harness.postern import POSTERN_BIN, Postern    # noqa: E402
from harness.unbound import Unbound                 # noqa: E402

QUICK = "--quick" in sys.argv
SESSIONS = 20
MESSAGES = 600 if QUICK else 3000
ROUNDS = 2 if QUICK else 7
SENDER, RCPT, HELO = "alice@example.org", "bob@example.net", "mx.example.org"


def records(key):
    return [
        'example.org. 300 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"',
        "sel._domainkey.example.org. 300 IN TXT %s" % txt_rdata(am.dkim_txt(key)),
        '_dmarc.example.org. 300 IN TXT "v=DMARC1; p=reject"',
        # lists that know other clients; ours gets cached NXDOMAIN answers
        "2.0.0.127.bl.test. 300 IN A 127.0.0.2",
        "2.0.0.127.wl.test. 300 IN A 127.0.0.2",
        "spam.example.dbl.test. 300 IN A 127.0.1.2",
    ]


def settings(mode, tmp):
    off = {"greylist.enabled": "no", "spf.enabled": "no", "dkim.enabled": "no",
           "dmarc.enabled": "no", "rbl.zones": "", "rbl.rhsbl_zones": ""}
    # greylist.delay 1 s: the warm-up passes the triplet in real time, so
    # no test clock (POSTERN_CLOCK_FILE makes every time_wall() open and
    # read a file -- a cost production never pays) is needed.
    on = {"greylist.enabled": "yes", "greylist.auto_allow": "0", "greylist.delay": "1",
          "spf.enabled": "yes", "dkim.enabled": "yes", "dmarc.enabled": "yes",
          "rbl.zones": "bl.test*5, wl.test*-2", "rbl.rhsbl_zones": "dbl.test*5",
          "rate.connections_per_minute": "10000000",
          "rate.messages_per_minute": "10000000"}
    s = dict(off if mode == "off" else on)
    if mode == "lists":
        s.update({"spf.enabled": "no", "dkim.enabled": "no", "dmarc.enabled": "no"})
    s.update({"log.level": "warning",
              "proxy.max_connections_per_ip": "1000"})
    return s


def smtp_source(port, msgfile, count, sessions=SESSIONS):
    """Run smtp-source; (seconds, exit status, output)."""
    argv = ["smtp-source", "-s", str(sessions), "-m", str(count), "-F", msgfile,
            "-f", SENDER, "-t", RCPT, "-M", HELO, "%s:%d" % (LOOPBACK, port)]
    t0 = time.monotonic()
    p = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    return time.monotonic() - t0, p.returncode, p.stdout + p.stderr


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_postern(tmp, mode, n, dns, sink_port, msgfile):
    p = Postern(tmp.join("postern-%s-%d" % (mode, n)), backend="%s:%d" % (LOOPBACK, sink_port),
                resolver=dns.addr, hostname="mx.bench.test", conf=settings(mode, tmp))
    p.start()
    if mode != "off":
        # pass the one greylist triplet: first try, then retry after the delay
        subprocess.run([POSTERN_BIN, "access", "add", "allow", "rcpt",
                        "postmaster@example.net", "-c", p.conf_path], capture_output=True)
        subprocess.run([POSTERN_BIN, "access", "add", "deny", "client",
                        "192.0.2.0/24", "-c", p.conf_path], capture_output=True)
        smtp_source(p.port, msgfile, 1, sessions=1)
        time.sleep(1.1)
    return p


def main():
    if not os.access(POSTERN_BIN, os.X_OK):
        sys.exit("build/postern missing: run make")
    tmp = TempDir(prefix="postern-policy-bench-")
    key = am.rsa_key(2048)
    body = "".join("Line %04d of a ten kilobyte benchmark message, long enough.\r\n" % i
                   for i in range(165))
    msg = am.sign(am.message(frm="Alice <%s>" % SENDER, to=RCPT, body=body), key)
    msgfile = tmp.join("msg.txt")
    with open(msgfile, "wb") as f:                  # smtp-source appends CRLF
        f.write(msg.replace(b"\r\n", b"\n"))
    dns = Unbound(tmp.join("dns"), local_data=records(key)).start()
    sink_port = free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    sink = subprocess.Popen(["smtp-sink", *user, "-c", "%s:%d" % (LOOPBACK, sink_port), "1000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    modes = ("off", "lists", "on")
    results = {m: [] for m in modes}
    cpu = {m: [] for m in modes}
    try:
        wait_port(sink_port, proc=sink)
        for r in range(ROUNDS):
            for mode in modes:
                p = start_postern(tmp, mode, r, dns, sink_port, msgfile)
                try:
                    smtp_source(p.port, msgfile, 50)            # warm caches
                    c0 = cpu_seconds(p.proc.pid)
                    secs, rc, out = smtp_source(p.port, msgfile, MESSAGES)
                    ms = (cpu_seconds(p.proc.pid) - c0) * 1000 / MESSAGES
                    rate = MESSAGES / secs
                    results[mode].append(rate)
                    cpu[mode].append(ms)
                    print("round %d %-5s %6d msgs in %6.2fs = %7.1f msg/s, %.3f ms CPU/msg%s" % (
                        r + 1, mode, MESSAGES, secs, rate, ms,
                        "" if rc == 0 else "  (smtp-source exit %d: %s)" % (rc, out[-200:])),
                        flush=True)
                    if mode == "on" and r == 0:
                        check_policy_ran(p)
                finally:
                    p.stop(check=False)
    finally:
        sink.terminate()
        sink.wait(10)
        dns.stop()
        tmp.cleanup()
    off, lists, on = (statistics.median(results[m]) for m in modes)
    coff, clists, con = (statistics.median(cpu[m]) for m in modes)
    lines = ["policy bench: %d sessions in parallel, %d x 10 KB DKIM-signed messages per run, "
             "%d rounds" % (SESSIONS, MESSAGES, ROUNDS),
             "  policy off: %7.1f msg/s (median)" % off,
             "  lists only: %7.1f msg/s (median), ratio %.2f" % (lists, lists / off),
             "  policy on:  %7.1f msg/s (median)" % on,
             "  ratio on/off: %.2f (goal >= 0.80)" % (on / off),
             "  Postern CPU per message: off %.3f ms, lists %.3f ms, on %.3f ms; "
             "CPU-bound ratio off/on: %.2f, off/lists: %.2f"
             % (coff, clists, con, coff / con, coff / clists)]
    print("\n".join(lines))
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "policy.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def check_policy_ran(p):
    """The 'on' run must really have run the checks: look at its stats."""
    import sqlite3
    c = sqlite3.connect(p.settings["db.path"], timeout=10)
    try:
        got = dict(c.execute("SELECT name, sum(n) FROM stats WHERE name LIKE 'check:%' "
                             "GROUP BY name").fetchall())
    finally:
        c.close()
    want = ["check:spf:pass", "check:dkim:pass", "check:dmarc:pass", "check:grey:pass"]
    missing = [w for w in want if not got.get(w)]
    print("  checks seen in the 'on' run: %s%s" % (
        ", ".join("%s=%d" % kv for kv in sorted(got.items())),
        "" if not missing else "  MISSING: " + ", ".join(missing)), flush=True)


if __name__ == "__main__":
    main()
