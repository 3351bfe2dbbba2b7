"""Running Postern's policy for the rbl/greylist/access/policy/db-fault tests.

Public: PolicyEnv, Sink, smtp_session(), rows().

A PolicyEnv owns a temp dir, an unbound (harness.unbound) serving the test's
DNS data, one config file, one database and one test clock file
(POSTERN_CLOCK_FILE: seconds added to the real clock, so greylisting and
expiry move without sleeping). It runs `postern check` (the whole policy,
offline, one process per call -- each call is also a restart: the greylist
state must come back from the database) and `postern access`, or serves
SMTP in front of a Sink backend for end-to-end runs.
"""
import json
import os
import signal
import smtplib
import sqlite3
import subprocess
import threading

from aiosmtpd.controller import Controller

from harness.net import LOOPBACK, TempDir, free_port, wait_port, wait_until
from harness.unbound import BlackHole, Unbound

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POSTERN = os.path.join(ROOT, "build", "postern")


class Sink:
    """An aiosmtpd backend that keeps every message it accepted."""

    def __init__(self):
        self.port = free_port()
        self.messages = []
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, env):
                outer.messages.append((env.mail_from, list(env.rcpt_tos), env.content))
                return "250 2.0.0 Ok: queued as T%d" % len(outer.messages)

        self._c = Controller(Handler(), hostname=LOOPBACK, port=self.port)

    def start(self):
        self._c.start()
        return self

    def stop(self):
        self._c.stop()


class PolicyEnv:
    """records: unbound local-data lines; slow_zones: names that never
    answer; conf: extra INI text (sections and keys) appended last."""

    def __init__(self, records=(), slow_zones=(), conf=""):
        self.tmp = TempDir()
        self.bh = BlackHole() if slow_zones else None
        self.dns = Unbound(self.tmp.join("dns"), local_data=list(records),
                           blackhole_zones=list(slow_zones), blackhole=self.bh)
        self.db = self.tmp.join("postern.db")
        self.clockfile = self.tmp.join("clock")
        self.conf_extra = conf
        self.conf = self.tmp.join("postern.conf")
        self.port = free_port()
        self.sink = None
        self.proc = None
        self.logpath = self.tmp.join("postern.log")
        self.clock(0)

    # -- setup -------------------------------------------------------------
    def start(self):
        self.dns.start()
        self.write_conf(self.conf_extra)
        return self

    def write_conf(self, extra=""):
        """The config: our unbound, our db, then the test's own keys (a
        later duplicate key wins in inih? no: we merge by section here)."""
        base = {
            "proxy": {"listen": "%s:%d" % (LOOPBACK, self.port),
                      "hostname": "mx.policy.test",
                      "spool_dir": self.tmp.join("spool")},
            "dns": {"resolver": self.dns.addr, "timeout": "1000"},
            "db": {"path": self.db},
            "web": {"listen": ""},
            "spf": {"enabled": "no"},
            "dkim": {"enabled": "no"},
            "dmarc": {"enabled": "no"},
        }
        section = None
        for line in extra.splitlines():
            line = line.strip()
            if not line:
                continue
            if line.startswith("["):
                section = line.strip("[]")
                base.setdefault(section, {})
            else:
                k, v = (x.strip() for x in line.split("=", 1))
                base[section][k] = v
        if self.sink:
            base["proxy"]["backend"] = "%s:%d" % (LOOPBACK, self.sink.port)
        os.makedirs(self.tmp.join("spool"), exist_ok=True)
        with open(self.conf, "w") as f:
            for s, kv in base.items():
                f.write("[%s]\n" % s)
                for k, v in kv.items():
                    f.write("%s = %s\n" % (k, v))

    def clock(self, offset):
        """Move the test clock to real time + offset seconds."""
        with open(self.clockfile, "w") as f:
            f.write("%d\n" % offset)

    def env(self):
        e = dict(os.environ)
        e["POSTERN_CLOCK_FILE"] = self.clockfile
        return e

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
        p = subprocess.run([POSTERN, "access", *args, "-c", self.conf],
                           capture_output=True, text=True, timeout=60, env=self.env())
        return p.returncode, p.stdout, p.stderr

    # -- serving -----------------------------------------------------------
    def serve(self, sink=None):
        """Start `postern serve` in front of sink (a started Sink)."""
        if sink is not None:
            self.sink = sink
        self.write_conf(self.conf_extra)
        self._log = open(self.logpath, "a")
        self.proc = subprocess.Popen([POSTERN, "serve", "-c", self.conf],
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     env=self.env())
        wait_port(self.port, proc=self.proc)
        return self

    def stop_serving(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        rc, self.proc = self.proc.returncode, None
        self._log.close()
        return rc

    def log(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def stop(self):
        self.stop_serving()
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
    """Read the database the way an admin would (a separate connection)."""
    c = sqlite3.connect(db, timeout=10)
    try:
        return c.execute(sql, args).fetchall()
    finally:
        c.close()


def wait_rows(db, sql, want, timeout=15):
    """Wait until the query returns `want` rows (the writer batches)."""
    return wait_until(lambda: len(rows(db, sql)) == want or None, timeout,
                      what="%d rows of %s" % (want, sql))
