"""Self-tests of the harness: the real servers start, answer and misbehave
as asked. They need no Postern build, so they also tell a broken machine
from a broken proxy."""
import smtplib
import socket

import pytest

from harness import (IN_NETNS, RawSMTP, free_port, port_open, smtp_client,
                     trap_system_resolver)


def test_free_port_unique():
    ports = {free_port() for _ in range(50)}
    assert len(ports) == 50


def test_unbound_serves_data_and_nxdomain(make_unbound):
    u = make_unbound(local_data=['example.org. TXT "v=spf1 ip4:127.0.0.2 -all"',
                                 'long.test. TXT "' + "a" * 200 + '" "' + "b" * 200 + '"'],
                     auth_zones={"zone.test.": "$ORIGIN zone.test.\n"
                                 "@ 300 IN SOA ns hm 1 3600 600 86400 300\n"
                                 "@ 300 IN NS ns\nns 300 IN A 127.0.0.1\n"
                                 "x 300 IN A 127.0.0.2\n"},
                     blackhole_zones=["slow.test."])
    ans = u.query("example.org", "TXT").answer
    assert b"v=spf1" in ans[0][0].strings[0]
    strings = u.query("long.test", "TXT").answer[0][0].strings
    assert len(strings) == 2 and strings[1] == b"b" * 200
    assert u.query("nowhere.example.com", "A").rcode() == 3  # NXDOMAIN
    assert u.query("x.zone.test", "A").answer[0][0].address == "127.0.0.2"
    import dns.exception
    with pytest.raises(dns.exception.Timeout):
        u.query("q.slow.test", "A", timeout=2)
    assert u.blackhole.queries >= 1


def test_capture_records_exact_bytes(capture):
    with RawSMTP(capture.port) as c:
        assert c.cmd("EHLO a.test").code == 250
        assert c.cmd("MAIL FROM:<a@example.org>").code == 250
        assert c.cmd("RCPT TO:<b@example.org>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: x\r\n\r\n..dot\r\nbare\nlf\r\n.\r\n")
        assert c.reply().code == 250
    m = capture.wait_messages(1)[0]
    assert m.raw == b"Subject: x\r\n\r\n..dot\r\nbare\nlf\r\n.\r\n"
    assert m.data == b"Subject: x\r\n\r\n.dot\r\nbare\nlf\r\n"
    assert m.header("subject") == ["x"]


def test_capture_bare_lf_dot_does_not_end_data(capture):
    with RawSMTP(capture.port) as c:
        c.cmd("EHLO a.test"); c.cmd("MAIL FROM:<a@example.org>"); c.cmd("RCPT TO:<b@example.org>")
        assert c.cmd("DATA").code == 354
        c.send(b"a\n.\nMAIL FROM:<x@y>\r\n.\r\n")
        assert c.reply().code == 250
    msgs = capture.wait_messages(1)
    assert len(msgs) == 1 and b"MAIL FROM:<x@y>" in msgs[0].raw


def test_capture_misbehaves_on_request(make_capture):
    cap = make_capture(xclient=False, rcpt_replies={"rejected@": "550 5.1.1 no"},
                       data_reply="451 4.3.0 later", drop_after_data_bytes=None)
    s = smtp_client(cap.port)
    assert "xclient" not in s.ehlo()[1].decode().lower()
    with pytest.raises(smtplib.SMTPDataError) as e:
        s.sendmail("a@example.org", ["b@example.org", "rejected@example.org"], "x: y\r\n\r\nz\r\n")
    assert e.value.smtp_code == 451
    s.close()
    drop = make_capture(drop_after_data_bytes=10)
    with RawSMTP(drop.port) as c:
        c.cmd("EHLO a"); c.cmd("MAIL FROM:<a@b>"); c.cmd("RCPT TO:<c@d>")
        assert c.cmd("DATA").code == 354
        c.send(b"0123456789abcdef\r\n")
        assert c.closed()


def test_postfix_backend_logs_xclient_and_rejects(postfix):
    # from 127.0.0.1, the one address the harness authorises (Postern's)
    s = smtp_client(postfix.port, source="127.0.0.1")
    s.ehlo("client.test")
    assert s.docmd("XCLIENT ADDR=127.0.0.9")[0] == 220
    s.ehlo("client.test")
    refused = s.sendmail("a@example.org", ["ok@example.org", "rejected@example.org"],
                         "Subject: t\r\n\r\nbody\r\n")
    assert refused["rejected@example.org"][0] == 550
    with pytest.raises(smtplib.SMTPDataError) as e:
        s.sendmail("defer@example.org", ["ok@example.org"], "Subject: t\r\n\r\nbody\r\n")
    assert e.value.smtp_code == 451
    s.quit()
    postfix.wait_log("client=unknown[127.0.0.9]")


def test_postfix_authorises_xclient_only_for_postern(postfix):
    """The harness default is README.md's: an Internet client (any other
    address) may not use XCLIENT, and after one introduction the
    connection no longer offers it (Postfix checks the new address)."""
    s = smtp_client(postfix.port, source="127.0.0.2")
    assert "xclient" not in s.ehlo("client.test")[1].decode().lower()
    assert s.docmd("XCLIENT ADDR=127.0.0.9")[0] == 550
    s.quit()
    s = smtp_client(postfix.port, source="127.0.0.1")
    assert "xclient" in s.ehlo("postern.test")[1].decode().lower()
    assert s.docmd("XCLIENT ADDR=127.0.0.9")[0] == 220
    assert "xclient" not in s.ehlo("client.test")[1].decode().lower()
    s.quit()


@pytest.mark.netns
def test_netns_has_only_loopback():
    assert IN_NETNS
    out = open("/proc/net/dev").read()
    ifaces = [l.split(":")[0].strip() for l in out.splitlines()[2:]]
    assert ifaces == ["lo"]
    with pytest.raises(OSError):
        socket.create_connection(("10.255.255.53", 53), timeout=2)
    bh, undo = trap_system_resolver()
    try:
        assert "127.0.0.1" in open("/etc/resolv.conf").read()
        assert port_open(53) or True
        try:
            socket.getaddrinfo("leak-probe.example.com", 25)
        except socket.gaierror:
            pass
        assert bh.queries >= 1   # the trap sees system-resolver traffic
    finally:
        undo()
