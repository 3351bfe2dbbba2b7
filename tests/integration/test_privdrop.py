"""Least privilege: started as root, Postern binds its ports and then runs
as proxy.user (every thread), and says clearly what is wrong when the user
does not exist or cannot write the database or spool.

Real parts: build/postern started as root, the capture backend, smtplib."""
import os
import pwd
import shutil

import pytest

from harness.client import smtp_client
from harness.mail import make_message

USER = "nobody"


def give_to(path, user):
    """Let user reach and own path (the test's own temp tree)."""
    pw = pwd.getpwnam(user)
    a = os.path.dirname(os.path.abspath(path))
    while a != "/":
        st = os.stat(a)
        os.chmod(a, st.st_mode | 0o011)   # traverse only
        a = os.path.dirname(a)
    for root, dirs, files in os.walk(path):
        for n in [root] + [os.path.join(root, x) for x in dirs + files]:
            os.chown(n, pw.pw_uid, pw.pw_gid)


def uids(pid):
    with open("/proc/%d/status" % pid) as f:
        line = [l for l in f if l.startswith("Uid:")][0]
    return [int(x) for x in line.split()[1:]]


pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop privileges")


def test_runs_as_proxy_user_and_still_relays(make_postern, capture):
    p = make_postern(capture.addr, conf={"proxy.user": USER}, start=False)
    p.write_config()
    os.makedirs(os.path.join(p.dir, "spool"), exist_ok=True)
    give_to(p.dir, USER)
    p.start()
    assert uids(p.proc.pid) == [pwd.getpwnam(USER).pw_uid] * 4
    assert "running as %s" % USER in p.log()
    s = smtp_client(p.port)
    assert s.sendmail("a@example.org", ["b@example.org"], make_message("priv")) == {}
    s.quit()
    (m,) = capture.wait_messages(1)
    assert b"priv" in m.data


def test_unknown_user_is_refused_with_the_fix(make_postern, capture):
    p = make_postern(capture.addr, conf={"proxy.user": "no-such-user-x"}, start=False)
    with pytest.raises(RuntimeError) as e:
        p.start()
    assert "no user 'no-such-user-x'" in str(e.value)


def test_unwritable_database_is_refused_with_the_fix(make_postern, capture):
    p = make_postern(capture.addr, conf={"proxy.user": USER}, start=False)
    p.write_config()
    give_to(p.dir, USER)
    os.chown(p.dir, 0, 0)               # the db's directory stays root's
    os.chmod(p.dir, 0o755)
    with pytest.raises(RuntimeError) as e:
        p.start()
    assert "not writable by %s" % USER in str(e.value)
    assert "chown %s" % USER in str(e.value)
