"""Local allow and deny lists: the `postern access` CLI (add, del, list,
bad input) and their effect through the policy -- client IP/CIDR (IPv4,
IPv6), HELO, sender address/domain, recipient; allow beats deny and beats
a DNS block list; over SMTP a denied client gets 554 at connect and the
backend never sees it, an allowlisted one skips greylisting.
"""
import pytest

from harness.capture import Capture
from harness.net import wait_until
from policyenv import PolicyEnv, smtp_session


@pytest.fixture
def env():
    e = PolicyEnv(["1.2.0.192.bl.test. 300 IN A 127.0.0.2"],
                  conf="[greylist]\nenabled = no\n[rbl]\nzones = bl.test*10\n").start()
    yield e
    e.stop()


def test_cli_add_list_del(env):
    assert env.access("add", "allow", "client", "192.0.2.0/24", "office")[:2] == \
        (0, "allow client 192.0.2.0/24: added\n")
    rc, out, _ = env.access("add", "allow", "client", "192.0.2.0/24")
    assert rc == 0 and "already listed" in out
    assert env.access("add", "deny", "sender", "Spam@Bad.Example")[0] == 0
    assert env.access("add", "deny", "rcpt", "@example.net")[0] == 0
    rc, out, _ = env.access("list")
    assert rc == 0
    assert out.splitlines() == ["deny\trcpt\t@example.net", "deny\tsender\tspam@bad.example",
                                "allow\tclient\t192.0.2.0/24\t# office"]
    rc, out, _ = env.access("list", "sender")
    assert out.splitlines() == ["deny\tsender\tspam@bad.example"]
    assert env.access("del", "deny", "sender", "spam@bad.example")[0] == 0
    rc, out, _ = env.access("del", "deny", "sender", "spam@bad.example")
    assert rc == 1 and "not listed" in out
    assert "spam@bad.example" not in env.access("list")[1]


@pytest.mark.parametrize("args,why", [
    (("add", "allow", "client", "192.0.2.0/33"), "not an IP address or CIDR"),
    (("add", "allow", "client", "mail.example"), "not an IP address or CIDR"),
    (("add", "allow", "ip", "192.0.2.1"), "kind must be"),
    (("add", "maybe", "client", "192.0.2.1"), "usage"),
    (("add", "deny", "sender", "a b@example.org"), "no spaces"),
    (("frobnicate",), "usage"),
])
def test_cli_rejects_bad_input(env, args, why):
    rc, out, err = env.access(*args)
    assert rc != 0
    assert why in err


def test_deny_client_cidr_rejects_at_connect(env):
    env.access("add", "deny", "client", "198.51.100.0/24")
    d = env.check("198.51.100.9", mail="a@example.org", rcpts=["b@example.net"])
    assert d["verdict"] == "reject" and d["stage"] == "connect"
    assert d["reply"] == "554 5.7.1 Service unavailable; client 198.51.100.9 denied by local policy"
    assert env.check("198.51.101.9")["verdict"] == "accept"


def test_deny_ipv6_client(env):
    env.access("add", "deny", "client", "2001:db8:bad::/48")
    assert env.check("2001:db8:bad::25")["verdict"] == "reject"
    assert env.check("2001:db8:900d::25")["verdict"] == "accept"


def test_allow_beats_deny_and_dnsbl(env):
    env.access("add", "deny", "client", "192.0.2.0/24")
    assert env.check("192.0.2.1")["verdict"] == "reject"
    env.access("add", "allow", "client", "192.0.2.1")
    d = env.check("192.0.2.1", helo="h.example", mail="a@example.org", rcpts=["b@example.net"])
    assert d["verdict"] == "accept"
    # nothing else ran (rdns only names the client, it never refuses)
    assert [r["check"] for r in d["results"] if r["check"] != "rdns"] == ["access"]
    assert env.check("192.0.2.2")["verdict"] == "reject"


def test_helo_sender_recipient_denies(env):
    env.access("add", "deny", "helo", "bad.example")
    env.access("add", "deny", "sender", "spammer.example")
    env.access("add", "deny", "rcpt", "trap@example.net")
    d = env.check("203.0.113.1", helo="mx.bad.example")
    assert d["stage"] == "helo" and d["reply"].startswith("550 5.7.1 <mx.bad.example>: Helo command rejected")
    d = env.check("203.0.113.1", helo="ok.example", mail="x@mail.spammer.example")
    assert d["stage"] == "mail"
    assert d["reply"] == "550 5.7.1 <x@mail.spammer.example>: Sender address rejected: denied by local policy"
    d = env.check("203.0.113.1", helo="ok.example", mail="x@ok.example",
                  rcpts=["Trap@Example.NET"])
    assert d["stage"] == "rcpt" and "Recipient address rejected" in d["reply"]
    d = env.check("203.0.113.1", helo="ok.example", mail="x@ok.example", rcpts=["me@example.net"])
    assert d["verdict"] == "accept"


def test_allowed_sender_skips_greylisting(env):
    env.write_conf("[greylist]\nenabled = yes\n")
    env.access("add", "allow", "sender", "@partner.example")
    d = env.check("203.0.113.1", mail="x@partner.example", rcpts=["b@example.net"])
    assert d["verdict"] == "accept"
    d = env.check("203.0.113.1", mail="x@other.example", rcpts=["b@example.net"])
    assert d["verdict"] == "tempfail" and d["reply"].startswith("450 4.7.1 Greylisted")


def test_allowed_recipient_skips_greylisting(env):
    env.write_conf("[greylist]\nenabled = yes\n")
    env.access("add", "allow", "rcpt", "postmaster@example.net")
    d = env.check("203.0.113.1", mail="x@other.example", rcpts=["postmaster@example.net"])
    assert d["verdict"] == "accept"


def test_smtp_denied_client_never_reaches_backend(env):
    sink = Capture().start()
    try:
        env.access("add", "deny", "client", "127.0.0.3")
        env.serve(sink)
        s = smtp_session(env.port, source="127.0.0.3")
        assert s.banner[0] == 554
        s.close()
        # edits made by another process (the CLI) apply without a reload
        # within two seconds: the daemon polls the edit version
        env.access("del", "deny", "client", "127.0.0.3")

        def admitted():
            s = smtp_session(env.port, source="127.0.0.3")
            if s.banner[0] == 220:
                return s
            assert s.banner[0] == 554
            s.close()
            return None
        s = wait_until(admitted, 2.0, what="access-list edit applied")
        s.sendmail("a@example.org", ["b@example.net"], b"Subject: x\r\n\r\nbody\r\n")
        s.quit()
        assert len(sink.accepted()) == 1
        assert env.stop_serving() == 0
    finally:
        sink.stop()


def test_allowlisted_client_beats_dmarc_reject():
    e = PolicyEnv(['_dmarc.strict.example. 300 IN TXT "v=DMARC1; p=reject"',
                   'strict.example. 300 IN TXT "v=spf1 -all"'],
                  conf="[greylist]\nenabled = no\n[spf]\nenabled = yes\n"
                       "[dkim]\nenabled = yes\n[dmarc]\nenabled = yes\n").start()
    msg = (b"From: ceo@strict.example\r\nTo: b@example.net\r\nSubject: wire money\r\n"
           b"Message-ID: <x@strict.example>\r\n\r\nplease\r\n")
    try:
        d = e.check("203.0.113.9", helo="h.example", mail="ceo@strict.example",
                    rcpts=["b@example.net"], message=msg)
        assert d["verdict"] == "reject"                 # DMARC p=reject followed
        assert d["stage"] == "data"
        e.access("add", "allow", "client", "203.0.113.9")
        d = e.check("203.0.113.9", helo="h.example", mail="ceo@strict.example",
                    rcpts=["b@example.net"], message=msg)
        assert d["verdict"] == "accept"
    finally:
        e.stop()
