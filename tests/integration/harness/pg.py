"""Debian's PostgreSQL for the tests, on loopback: a throwaway cluster made
with initdb in a temporary directory, run as the unprivileged `postgres`
user (initdb and the server refuse root).

Public: PgServer, PG_BIN, ON_PG, test_db_url(), session_server(),
stop_session_server(), rows().

    s = PgServer().start()      # initdb + postgres -p PORT -k DIR, fsync off
    url = s.createdb("t1")      # postgresql://postgres@127.0.0.1:PORT/t1
    s.sql("t1", "SELECT 1")     # [("1",)]: psql's rows, as text
    s.stop(); s.start()         # the same cluster again (an outage)
    s.destroy()                 # stop and remove

One server per test process (pytest-xdist worker) serves every test that
wants one: session_server() starts it on first use and conftest.py stops
it at the end of the session. With POSTERN_TEST_DB=pg every harness
Postern gets db.url = test_db_url(): the database conftest.py made fresh
for the running test (dropped after it), or, outside a test (a module-wide
Postern), one of its own kept until the session ends.
"""
import collections
import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading

from .net import LOOPBACK, TIME_SCALE, free_port, read_log, wait_port, wait_until

PG_BIN = (sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                 key=lambda p: int(p.split("/")[-2]))[-1:] or [""])[0]
PG_USER = "postgres"
# The run puts every harness Postern on PostgreSQL (make integration-pg).
ON_PG = os.environ.get("POSTERN_TEST_DB") == "pg"


def _bin(name):
    return os.path.join(PG_BIN, name)


class PgServer:
    def __init__(self, directory=None, port=None):
        self.dir = directory or tempfile.mkdtemp(prefix="postern-pg-")
        os.makedirs(self.dir, exist_ok=True)
        self.data = os.path.join(self.dir, "data")
        self.logfile = os.path.join(self.dir, "postgres.log")
        self.port = port or free_port()
        self.proc = None
        self._n = 0
        self._lock = threading.Lock()
        if os.geteuid() == 0:
            pw = pwd.getpwnam(PG_USER)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            os.chmod(self.dir, 0o700)

    def _argv(self, argv):
        """Run as the postgres user when we are root: setpriv execs the
        command itself, so the PID we signal is the server's."""
        if os.geteuid() == 0:
            return ["setpriv", "--reuid=" + PG_USER, "--regid=" + PG_USER,
                    "--init-groups", "--"] + argv
        return argv

    def url(self, db):
        return "postgresql://%s@%s:%d/%s" % (PG_USER, LOOPBACK, self.port, db)

    def start(self, timeout=30.0):
        if not os.path.exists(os.path.join(self.data, "PG_VERSION")):
            subprocess.run(self._argv([_bin("initdb"), "-D", self.data, "-A", "trust",
                                       "-U", PG_USER, "-E", "UTF8", "--locale=C",
                                       "--no-sync", "--no-instructions"]),
                           check=True, capture_output=True, timeout=120, cwd="/")
        log = open(self.logfile, "ab")
        # fsync off: tests never survive a power cut; few buffers: several of
        # these run at once on a small machine.
        self.proc = subprocess.Popen(
            self._argv([_bin("postgres"), "-D", self.data, "-p", str(self.port),
                        "-k", self.dir, "-c", "listen_addresses=" + LOOPBACK,
                        "-c", "fsync=off", "-c", "synchronous_commit=off",
                        "-c", "full_page_writes=off", "-c", "shared_buffers=16MB",
                        "-c", "max_connections=300", "-c", "max_wal_size=256MB",
                        "-c", "logging_collector=off"]),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.dir)
        log.close()
        try:
            wait_port(self.port, timeout=timeout, proc=self.proc)
            # the port opens before the server takes connections
            wait_until(lambda: self._ready(), timeout, interval=0.1,
                       what="PostgreSQL on port %d to accept queries" % self.port)
        except (TimeoutError, RuntimeError) as e:
            self.stop()
            raise RuntimeError("%s; log:\n%s" % (e, self.log()[-3000:])) from None
        return self

    def _ready(self):
        r = subprocess.run([_bin("pg_isready"), "-h", LOOPBACK, "-p", str(self.port),
                            "-U", PG_USER, "-d", "postgres"], capture_output=True,
                           timeout=30)
        return r.returncode == 0

    def psql(self, db, sql, check=True):
        """Run sql through psql on db: its output rows (tab-separated
        fields split into tuples of text)."""
        r = subprocess.run([_bin("psql"), "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                            "-h", LOOPBACK, "-p", str(self.port), "-U", PG_USER,
                            "-d", db, "-c", sql],
                           capture_output=True, text=True, timeout=60 * TIME_SCALE,
                           env=_ENV)
        if check and r.returncode != 0:
            raise RuntimeError("psql %r: %s" % (sql, r.stderr))
        return [tuple(l.split("\t")) for l in r.stdout.splitlines() if l != ""]

    sql = psql

    def createdb(self, name=None):
        """A fresh empty database: its URL."""
        with self._lock:
            self._n += 1
            name = name or "t%d_%d" % (os.getpid(), self._n)
        self.psql("postgres", 'CREATE DATABASE "%s"' % name)
        return self.url(name)

    def dropdb(self, url):
        name = url.rsplit("/", 1)[1]
        self.psql("postgres", 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name,
                  check=False)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, mode=signal.SIGINT, timeout=30.0):
        """Stop the server (SIGINT: fast shutdown, sessions cut)."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(mode)
            try:
                proc.wait(timeout * TIME_SCALE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def log(self):
        return read_log(self.logfile)

    def destroy(self):
        self.stop()
        if not os.environ.get("POSTERN_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)


# psql's environment: not pytest's PYTEST_CURRENT_TEST, which holds the
# test's id with its parameters (some are megabytes long).
_ENV = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
_session = None
_current = None       # the running test's database URL (conftest.py)


def session_server():
    """This process's shared server, started on first use."""
    global _session
    if _session is None:
        _session = PgServer().start()
    return _session


def stop_session_server():
    global _session
    if _session is not None:
        _session.destroy()
        _session = None


def test_db_url():
    """The database a harness Postern uses under POSTERN_TEST_DB=pg."""
    return _current or session_server().createdb()


def set_current(url):
    global _current
    _current = url


def _literal(v):
    if v is None:
        return "NULL"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, bytes):
        return "'\\x%s'::bytea" % v.hex()
    return "'%s'" % str(v).replace("'", "''")


def rows(url, sql, args=()):
    """A test's query (sqlite3 style: ? placeholders, test-made values) on
    the database at url, as sqlite3 would return it: a list of tuples,
    numbers as int or float, text as str (a SELECT goes through json_agg,
    which keeps the types psql's text output loses)."""
    parts = sql.split("?")
    if len(parts) != len(args) + 1:
        raise ValueError("%d placeholders, %d values" % (len(parts) - 1, len(args)))
    text = parts[0] + "".join(_literal(a) + p for a, p in zip(args, parts[1:]))
    base, db = url.rsplit("/", 1)
    server = PgServer.__new__(PgServer)
    server.port = int(base.rsplit(":", 1)[1])
    if not text.lstrip().upper().startswith("SELECT"):
        server.psql(db, text)
        return []
    out = server.psql(db, "SELECT coalesce(json_agg(row_to_json(t)), '[]') FROM (%s) t"
                      % text)
    doc = "\n".join("\t".join(r) for r in out)     # in case JSON spans lines
    return [tuple(r.values()) for r in json.loads(doc, object_pairs_hook=collections.OrderedDict)]
