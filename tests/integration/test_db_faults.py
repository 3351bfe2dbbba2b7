"""The database failing under a running server: locked by another process
(an sqlite3 connection holding BEGIN EXCLUSIVE), and full (a tiny tmpfs in
a private mount namespace). Every failure must turn into a 4xx for the
client plus a clear log line -- never a crash, never a 250 for mail the
backend did not take, never a verdict row lost once the database is back.
"""
import os
import shutil
import smtplib
import sqlite3
import subprocess
import time

import pytest

from harness.capture import Capture
from policyenv import POSTERN, PolicyEnv, rows, smtp_session, wait_rows
from harness.net import wait_port, wait_until

MSG = b"Subject: fault test\r\nMessage-ID: <f@example.org>\r\n\r\nbody\r\n"


def lock(db):
    """Another process-like writer holding the database's write lock."""
    c = sqlite3.connect(db, timeout=10, isolation_level=None)
    c.execute("BEGIN EXCLUSIVE")
    return c


def try_send(port, rcpt="b@example.net", source="127.0.0.1"):
    """(stage, code) of the first refusal, or ("sent", 250)."""
    s = smtp_session(port, source=source)
    try:
        s.ehlo("c.example")
        code, _ = s.mail("a@example.org")
        if code != 250:
            return "mail", code
        code, _ = s.rcpt(rcpt)
        if code != 250:
            return "rcpt", code
        code, _ = s.data(MSG)
        return ("sent" if code == 250 else "data"), code
    finally:
        try:
            s.quit()
        except smtplib.SMTPException:
            s.close()


def test_locked_database_greylisting_answers_451(tmp_path):
    sink = Capture().start()
    e = PolicyEnv(conf="[greylist]\nenabled = yes\n").start()
    try:
        e.serve(sink)
        assert try_send(e.port) == ("rcpt", 450)        # greylisted normally
        held = lock(e.db)
        assert try_send(e.port, rcpt="c@example.net") == ("rcpt", 451)
        assert "greylist: database unavailable; answering 451" in e.log()
        held.rollback()
        held.close()
        # writable again: back to normal greylisting, then a pass
        wait_until(lambda: try_send(e.port, rcpt="d@example.net") == ("rcpt", 450),
                   timeout=30, what="greylisting to work again")
        assert sink.accepted() == []
        assert e.stop_serving() == 0
    finally:
        e.stop()
        sink.stop()


def test_locked_database_nothing_lost():
    """Greylisting off: mail flows while the lock is held until the writer
    notices; from then on MAIL gets 451 4.3.0. After the lock goes, every
    message the backend took has its verdict row."""
    sink = Capture().start()
    e = PolicyEnv(conf="[greylist]\nenabled = no\n").start()
    outcomes = []
    try:
        e.serve(sink)
        held = lock(e.db)
        # the writer notices after its busy timeout (2 s): bounded by time
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            outcomes.append(try_send(e.port, rcpt="r%d@example.net" % len(outcomes)))
            if outcomes[-1] == ("mail", 451):
                break
            time.sleep(0.1)
        assert outcomes[-1] == ("mail", 451), outcomes[-5:]
        assert set(outcomes) <= {("sent", 250), ("mail", 451)}
        assert "database not writable; answering 451" in e.log()
        held.rollback()
        held.close()
        wait_until(lambda: try_send(e.port, rcpt="after@example.net") == ("sent", 250),
                   timeout=30, what="mail to flow again")
        sent = len(sink.accepted())
        assert sent == outcomes.count(("sent", 250)) + 1
        wait_rows(e.db, "SELECT id FROM verdicts WHERE verdict = 'accept'", sent)
        assert "writable again" in e.log()
        assert e.stop_serving() == 0
    finally:
        e.stop()
        sink.stop()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="needs root for a private tmpfs")
def test_full_disk_answers_4xx_and_keeps_running():
    """db.path on a 256 KiB tmpfs mounted in a private mount namespace:
    big verdict rows fill it; clients then get 4xx, the server lives on,
    and every message the backend took was answered 250 (none lost)."""
    sink = Capture().start()
    e = PolicyEnv(conf="[greylist]\nenabled = no\n").start()
    dbdir = e.tmp.join("small")
    os.makedirs(dbdir)
    e.db = os.path.join(dbdir, "postern.db")
    e.p.settings["proxy.backend"] = sink.addr
    e.write_conf(e.conf_extra)
    logpath = e.tmp.join("full.log")
    log = open(logpath, "a")
    # the mount exists only for this process tree; /proc/PID/root sees it
    proc = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         'mount -t tmpfs -o size=256k tmpfs "$1" && exec "$2" serve -c "$3"',
         "sh", dbdir, POSTERN, e.conf],
        stdout=log, stderr=subprocess.STDOUT, env=e.env())
    try:
        wait_port(e.port, proc=proc)
        big = "x" * 900
        results = []
        for i in range(600):
            s = smtp_session(e.port)
            try:
                s.ehlo("c.example")
                code, _ = s.mail("a@example.org")
                if code == 250:
                    code, _ = s.rcpt("r%d-%s@example.net" % (i, big[:40]))
                if code == 250:
                    code, _ = s.data(b"Subject: " + big.encode() + b"\r\n\r\nbody\r\n")
                results.append(code)
            finally:
                s.close()
            if code // 100 == 4:
                break
        assert results[-1] // 100 == 4, results[-5:]
        assert proc.poll() is None                       # still serving
        assert results.count(250) == len(sink.accepted())  # 250 only when delivered
        with open(logpath, errors="replace") as f:
            text = f.read()
        assert "database or disk is full" in text
        assert "451" in text
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
        e.stop()
        sink.stop()
