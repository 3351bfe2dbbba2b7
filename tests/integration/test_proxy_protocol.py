"""Postern behind a TCP load balancer: the PROXY protocol (proxy.proxy_protocol,
proxy.proxy_from; proxy/pxp.c).

Debian's HAProxy in TCP mode with send-proxy (v1) and send-proxy-v2 in
front of Postern, clients bound to their own 127.0.0.x: the capture
backend must see XCLIENT ADDR/PORT of the client and DESTADDR/DESTPORT of
the balancer's frontend, a deny-list entry for the client's address must
work through the balancer, and the connect line and the verdict row must
name the client. Raw sockets then play a balancer that misbehaves:
malformed, truncated (then silent until proxy.timeout_command), a valid
header from an address outside proxy_from, and a plain SMTP client on the
listener are all closed without a byte of SMTP; a LOCAL header (health
check) keeps the balancer's own address.
"""
import http.client
import json
import re
import socket
import struct
import subprocess

import pytest

from harness import POSTERN_BIN, HAProxy, RawSMTP, make_message, wait_until

TOKEN = "proxy-protocol-test-token-" + "z" * 24
BALANCER = "127.0.0.1"       # where HAProxy (and the raw "balancer") connect from
V2SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2_header(cmd, fam, block):
    return V2SIG + bytes([0x20 | cmd, fam]) + struct.pack("!H", len(block)) + block


def v2_tcp4(src, dst, sport, dport):
    return v2_header(1, 0x11, socket.inet_aton(src) + socket.inet_aton(dst) +
                     struct.pack("!HH", sport, dport))


def start_postern(make_postern, backend, **conf):
    """Postern with the PROXY protocol on: its banner can only be read
    through a header, so wait for its listening line instead."""
    settings = {"proxy.proxy_protocol": "yes", "proxy.proxy_from": BALANCER,
                "proxy.threads": "1", "web.api_token": TOKEN}
    settings.update(conf)
    p = make_postern(backend, conf=settings, start=False)
    p.start(wait_banner=False)
    wait_until(lambda: "serve: listening on" in p.log(), 20, what="postern listening")
    p.wait_probe(0)
    return p


@pytest.fixture
def haproxy(workdir):
    made = []

    def make(target, send, server_opts="", backend_opts=""):
        h = HAProxy(workdir.join("haproxy%d" % len(made)), target, send=send,
                    server_opts=server_opts, backend_opts=backend_opts)
        made.append(h)
        return h.start()
    yield make
    for h in made:
        h.stop()


def xclient_attrs(session):
    (line,) = session.xclient
    return dict(w.split(b"=", 1) for w in line.split(b" ")[1:])


def verdicts(p):
    conn = http.client.HTTPConnection("127.0.0.1", p.web_port, timeout=10)
    conn.request("GET", "/api/verdicts?limit=20", headers={"Authorization": "Bearer " + TOKEN})
    r = conn.getresponse()
    body = r.read().decode()
    assert r.status == 200, body
    return json.loads(body)["verdicts"]


def send_one(port, source, sender, helo="client.test"):
    """One message through port from source; (final reply, client port)."""
    with RawSMTP(port, source=source) as c:
        assert c.banner.code == 220, c.banner
        cport = c.sock.getsockname()[1]
        c.ehlo(helo)
        t = c.transaction(sender, ["rcpt@example.org"], make_message(sender))
        c.cmd("QUIT")
    return t["final"], cport


@pytest.mark.parametrize("send,version", [("send-proxy", 1), ("send-proxy-v2", 2)])
def test_haproxy_introduces_the_client(make_postern, make_capture, haproxy, send, version):
    cap = make_capture()
    cap.xclient_attrs += " DESTADDR DESTPORT"
    p = start_postern(make_postern, cap.addr)
    h = haproxy(p.addr, send)
    sender = "v%d@example.org" % version
    final, cport = send_one(h.port, "127.0.0.55", sender)
    assert final is not None and final.code == 250, (final, p.log()[-3000:])
    (m,) = cap.wait_messages(1)
    x = xclient_attrs(m.session)
    assert x[b"ADDR"] == b"127.0.0.55" and x[b"PORT"] == str(cport).encode(), x
    # where the client connected: the balancer's frontend, not Postern
    assert x[b"DESTADDR"] == b"127.0.0.1" and x[b"DESTPORT"] == str(h.port).encode(), x
    assert x[b"HELO"] == b"client.test"
    log = p.log()
    assert re.search(r"connect from \[127\.0\.0\.55\]:%d via \[127\.0\.0\.1\]:\d+ PROXY v%d PROXY"
                     % (cport, version), log), log[-3000:]
    assert "connect from [127.0.0.1]" not in log
    rows = wait_until(lambda: [v for v in verdicts(p) if v["mail_from"] == sender], 10,
                      what="the verdict row")
    assert rows[0]["client_ip"] == "127.0.0.55", rows


def test_haproxy_health_checks_are_local(make_postern, make_capture, haproxy):
    """HAProxy's SMTP health check (option smtpchk: banner, HELO, 250)
    carries a v2 LOCAL header: the session is the balancer's own, and it
    is served."""
    cap = make_capture()
    p = start_postern(make_postern, cap.addr)
    haproxy(p.addr, "send-proxy-v2", "check inter 300", "option smtpchk")
    wait_until(lambda: re.search(r"connect from \[127\.0\.0\.1\]:\d+ via \[127\.0\.0\.1\]:\d+ "
                                 r"PROXY v2 LOCAL", p.log()), 20, what="a LOCAL health check")
    wait_until(lambda: re.search(r"helo=<[^>]+>", p.log()), 20, what="the check's HELO")
    assert "bad PROXY header" not in p.log()


def test_real_postfix_sees_the_client_behind_the_balancer(make_postern, make_postfix, haproxy):
    """HAProxy -> Postern -> Postfix with smtpd_authorized_xclient_hosts =
    Postern's address only: Postfix logs the client's own address and
    applies its own per-client rule to it."""
    pf = make_postfix(xclient_hosts="postern", main_extra={
        "smtpd_client_restrictions":
            "check_client_access inline:{ { 127.0.0.66 = REJECT blocked client } }"})
    p = start_postern(make_postern, pf.addr)
    h = haproxy(p.addr, "send-proxy-v2")
    start = len(pf.maillog())
    final, _ = send_one(h.port, "127.0.0.56", "pf56@example.org")
    assert final is not None and final.code == 250, (final, p.log()[-2000:])
    log = pf.wait_until_after(start, "from=<pf56@example.org>")[start:]
    assert re.search(r"client=\S*\[127\.0\.0\.56\]", log), log
    with RawSMTP(h.port, source="127.0.0.66") as c:
        assert c.banner.code == 220
        c.ehlo("blocked.test")
        t = c.transaction("pf66@example.org", ["rcpt@example.org"], make_message("66"))
    assert t["rcpts"][0].code == 554 and "blocked client" in t["rcpts"][0].text, t
    # Postfix logs the reject after its reply: wait for the line
    pf.wait_until_after(start, "[127.0.0.66]")


def test_deny_list_acts_on_the_client_behind_the_balancer(make_postern, make_capture, haproxy):
    cap = make_capture()
    p = start_postern(make_postern, cap.addr)
    r = subprocess.run([POSTERN_BIN, "access", "add", "deny", "client", "127.0.0.66",
                        "-c", p.conf_path], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    h = haproxy(p.addr, "send-proxy-v2")

    def refused():
        """The CLI's edit reaches the daemon within two seconds (the edit
        version is polled): 220 until then, then 554 and closed."""
        with RawSMTP(h.port, source="127.0.0.66") as c:
            if c.banner.code == 220:
                return None
            assert c.banner.code == 554, c.banner
            assert c.closed(10)
            return True
    wait_until(refused, 2.0, interval=0.1, what="127.0.0.66 refused behind the balancer")
    assert re.search(r"reject: connect from \[127\.0\.0\.66\]", p.log()), p.log()[-3000:]
    # the balancer's other clients are not denied with it
    final, _ = send_one(h.port, "127.0.0.67", "ok@example.org")
    assert final.code == 250, final
    (m,) = cap.wait_messages(1)
    assert xclient_attrs(m.session)[b"ADDR"] == b"127.0.0.67"
    assert all(xclient_attrs(s)[b"ADDR"] != b"127.0.0.66" for s in cap.sessions if s.xclient)


def test_per_ip_limit_counts_clients_not_the_balancer(make_postern, make_capture, haproxy):
    """Two clients behind one balancer, max_connections_per_ip = 1: each
    gets its own count; a second session of the same client is refused."""
    cap = make_capture()
    p = start_postern(make_postern, cap.addr, **{"proxy.max_connections_per_ip": "1"})
    h = haproxy(p.addr, "send-proxy")
    a = RawSMTP(h.port, source="127.0.0.71")
    b = RawSMTP(h.port, source="127.0.0.72")
    try:
        assert a.banner.code == 220 and b.banner.code == 220, (a.banner, b.banner)
        with RawSMTP(h.port, source="127.0.0.71") as again:
            assert again.banner.code == 421, again.banner
        assert "refused connection from [127.0.0.71]" in p.log()
    finally:
        a.close()
        b.close()


def raw(p, source=BALANCER):
    """A connection to Postern itself, reading nothing yet."""
    return RawSMTP(p.port, source=source, read_banner=False)


@pytest.fixture
def short(make_postern, make_capture):
    """Postern with a 2-second command deadline, which bounds the header."""
    cap = make_capture()
    cap.xclient_attrs += " DESTADDR DESTPORT"
    p = start_postern(make_postern, cap.addr, **{"proxy.timeout_command": "2"})
    p.cap = cap
    return p


@pytest.mark.parametrize("data,why", [
    (b"PROXY TCP4 192.0.2.7 198.51.100.25 99999 25\r\nEHLO x\r\n", "v1: bad port"),
    (b"PROXY TCP4 192.0.2.07 198.51.100.25 1 25\r\n", "v1: bad address"),
    (b"PROXY TCP4 192.0.2.7 198.51.100.25 1 25\n", "v1: line not ended by CRLF"),
    (V2SIG + b"\x11\x11\x00\x0c" + bytes(12), "v2: version not 2"),
    (V2SIG + b"\x21\x11\x00\x08" + bytes(8), "v2: length shorter than the addresses"),
    (V2SIG + b"\x21\x11\x04\x01", "v2: header longer than we take"),
    (b"EHLO client.test\r\n", "no PROXY header"),
])
def test_malformed_header_is_closed_without_a_reply(short, data, why):
    with raw(short) as c:
        c.send(data)
        assert c.closed(30) and c.buf == b"", c.buf
    log = short.log()
    assert "reason=bad PROXY header (%s)" % why in log, log[-2000:]
    assert ": connect from" not in log and not short.cap.sessions


@pytest.mark.parametrize("data", [
    b"PROXY TCP4 192.0.2.7 198.51.100.25 56",            # no CRLF yet
    v2_tcp4("192.0.2.7", "198.51.100.25", 1, 25)[:20],   # block cut short
    b"",                                                  # a plain SMTP client
])
def test_truncated_header_or_silence_times_out(short, data):
    """Silence after part of a header, or a plain client waiting for a
    banner that a PROXY listener never sends first: closed at
    proxy.timeout_command, no SMTP reply."""
    with raw(short) as c:
        c.send(data)
        assert c.closed(30) and c.buf == b"", c.buf
    log = short.log()
    assert "reason=no complete PROXY header in time" in log, log[-2000:]
    assert ": connect from" not in log


def test_header_from_outside_proxy_from_is_refused(short):
    with raw(short, source="127.0.0.9") as c:
        try:
            c.send(v2_tcp4("192.0.2.7", "198.51.100.25", 4242, 25) + b"EHLO x\r\n")
        except OSError:
            pass   # already closed: also a refusal
        assert c.closed(30) and c.buf == b"", c.buf
    log = short.log()
    assert re.search(r"refused connection from \[127\.0\.0\.9\]:\d+: not in proxy\.proxy_from",
                     log), log[-2000:]
    assert "192.0.2.7" not in log and not short.cap.sessions


def test_local_header_keeps_the_balancers_address(short):
    """v2 LOCAL (a health check): the session is the balancer's own; what
    the client pipelined with the header is answered after the banner."""
    with raw(short) as c:
        c.send(v2_header(0, 0x00, b"") + b"EHLO lb.test\r\n")
        assert c.reply().code == 220
        assert c.reply().code == 250
        t = c.transaction("lb@example.org", ["rcpt@example.org"], make_message("lb"))
        assert t["final"].code == 250, t
        cport = c.sock.getsockname()[1]
    (m,) = short.cap.wait_messages(1)
    x = xclient_attrs(m.session)
    assert x[b"ADDR"] == b"127.0.0.1" and x[b"PORT"] == str(cport).encode(), x
    assert x[b"DESTPORT"] == str(short.port).encode(), x
    assert "via [127.0.0.1]:%d PROXY v2 LOCAL" % cport in short.log()


def test_v2_ipv6_client(short):
    src = socket.inet_pton(socket.AF_INET6, "2001:db8::7")
    dst = socket.inet_pton(socket.AF_INET6, "2001:db8::25")
    tlv = b"\x04\x00\x03abc"          # a NOOP TLV, skipped
    with raw(short) as c:
        c.send(v2_header(1, 0x21, src + dst + struct.pack("!HH", 40000, 25) + tlv))
        assert c.reply().code == 220
        c.ehlo("v6.test")
        t = c.transaction("v6@example.org", ["rcpt@example.org"], make_message("v6"))
        assert t["final"].code == 250, t
    (m,) = short.cap.wait_messages(1)
    x = xclient_attrs(m.session)
    assert x[b"ADDR"] == b"IPV6:2001:db8::7" and x[b"PORT"] == b"40000", x
    assert x[b"DESTADDR"] == b"IPV6:2001:db8::25" and x[b"DESTPORT"] == b"25", x


def test_reload_turns_it_on_without_a_restart(make_postern, make_capture):
    """Both keys apply to the next connection after SIGHUP: no "restart
    needed" line, a plain client is greeted before and refused after, a
    balancer is served after."""
    cap = make_capture()
    p = make_postern(cap.addr, conf={"proxy.timeout_command": "2"})
    with RawSMTP(p.port) as c:
        assert c.banner.code == 220
    n = p.log().count("reload: configuration")
    p.reload({"proxy.proxy_protocol": "yes", "proxy.proxy_from": BALANCER})
    wait_until(lambda: p.log().count("reload: configuration") > n, 10, what="the reload")
    assert "restart needed" not in p.log()
    with raw(p) as c:
        c.send(b"EHLO plain.test\r\n")
        assert c.closed(30) and c.buf == b"", c.buf
    assert "reason=bad PROXY header (no PROXY header)" in p.log()
    with raw(p) as c:
        c.send(b"PROXY TCP4 192.0.2.9 127.0.0.1 40001 25\r\n")
        assert c.reply().code == 220
    assert "connect from [192.0.2.9]:40001 via [127.0.0.1]" in p.log()


def test_configtest_wants_proxy_from(make_postern, capture):
    p = make_postern(capture.addr, conf={"proxy.proxy_protocol": "yes"}, start=False)
    rc, out = p.configtest()
    assert rc == 1
    assert re.search(r"postern\.conf:\d+: proxy\.proxy_protocol = yes but proxy\.proxy_from "
                     r"is empty.*proxy_from = 10\.0\.0\.5", out), out
