"""Running Postern's policy for the rbl/greylist/access/policy/db-fault tests.

Public: PolicyEnv, smtp_session(), rows(), wait_rows(), stage_counts(), POSTERN.

A PolicyEnv owns a temp dir, an unbound (harness.unbound) serving the test's
DNS data, one config (written by harness.postern.Postern), one database and
one test clock file (POSTERN_CLOCK_FILE: seconds added to the real clock, so
greylisting and expiry move without sleeping). It runs `postern check` (the
whole policy, offline, one process per call -- each call is also a restart:
greylist state must come back from the database) and `postern access`, or
serves SMTP in front of a harness Capture backend for end-to-end runs.
"""
import json
import os
import smtplib
import sqlite3
import subprocess

from harness.net import LOOPBACK, TempDir, wait_port, wait_until
from harness.pg import rows as pgrows
from harness.postern import POSTERN_BIN as POSTERN, Postern
from harness.unbound import BlackHole, Unbound


class PolicyEnv:
    """records: unbound local-data lines; slow_zones: names that never
    answer; conf: INI text ([section] and key = value lines) on top of the
    harness defaults, with SPF, DKIM and DMARC off unless it turns them on;
    record: every check runs with --record (greylist rows are stored, so
    runs replay a client's retries; `postern check` alone writes nothing)."""

    def __init__(self, records=(), slow_zones=(), conf="", record=False):
        self.tmp = TempDir()
        self.bh = BlackHole() if slow_zones else None
        self.dns = Unbound(self.tmp.join("dns"), local_data=list(records),
                           blackhole_zones=list(slow_zones), blackhole=self.bh)
        self.clockfile = self.tmp.join("clock")
        self.conf_extra = conf
        self.record = record
        self.p = None
        self.clock(0)

    @property
    def port(self):
        return self.p.port

    @property
    def conf(self):
        return self.p.conf_path

    @property
    def db(self):
        """The SQLite file, or the PostgreSQL URL under POSTERN_TEST_DB=pg
        (rows() reads either)."""
        return self.p.db_url or self.p.settings["db.path"]

    @db.setter
    def db(self, path):
        self.p.settings["db.path"] = path

    # -- setup -------------------------------------------------------------
    def start(self):
        self.dns.start()
        self.p = Postern(self.tmp.join("postern"), backend="%s:9" % LOOPBACK,
                         resolver=self.dns.addr, hostname="mx.policy.test",
                         conf={"spf.enabled": "no", "dkim.enabled": "no",
                               "dmarc.enabled": "no"},
                         env={"POSTERN_CLOCK_FILE": self.clockfile})
        self.write_conf(self.conf_extra)
        return self

    def write_conf(self, extra=""):
        """Apply INI text to the settings and rewrite the config file.
        [domain NAME] sections go into the file as written (the last text
        that has any replaces the ones before)."""
        section, raw = None, []
        for line in extra.splitlines():
            line = line.strip()
            if line.startswith("["):
                section = line.strip("[]")
                if section.startswith("domain"):
                    raw.append(line)
            elif section and section.startswith("domain"):
                raw.append(line)
            elif "=" in line:
                k, v = (x.strip() for x in line.split("=", 1))
                self.p.settings["%s.%s" % (section, k)] = v
        if raw:
            self.p.raw = "\n".join(raw)
        self.p.write_config()

    def clock(self, offset):
        """Move the test clock to real time + offset seconds."""
        with open(self.clockfile, "w") as f:
            f.write("%d\n" % offset)

    def env(self):
        return dict(self.p.env)

    # -- offline policy ----------------------------------------------------
    def check(self, ip, helo=None, mail=None, rcpts=(), only=None, message=None):
        """`postern check`: the JSON object, plus "_log" (its stderr).
        message (bytes) runs the DATA stage too."""
        argv = [POSTERN, "check", "-c", self.conf, "--ip", ip]
        if helo:
            argv += ["--helo", helo]
        if mail is not None:
            argv += ["--from", mail or "<>"]
        for r in rcpts:
            argv += ["--rcpt", r]
        if only:
            argv += ["--only", only]
        if self.record:
            argv.append("--record")
        if message is not None:
            path = self.tmp.join("message.eml")
            with open(path, "wb") as f:
                f.write(message)
            argv.append(path)
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                           env=self.env())
        assert p.returncode == 0, "postern check failed: %s" % p.stderr
        doc = json.loads(p.stdout)
        doc["_log"] = p.stderr
        return doc

    def access(self, *args):
        """`postern access ...`: (exit status, stdout, stderr)."""
        self.p.write_config()
        p = subprocess.run([POSTERN, "access", *args, "-c", self.conf],
                           capture_output=True, text=True, timeout=60, env=self.env())
        return p.returncode, p.stdout, p.stderr

    # -- serving -----------------------------------------------------------
    def serve(self, backend=None):
        """Start `postern serve` in front of backend (a started Capture).
        Waits for the port, not for a 220: some tests deny 127.0.0.1."""
        if backend is not None:
            self.p.settings["proxy.backend"] = backend.addr
        self.write_conf(self.conf_extra)
        self.p.start(wait_banner=False)
        wait_port(self.p.port, proc=self.p.proc)
        return self

    def stop_serving(self):
        """SIGTERM; the harness asserts exit 0 and a clean log."""
        return self.p.stop(check=True)

    def log(self):
        return self.p.log()

    def stop(self):
        if self.p is not None:
            self.p.kill()
        self.dns.stop()
        if self.bh:
            self.bh.close()
        self.tmp.cleanup()


def smtp_session(port, source="127.0.0.1"):
    """An smtplib client to Postern from a chosen loopback source address."""
    s = smtplib.SMTP(timeout=30, source_address=(source, 0))
    code, msg = s.connect(LOOPBACK, port)
    s.banner = (code, msg)
    return s


def rows(db, sql, args=()):
    """Read the database the way an admin would (a separate connection):
    the SQLite file db, or the PostgreSQL database when db is its URL."""
    if db.startswith("postgresql://"):
        return pgrows(db, sql, args)
    c = sqlite3.connect(db, timeout=10)
    try:
        return c.execute(sql, args).fetchall()
    finally:
        c.close()


def wait_rows(db, sql, want, timeout=15):
    """Wait until the query returns `want` rows (the writer batches)."""
    return wait_until(lambda: len(rows(db, sql)) == want or None, timeout,
                      what="%d rows of %s" % (want, sql))


def stage_counts(web_port, token):
    """(inline, worker): policy stages run on an I/O loop and handed to a
    worker so far, from /metrics (the config must set web.api_token).
    Waits (bounded) for the web listener, which may start after SMTP's."""
    import http.client

    def get():
        c = http.client.HTTPConnection(LOOPBACK, web_port, timeout=10)
        try:
            c.request("GET", "/metrics", headers={"Authorization": "Bearer " + token})
            return c.getresponse().read().decode()
        except OSError:
            return None
        finally:
            c.close()
    text = wait_until(get, 15, what="/metrics on port %d" % web_port)
    got = dict(line.split() for line in text.splitlines()
               if line.startswith("postern_policy_stages_"))
    return (int(got["postern_policy_stages_inline_total"]),
            int(got["postern_policy_stages_worker_total"]))
