"""Postern itself, started from build/postern for a test.

Public: Postern, REPO, POSTERN_BIN, make_cert().

    p = Postern(d.join("postern"), backend=cap.addr, resolver=u.addr,
                conf={"proxy.max_message_size": 10000})
    p.start()                   # returns after a real 220 banner
    p.port, p.addr, p.web_port  # where it listens
    p.reload({"proxy.max_recipients": 2})   # rewrite config + SIGHUP
    p.log()                     # everything it wrote on stderr
    p.stop()                    # SIGTERM; asserts exit 0, no fatal/ASan

The config always sets dns.resolver to the test's own unbound (never
"system"), db.path and proxy.spool_dir inside the test dir, web.listen on a
free loopback port, greylist.enabled = no (greylisting tests turn it
on), bayes.enabled = no (the classifier's tests turn it on) and
rbl.health_interval = 0 (test_dnslist_health.py turns it on). `conf`
keys are "section.key"; values are written as given.
Set POSTERN_BIN to run another binary (e.g. an ASan build).
With POSTERN_TEST_DB=pg (make integration-pg) db.url points at a fresh
PostgreSQL database of the test (harness/pg.py) unless conf gives one;
p.db_url is it ("" on SQLite), p.pg the server.
"""
import os
import re
import signal
import socket
import sqlite3
import subprocess

from . import pg as pgmod
from .net import LOOPBACK, TIME_SCALE, free_port, read_log, wait_until

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
POSTERN_BIN = os.environ.get("POSTERN_BIN") or os.path.join(REPO, "build", "postern")
# What must never appear in Postern's log in a passing test.
BAD_LOG = re.compile(r"\bfatal\b|AddressSanitizer|LeakSanitizer|runtime error:|"
                     r"Segmentation fault|\bpanic\b", re.I)


def make_cert(directory, cn="postern.test"):
    """A self-signed RSA certificate and key (openssl req -x509); returns
    (cert_path, key_path)."""
    os.makedirs(directory, exist_ok=True)
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=%s" % cn, "-addext", "subjectAltName=DNS:%s" % cn],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class Postern:
    def __init__(self, directory, backend, resolver, conf=None, port=None,
                 hostname="postern.test", binary=None, env=None):
        if not resolver or resolver == "system":
            raise ValueError("tests must give Postern their own unbound as dns.resolver")
        self.dir = directory
        os.makedirs(self.dir, exist_ok=True)
        self.port = port or free_port()
        self.web_port = free_port()
        self.binary = binary or POSTERN_BIN
        self.conf_path = os.path.join(self.dir, "postern.conf")
        self.logfile = os.path.join(self.dir, "postern.log")
        self.env = dict(os.environ, **(env or {}))
        self.settings = {
            "proxy.listen": "%s:%d" % (LOOPBACK, self.port),
            "proxy.backend": backend,
            "proxy.hostname": hostname,
            "proxy.spool_dir": os.path.join(self.dir, "spool"),
            "proxy.drain_timeout": "5",
            "proxy.timeout_backend_connect": "5",
            "proxy.timeout_backend": "30",
            "dns.resolver": resolver,
            "dns.timeout": "2000",
            "db.path": os.path.join(self.dir, "postern.db"),
            "web.listen": "%s:%d" % (LOOPBACK, self.web_port),
            "greylist.enabled": "no",
            "bayes.enabled": "no",
            # Test lists list what the test needs (often 127.0.0.1, RFC 5782's
            # "not listed" entry): no health probes unless a test asks.
            "rbl.health_interval": "0",
            "log.level": "info",
        }
        if os.environ.get("POSTERN_TEST_DB") == "pg" and "db.url" not in (conf or {}):
            self.settings["db.url"] = pgmod.test_db_url()
        self.settings.update({k: str(v) for k, v in (conf or {}).items()})
        # INI text written after the settings, verbatim: sections whose
        # names hold dots ([domain example.org]) do not fit "section.key".
        self.raw = ""
        self.proc = None
        self._log = None
        self._termed = False   # SIGTERM already sent: stop() only waits

    @property
    def db_url(self):
        return self.settings.get("db.url", "")

    def rows(self, sql, args=()):
        """Run sql (? placeholders) on this Postern's database as an admin
        would, from outside, and commit: the rows, integers as int. SQLite
        or PostgreSQL, whichever it runs on."""
        if self.db_url:
            return pgmod.rows(self.db_url, sql, args)
        c = sqlite3.connect(self.settings["db.path"], timeout=10)
        try:
            with c:
                return c.execute(sql, args).fetchall()
        finally:
            c.close()

    @property
    def pg(self):
        """The test PostgreSQL server behind db_url (None on SQLite)."""
        return pgmod.session_server() if self.db_url else None

    @property
    def addr(self):
        return "%s:%d" % (LOOPBACK, self.port)

    def write_config(self):
        os.makedirs(self.settings["proxy.spool_dir"], exist_ok=True)
        sections = {}
        for k, v in self.settings.items():
            sec, key = k.split(".", 1)
            sections.setdefault(sec, []).append("%s = %s" % (key, v))
        with open(self.conf_path, "w") as f:
            f.write("# written by the test harness\n")
            for sec, lines in sections.items():
                f.write("\n[%s]\n%s\n" % (sec, "\n".join(lines)))
            if self.raw:
                f.write("\n" + self.raw + "\n")

    def configtest(self):
        """Run `postern configtest -c FILE`: (exit code, output)."""
        self.write_config()
        r = subprocess.run([self.binary, "configtest", "-c", self.conf_path],
                           capture_output=True, text=True, timeout=30)
        return r.returncode, r.stdout + r.stderr

    def start(self, timeout=20.0, wait_banner=True):
        if not os.access(self.binary, os.X_OK):
            raise RuntimeError("%s not built: run make" % self.binary)
        self.write_config()
        self._log = open(self.logfile, "ab")
        self._log.write(("harness: starting %s\n" % self.binary).encode())
        self._log.flush()
        self.proc = subprocess.Popen([self.binary, "serve", "-c", self.conf_path],
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.env,
                                     cwd=self.dir)
        if wait_banner:
            try:
                wait_until(self._banner, timeout, interval=0.1,
                           what="Postern's 220 banner on %s" % self.addr)
            except TimeoutError as e:
                self.kill()   # a start that gives up leaves nothing running
                raise TimeoutError("%s; log:\n%s" % (e, self.log()[-4000:])) from None
            self.wait_probe(0)
        return self

    def wait_probe(self, before, timeout=5.0):
        """Best effort: wait until the backend probe (at start, and after
        each SIGHUP) has reported more than `before` times, so its
        connection is over before the test's first session. A backend that
        never answers only costs the timeout."""
        try:
            wait_until(lambda: self.log().count("backend probe: ") > before,
                       timeout * TIME_SCALE, interval=0.05, what="backend probe")
        except TimeoutError:
            pass

    def _banner(self):
        if self.proc.poll() is not None:
            rc, self.proc = self.proc.returncode, None
            self._log.close()
            raise RuntimeError("postern exited %s at start:\n%s" % (rc, self.log()[-4000:]))
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=2) as s:
                s.settimeout(5)
                data = s.recv(512)
                s.sendall(b"QUIT\r\n")
                return data.startswith(b"220")
        except OSError:
            return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if sig == signal.SIGTERM:
            self._termed = True
        self.proc.send_signal(sig)

    def reload(self, conf=None):
        """Update settings, rewrite the file and send SIGHUP. Callers wait
        for the effect themselves (wait_until on new sessions)."""
        if conf:
            self.settings.update({k: str(v) for k, v in conf.items()})
        self.write_config()
        self.proc.send_signal(signal.SIGHUP)

    def log(self):
        return read_log(self.logfile)

    def bad_log_lines(self):
        return [l for l in self.log().splitlines() if BAD_LOG.search(l)]

    def stop(self, check=True, timeout=20.0):
        """SIGTERM (unless signal(SIGTERM) was sent already: a second one
        may mean "quit now") and wait. With check, assert exit code 0 and a
        clean log. Returns the exit code. Kills (and fails) if it does not
        exit in time."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            if not self._termed:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
                self._log.close()
                raise AssertionError("postern did not exit %.0fs after SIGTERM:\n%s"
                                     % (timeout, self.log()[-4000:]))
        self._log.close()
        rc = proc.returncode
        if check:
            assert rc == 0, "postern exit code %s:\n%s" % (rc, self.log()[-4000:])
            bad = self.bad_log_lines()
            assert not bad, "postern log has errors:\n" + "\n".join(bad[:20])
        return rc

    def kill(self):
        """Teardown of last resort: SIGKILL without checks."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None
        if self._log:
            self._log.close()
