"""pytest fixtures for Postern's integration tests (and other helpers' own).

Import the classes with `from harness import ...` (this file puts
tests/integration on sys.path). Fixtures:

  workdir          a TempDir removed after the test (POSTERN_KEEP_TMP=1 keeps it)
  unbound          module-wide unbound with no data (every name NXDOMAIN)
  make_unbound     factory: make_unbound(local_data=[...], auth_zones={...},
                   blackhole_zones=[...]) -> started Unbound (a BlackHole is
                   made for you when blackhole_zones are given: u.blackhole)
  capture          a started Capture backend (defaults: XCLIENT+XFORWARD, 250s)
  make_capture     factory: make_capture(xclient=False, data_reply="451 ...", ...)
  postfix          module-wide Postfix: rejected@example.org gets 550 at RCPT,
                   mail from defer@example.org gets 451 at end of data, a
                   header "X-Test-Reject:" gets 550 at end of data
  make_postfix     factory with the Postfix class's options
  make_postern     factory: make_postern(backend_addr, conf={...}, resolver=...,
                   start=True) -> Postern; resolver defaults to `unbound`.
                   At teardown a still-running Postern is stopped with SIGTERM
                   and must exit 0 with a clean log (else the test errors).
  postern          make_postern(capture.addr) with defaults

Mark a test `@pytest.mark.netns` to run it (fixtures included) in its own
network+mount namespace: see harness/netns.py.

Reliability rules the session enforces (see harness/net.py, leftovers.py):
  - every temporary directory of a run lives under one root ($TMPDIR is set
    to it); a process still using it at the end (postfix, unbound, postern,
    chromium) is killed and the run fails;
  - free_port() hands out ports below the ephemeral range, flock-reserved
    across concurrent runs;
  - POSTERN_TEST_TIME_SCALE=N stretches every bounded wait (ASan: 3);
  - POSTERN_TEST_ORDER=reverse | shuffle[:SEED] reorders files and tests to
    find order dependencies; `make` passes --timeout (pytest-timeout).
"""
import os
import random
import resource
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (IN_NETNS, BlackHole, Capture, Postern, Postfix,  # noqa: E402
                     TempDir, Unbound, netns_argv, wait_until)
from harness import pg  # noqa: E402
from harness.leftovers import RunRoot  # noqa: E402
from _pytest.reports import TestReport  # noqa: E402

# Many concurrent sessions need descriptors, in us and in Postern (inherited).
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if _soft < _hard:
    resource.setrlimit(resource.RLIMIT_NOFILE, (_hard, _hard))

NETNS_TIMEOUT = 600


LEFTOVER_WAIT = 15   # seconds stopped servers get to finish exiting


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "netns: run this test in a fresh network namespace (lo only)")
    # Every temporary directory of the run (and so every server it starts)
    # lives under one root, which lets the end of the run find leftovers.
    config._postern_root = RunRoot().enter()
    # pytest's own tmp_path tree inside it too (its default would register an
    # exit-time cleanup of a directory removed at the end of the session).
    if not config.option.basetemp:
        config.option.basetemp = os.path.join(config._postern_root.path, "pytest")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    """Fail the run if a process it started (postfix, unbound, postern,
    chromium) is still alive at the end: kill it and name it."""
    root = getattr(session.config, "_postern_root", None)
    if root is None:
        return
    try:
        wait_until(lambda: not root.leftovers(), LEFTOVER_WAIT, interval=0.2,
                   what="test processes to exit")
    except TimeoutError:
        left = root.leftovers()
        root.kill(left)
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write("\n")
            tr.write_line("LEFTOVER PROCESSES (killed): a fixture did not stop them:", red=True)
            for pid, cmd in left:
                tr.write_line("  %d %s" % (pid, cmd), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    root.leave()
    root.remove()


# ---- order: POSTERN_TEST_ORDER=reverse | shuffle[:SEED] -----------------
def _order():
    return os.environ.get("POSTERN_TEST_ORDER", "")


def pytest_report_header(config):
    if _order():
        return "POSTERN_TEST_ORDER=%s" % _order()


def pytest_collection_modifyitems(session, config, items):
    """To find order dependencies, run the files and the tests inside each
    in reverse, or shuffled with a seed (printed in the header; the same
    seed gives the same order). Tests stay grouped by file so module-wide
    fixtures are still set up once."""
    order = _order()
    if not order:
        return
    groups = {}
    for it in items:
        groups.setdefault(it.module.__name__ if it.module else "", []).append(it)
    mods = list(groups.values())
    if order == "reverse":
        mods.reverse()
        for g in mods:
            g.reverse()
    elif order.startswith("shuffle"):
        seed = order.partition(":")[2] or "0"
        rng = random.Random(seed)
        rng.shuffle(mods)
        for g in mods:
            rng.shuffle(g)
    else:
        raise pytest.UsageError("POSTERN_TEST_ORDER must be reverse or shuffle[:SEED]")
    items[:] = [it for g in mods for it in g]


# ---- netns re-exec ------------------------------------------------------
def _report(item, when, outcome, longrepr=None, duration=0.0, sections=()):
    return TestReport(item.nodeid, item.location,
                      {k: 1 for k in item.keywords}, outcome, longrepr, when,
                      list(sections), duration)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    """A netns test runs as a child pytest inside unshare; its outcome is
    reported here as if it had run in this process."""
    if IN_NETNS or item.get_closest_marker("netns") is None:
        return None
    ihook = item.ihook
    ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    ihook.pytest_runtest_logreport(report=_report(item, "setup", "passed"))
    rootdir = str(item.config.rootpath)
    argv = netns_argv([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                       "--rootdir", rootdir, item.nodeid])
    env = dict(os.environ, POSTERN_NETNS="1")
    t0 = time.monotonic()
    try:
        r = subprocess.run(argv, cwd=rootdir, env=env, capture_output=True,
                           text=True, timeout=NETNS_TIMEOUT)
        rc, out = r.returncode, r.stdout + r.stderr
    except subprocess.TimeoutExpired as e:
        rc, out = -1, "netns child timed out after %ds\n%s" % (NETNS_TIMEOUT, e.stdout or "")
    dur = time.monotonic() - t0
    if rc == 0:
        rep = _report(item, "call", "passed", duration=dur,
                      sections=[("netns child output", out)])
    else:
        rep = _report(item, "call", "failed", duration=dur,
                      longrepr="netns child pytest exited %d:\n%s" % (rc, out[-20000:]))
    ihook.pytest_runtest_logreport(report=rep)
    # The real teardown step: it also tears down the previous module's
    # fixtures when nextitem lives elsewhere (this item set up nothing).
    try:
        item.session._setupstate.teardown_exact(nextitem)
        ihook.pytest_runtest_logreport(report=_report(item, "teardown", "passed"))
    except Exception as e:  # noqa: BLE001 -- reported as a teardown error
        ihook.pytest_runtest_logreport(
            report=_report(item, "teardown", "failed", longrepr="teardown: %r" % e))
    ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


# ---- PostgreSQL (POSTERN_TEST_DB=pg, harness/pg.py) ----------------------
@pytest.fixture(scope="session", autouse=True)
def _pg_session():
    """The process's PostgreSQL server, if a test started it, goes at the
    end of the session (before the leftover check)."""
    yield
    pg.stop_session_server()


@pytest.fixture(autouse=True)
def _pg_test_db():
    """Under POSTERN_TEST_DB=pg, a fresh database for each test: every
    harness Postern of the test shares it (as nodes of one cluster would)."""
    if os.environ.get("POSTERN_TEST_DB") != "pg":
        yield None
        return
    url = pg.session_server().createdb()
    pg.set_current(url)
    try:
        yield url
    finally:
        pg.set_current(None)
        pg.session_server().dropdb(url)


# ---- directories --------------------------------------------------------
@pytest.fixture
def workdir():
    d = TempDir()
    yield d
    d.cleanup()


@pytest.fixture(scope="module")
def moddir():
    d = TempDir(prefix="postern-mod-")
    yield d
    d.cleanup()


# ---- DNS ------------------------------------------------------------------
@pytest.fixture(scope="module")
def unbound(moddir):
    u = Unbound(moddir.join("unbound"), local_zones={"test.": "static"})
    try:   # stopped even when start() gives up waiting for it
        yield u.start()
    finally:
        u.stop()


@pytest.fixture
def make_unbound(workdir):
    made = []

    def make(**kw):
        bh = None
        if kw.get("blackhole_zones") and "blackhole" not in kw:
            bh = kw["blackhole"] = BlackHole()
        u = Unbound(workdir.join("unbound%d" % len(made)), **kw)
        made.append((u, bh))
        u.start()
        return u
    yield make
    for u, bh in reversed(made):
        u.stop()
        if bh:
            bh.close()


# ---- backends ---------------------------------------------------------------
@pytest.fixture
def make_capture():
    made = []

    def make(**kw):
        c = Capture(**kw)
        made.append(c)
        return c.start()
    yield make
    for c in reversed(made):
        c.stop()


@pytest.fixture
def capture(make_capture):
    return make_capture()


POSTFIX_DEFAULTS = dict(reject_rcpts=["rejected@example.org"],
                        defer_senders=["defer@example.org"],
                        reject_header="X-Test-Reject")


@pytest.fixture(scope="module")
def postfix(moddir):
    pf = Postfix(moddir.join("postfix"), **POSTFIX_DEFAULTS)
    try:   # stopped even when start() gives up waiting for it
        yield pf.start()
    finally:
        pf.stop()


@pytest.fixture
def make_postfix(workdir):
    made = []

    def make(**kw):
        pf = Postfix(workdir.join("postfix%d" % len(made)), **kw)
        made.append(pf)
        return pf.start()
    yield make
    for pf in reversed(made):
        pf.stop()


# ---- Postern ------------------------------------------------------------------
@pytest.fixture
def make_postern(workdir, unbound):
    made = []

    def make(backend, conf=None, resolver=None, start=True, **kw):
        p = Postern(workdir.join("postern%d" % len(made)), backend,
                    resolver or unbound.addr, conf=conf, **kw)
        made.append(p)
        return p.start() if start else p
    yield make
    errors = []
    for p in reversed(made):
        if p.proc is None:
            continue
        try:
            p.stop(check=True)
        except AssertionError as e:
            errors.append(str(e))
        finally:
            p.kill()
    if errors:
        pytest.fail("Postern teardown: " + "\n".join(errors), pytrace=False)


@pytest.fixture
def postern(make_postern, capture):
    return make_postern(capture.addr)
