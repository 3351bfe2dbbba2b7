"""The relay guard (proxy.relay_domains, proxy.relay_recipients) in front of
a permissive Debian Postfix: `mynetworks = 127.0.0.0/8` and no XCLIENT or
XFORWARD authorisation, so Postfix sees every client as Postern's own
127.0.0.1 and relays for it -- the open relay a new user builds by
following the README without the XCLIENT line.

nmap's NSE script smtp-open-relay (Debian's nmap) plays the attacker: it
tries 16 MAIL/RCPT combinations, source routes, % and ! hacks and quoted
local parts included, with Postern's own name (from its banner) as the
"local" domain. Without the guard it must find the open relay (so the test
can fail); with relay_domains naming that very domain it finds none, and
Postfix is never asked about any of those recipients. smtplib then checks
the 554, the recipients that do pass, and configtest's messages.
"""
import os
import re
import smtplib
import subprocess

import pytest

from harness import POSTERN_BIN, wait_until

HOST = "postern.test"
# Postfix authorises nobody for XCLIENT/XFORWARD (said explicitly: the
# harness default may change), and trusts all of loopback for relaying.
PERMISSIVE = {"smtpd_authorized_xclient_hosts": "",
              "smtpd_authorized_xforward_hosts": "",
              "mynetworks": "127.0.0.0/8",
              "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination"}
QUIET = {"spf.enabled": "no", "dkim.enabled": "no", "dmarc.enabled": "no"}


@pytest.fixture
def permissive(make_postfix):
    return make_postfix(main_extra=PERMISSIVE)


def nmap_open_relay(port):
    """Run smtp-open-relay against Postern: (tests passed, nmap's output).
    '+' runs the script on a port it would not guess is SMTP."""
    r = subprocess.run(["nmap", "-Pn", "-n", "-sT", "-p", str(port), "-vv",
                        "--script", "+smtp-open-relay", "127.0.0.1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    m = re.search(r"Server is an open relay \((\d+)/16 tests\)", out)
    if m:
        return int(m.group(1)), out
    assert "Server doesn't seem to be an open relay, all tests failed" in out, out
    return 0, out


def test_nmap_finds_the_open_relay_then_none(permissive, make_postern):
    # Without a guard of ours the permissive backend decides: an open relay.
    p = make_postern(permissive.addr, conf=QUIET, hostname=HOST)
    n, out = nmap_open_relay(p.port)
    assert n > 0, out
    assert "RCPT TO:<relaytest@nmap.scanme.org>" in out
    p.stop()
    # and Postfix's end-of-connection line counts the RCPTs it was asked
    # (what the second run must not show)
    first = wait_until(lambda: "disconnect from" in permissive.maillog() and
                       permissive.maillog(), 15, what="postfix disconnect lines")
    assert re.search(r" rcpt=\d+", first), first

    # The same Postfix, Postern with relay_domains naming the very domain
    # nmap builds its tricks on (user%other@postern.test, @postern.test:...).
    mark = len(permissive.maillog())
    p = make_postern(permissive.addr, conf=dict(QUIET, **{
        "proxy.relay_domains": "%s, example.org" % HOST}), hostname=HOST)
    n, out = nmap_open_relay(p.port)
    assert n == 0, out
    log = p.log()
    assert "Relay access denied" in log
    p.stop()
    # The backend never saw one of those recipients: Postfix logs the
    # commands of each connection at its end (Postern's pool closed them
    # at stop), and no RCPT is among them.
    tail = wait_until(lambda: "disconnect from" in permissive.maillog()[mark:] and
                      permissive.maillog()[mark:], 15, what="postfix disconnect lines")
    assert " rcpt=" not in tail, tail
    assert "nmap.scanme.org" not in tail, tail


def test_554_and_recipients_that_pass(permissive, make_postern, workdir):
    rcpts = workdir.join("recipients")
    with open(rcpts, "w") as f:
        f.write("# who may get mail\nalice@example.org\n@catch.example\n")
    p = make_postern(permissive.addr, hostname=HOST, conf=dict(QUIET, **{
        "proxy.relay_domains": "example.org, .example.net, catch.example",
        "proxy.relay_recipients": "file:" + rcpts}))
    mark = len(permissive.maillog())
    with smtplib.SMTP("127.0.0.1", p.port, timeout=30) as s:
        s.ehlo("client.sender.test")
        assert s.mail("someone@sender.test")[0] == 250
        assert s.rcpt("evil@nmap.scanme.org") == (
            554, b"5.7.1 <evil@nmap.scanme.org>: Relay access denied")
        # in a relay domain but not a listed recipient
        assert s.rcpt("bob@example.org") == (554, b"5.7.1 <bob@example.org>: Relay access denied")
        # a listed address (any case), and a catch-all domain
        assert s.rcpt("Alice@EXAMPLE.org")[0] == 250
        assert s.rcpt("anyone@catch.example")[0] == 250
        # .example.net: subdomains only, and they need relay_recipients too
        assert s.rcpt("x@mx.example.net")[0] == 554
        assert s.rcpt("postmaster")[0] == 250
        code, _ = s.data(b"Subject: in-domain\r\n\r\nhello\r\n")
        assert code == 250
    log = permissive.wait_until_after(mark, "to=<anyone@catch.example>", timeout=60)
    assert "to=<Alice@EXAMPLE.org>" in log[mark:]
    assert "example.net" not in log[mark:] and "nmap.scanme.org" not in log[mark:]
    plog = p.log()
    assert re.search(r"reject: RCPT to=<evil@nmap\.scanme\.org>: 554 5\.7\.1 "
                     r"<evil@nmap\.scanme\.org>: Relay access denied", plog)


def test_guard_without_recipient_list_and_allowlist_cannot_undo_it(permissive, make_postern):
    p = make_postern(permissive.addr, hostname=HOST, conf=dict(QUIET, **{
        "proxy.relay_domains": "example.org, .example.net"}))
    # an allowlisted client skips the spam checks, not the relay guard
    r = subprocess.run([POSTERN_BIN, "access", "add", "allow", "client", "127.0.0.0/8",
                        "-c", p.conf_path], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr

    def session():
        with smtplib.SMTP("127.0.0.1", p.port, timeout=30) as s:
            s.ehlo("client.sender.test")
            s.mail("a@sender.test")
            assert s.rcpt("anyone@example.org")[0] == 250
            assert s.rcpt("x@deep.mx.example.net")[0] == 250
            assert s.rcpt("x@example.net")[0] == 554
            assert s.rcpt("relaytest%nmap.scanme.org@example.org")[0] == 554
            assert s.rcpt("x@example.org.nmap.scanme.org")[0] == 554
            assert s.rcpt('"x@nmap.scanme.org"@example.org')[0] == 554
        return "access=allow" in p.log()
    # the CLI's edit reaches the daemon within two seconds (the edit version
    # is polled); every session meanwhile holds the guard, and once the
    # allowlisting took effect (the access check ran and said so) still does
    wait_until(session, 15, interval=0.3, what="access=allow in the log")


def test_configtest_names_the_files_and_lines(make_postern, workdir, capture):
    bad = workdir.join("domains")
    with open(bad, "w") as f:
        f.write("example.org\n\nexample..net\n")
    p = make_postern(capture.addr, start=False, conf={
        "proxy.relay_domains": "file:" + bad, "proxy.relay_recipients": "alice"})
    rc, out = p.configtest()
    assert rc == 1, out
    conf_lines = open(p.conf_path).read().splitlines()
    ln = next(i for i, l in enumerate(conf_lines, 1) if l.startswith("relay_domains"))
    assert re.search(r"%s:%d: proxy\.relay_domains: %s:3: 'example\.\.net' is not a domain"
                     % (re.escape(p.conf_path), ln, re.escape(bad)), out), out
    ln = next(i for i, l in enumerate(conf_lines, 1) if l.startswith("relay_recipients"))
    assert re.search(r"%s:%d: proxy\.relay_recipients: 'alice' is not an address"
                     % (re.escape(p.conf_path), ln), out), out
    os.unlink(bad)
    p.settings.pop("proxy.relay_recipients")
    rc, out = p.configtest()
    assert rc == 1 and "cannot read %s" % bad in out, out
