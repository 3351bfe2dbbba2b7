"""configtest tells everything, and a reload says what it cannot apply:
every problem of a config is listed in one run with its file and line
(also rbl.zones line by line and the score order), in file order, with a
count; without -c configtest names the file it checked. A SIGHUP that
changes a key read only at start (proxy.listen, web.listen, threads...)
logs that a restart is needed, naming the keys, and the running listener
stays; a SIGHUP imports rules.file into a never-written rule table, and
not into one an admin has emptied.
"""
import os
import re
import subprocess

from harness import POSTERN_BIN, free_port, smtp_client, wait_until
from harness.postern import Postern
from policyenv import rows

BAD = """\
# every '<-' at the end of a line below is a problem on that line
[proxy]
listen = 127.0.0.1:2525
threads = many                      <-
bogus = 1                           <-
backend = 127.0.0.1:10025
[policy]
tag_score = 8
quarantine_score = 6                <-
reject_score = 5                    <-
[rbl]
zones = ok.test*2
zones = bl.test=127.0.0.[9..2], x.test*y <- <-
zones = also-ok.test
rhsbl_zones = dbl.test*x            <-
[dns]
resolver = nowhere                  <-
[web]
tls_key = /nonexistent/key.pem      <-
"""


def write_bad(path):
    """The config without the markers; the lines that carry one."""
    lines, want = [], []
    for n, line in enumerate(BAD.splitlines(), 1):
        line = line.rstrip()
        while line.endswith("<-"):
            want.append(n)
            line = line[:-2].rstrip()
        lines.append(line)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return want


def configtest(*args, cwd=None):
    p = subprocess.run([POSTERN_BIN, "configtest", *args], capture_output=True,
                       text=True, timeout=30, cwd=cwd)
    return p.returncode, p.stdout, p.stderr


def test_every_problem_with_file_and_line_at_once(workdir):
    path = workdir.join("bad.conf")
    want = write_bad(path)
    rc, out, err = configtest("-c", path)
    assert rc == 1 and out == ""
    lines = err.splitlines()
    assert lines[-1] == "%s: %d problems" % (path, len(want))
    problems = lines[:-1]
    got = [int(re.match(re.escape(path) + r":(\d+): ", l).group(1)) for l in problems]
    assert got == want, err             # one per marked line, in file order
    text = "\n".join(problems)
    assert "proxy.threads: 'many' is not a whole number" in text
    assert "unknown key 'bogus' in section [proxy]" in text
    # each broken pair at the line of its later key
    assert ":9: policy.tag_score (8) is above policy.quarantine_score (6)" in text
    assert ":10: policy.quarantine_score (6) is above policy.reject_score (5)" in text
    assert ":13: rbl.zones: bad DNS list 'bl.test=127.0.0.[9..2]'" in text
    assert ":13: rbl.zones: bad DNS list 'x.test*y'" in text
    assert ":15: rbl.rhsbl_zones: bad DNS list 'dbl.test*x'" in text
    assert ":17: dns.resolver 'nowhere' is neither 'system' nor host:port" in text
    assert ":19: web.tls_cert and web.tls_key go together" in text


def test_a_good_config_says_ok(workdir):
    path = workdir.join("good.conf")
    with open(path, "w") as f:
        f.write("[rbl]\nzones = a.test*2\nzones = b.test=127.0.0.[2..11]*3\n")
    rc, out, err = configtest("-c", path)
    assert (rc, out, err) == (0, "", "%s: configuration OK\n" % path)


def test_without_c_names_the_file_it_checked(workdir):
    rc, _, err = configtest(cwd=workdir.path)
    assert rc == 1
    assert err.splitlines()[0] == "postern: no -c FILE given; checking etc/postern.conf"
    assert "etc/postern.conf: cannot open" in err
    os.makedirs(workdir.join("etc"))
    with open(workdir.join("etc", "postern.conf"), "w") as f:
        f.write("[proxy]\nhostname = mx.example.org\n")
    rc, _, err = configtest(cwd=workdir.path)
    assert rc == 0
    assert err == ("postern: no -c FILE given; checking etc/postern.conf\n"
                   "etc/postern.conf: configuration OK\n")


def test_reload_names_the_keys_that_need_a_restart(make_postern, capture):
    p = make_postern(capture.addr)
    old_port = p.port
    new_smtp, new_web = free_port(), free_port()
    p.reload({"proxy.max_recipients": 5})      # applied: no restart needed
    wait_until(lambda: p.log().count("reload: configuration") >= 1, 10,
               what="the first reload")
    assert "restart needed" not in p.log()
    p.reload({"proxy.listen": "127.0.0.1:%d" % new_smtp,
              "web.listen": "127.0.0.1:%d" % new_web, "proxy.threads": 3})
    wait_until(lambda: "restart needed" in p.log(), 10, what="the restart warning")
    line = [l for l in p.log().splitlines() if "restart needed" in l][0]
    assert "warning: reload: restart needed: proxy.listen, proxy.threads, " \
           "web.listen changed" in line
    # the running listener stays, the new one is not opened
    with smtp_client(old_port) as s:
        assert s.ehlo("client.example.net")[0] == 250
    with smtp_client(old_port) as s:   # and max_recipients from the first reload holds
        s.ehlo("client.example.net")
        assert s.mail("a@example.net")[0] == 250
        codes = [s.rcpt("r%d@example.org" % i)[0] for i in range(6)]
        assert codes == [250] * 5 + [452]
    assert subprocess.run(["ss", "-Hltn", "sport = :%d" % new_smtp], capture_output=True,
                          text=True).stdout.strip() == ""


def test_reload_imports_rules_file_into_an_empty_table(make_postern, capture, workdir):
    p = make_postern(capture.addr)
    db = p.settings["db.path"]
    assert rows(db, "SELECT count(*) FROM rules") == [(0,)]
    rules = workdir.join("rules.txt")
    with open(rules, "w") as f:
        f.write("hup_rule | subject | /^hup/ | score 1\n")
    p.reload({"rules.file": rules})
    wait_until(lambda: "rules: imported 1 rules from %s" % rules in p.log(), 10,
               what="rules.file imported on SIGHUP")
    assert rows(db, "SELECT name FROM rules") == [("hup_rule",)]
    wait_until(lambda: "rules: 1 rules active" in p.log(), 10, what="the new set")
    with smtp_client(p.port) as s:
        s.ehlo("client.example.net")
        s.mail("a@example.net")
        s.rcpt("b@example.org")
        code, _ = s.data(b"From: a@example.net\r\nSubject: hup\r\n\r\nx\r\n")
    assert code == 250
    msg = capture.wait_messages(1)[0]
    assert msg.header("X-Spam-Score") == ["1.0"]
    # an admin empties the table: the next SIGHUP leaves it empty
    r = subprocess.run([POSTERN_BIN, "rules", "export", "-c", p.conf_path],
                       capture_output=True, text=True, timeout=30)
    assert "hup_rule" in r.stdout
    empty = workdir.join("empty.txt")
    open(empty, "w").close()
    r = subprocess.run([POSTERN_BIN, "rules", "import", "--replace", empty, "-c", p.conf_path],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert rows(db, "SELECT count(*) FROM rules") == [(0,)]
    n = p.log().count("rules: imported")
    p.reload()
    wait_until(lambda: p.log().count("reload: configuration") >= 2, 10, what="the second reload")
    assert p.log().count("rules: imported") == n
    assert rows(db, "SELECT count(*) FROM rules") == [(0,)]
