"""Authentication-Results hygiene end to end (RFC 8601 section 5): a message
goes smtplib -> `postern serve` -> the harness Capture backend, and we read
the exact bytes delivered. Forged Authentication-Results claiming our
authserv-id (any case, quoted, behind comments, folded) are gone; those of
other hosts stay; exactly one header of ours is on top with the real
verdicts; the DKIM signature still verifies downstream (dkimpy); the log
line carries the results; DMARC reject and quarantine reach the client.
"""
import email
import re
import smtplib

import dkim
import pytest

import authmail as am
from harness import wait_until

HOST = am.HOSTNAME


@pytest.fixture(scope="module")
def key():
    return am.rsa_key(2048)


@pytest.fixture
def gateway(key, make_unbound, capture, make_postern):
    u = make_unbound(local_data=[
        "sel._domainkey.example.org. TXT %s" % am.txt_rdata(am.dkim_txt(key)),
        '_dmarc.example.org. TXT "v=DMARC1; p=reject"',
        '_dmarc.q.example. TXT "v=DMARC1; p=quarantine"'])
    p = make_postern(capture.addr, resolver=u.addr, hostname=HOST)
    return {"postern": p, "cap": capture, "key": key}


def send(gw, msg, mail_from="alice@example.org"):
    with smtplib.SMTP("127.0.0.1", gw["postern"].port, timeout=30) as s:
        s.ehlo("client.example.net")
        s.sendmail(mail_from, ["bob@example.net"], msg)
    return gw["cap"].wait_messages(1)[0].data


FORGED = [
    "Authentication-Results: %s; dkim=pass header.d=bank.example" % HOST,
    "authentication-results: %s.; dmarc=pass header.from=bank.example" % HOST.upper(),
    "Authentication-Results: (trust me) \"%s\"; spf=pass" % HOST,
    "Authentication-Results:\r\n\t%s;\r\n\tdkim=pass (folded)" % HOST,
]
OTHER = "Authentication-Results: relay.example.net; spf=pass smtp.mailfrom=x@y.example"


def ar_fields(raw):
    m = email.message_from_bytes(raw)
    return [v for k, v in m.items() if k.lower() == "authentication-results"]


def ours(raw):
    return [v for v in ar_fields(raw) if v.strip().lower().startswith(HOST)]


def test_forged_results_removed_ours_on_top(gateway):
    msg = am.sign(am.message(frm="a@example.org", extra=FORGED + [OTHER]), gateway["key"])
    got = send(gateway, msg, mail_from="")
    head = got.split(b"\r\n\r\n", 1)[0]
    assert b"bank.example" not in head
    assert b"trust me" not in head and b"(folded)" not in head
    mine = ours(got)
    assert len(mine) == 1, ar_fields(got)
    assert "dkim=pass" in mine[0] and "header.d=example.org" in mine[0]
    assert "dmarc=pass" in mine[0] and "header.from=example.org" in mine[0]
    # ours comes before every header the client wrote (after our Received)
    assert ar_fields(got)[0] == mine[0]
    assert head.index(b"Authentication-Results: %s;" % HOST.encode()) < head.index(b"DKIM-Signature")
    # someone else's claim is left for downstream to judge
    assert any(v.strip().startswith("relay.example.net") for v in ar_fields(got))


def test_signature_still_verifies_downstream(gateway):
    msg = am.sign(am.message(frm="a@example.org", extra=FORGED), gateway["key"])
    got = send(gateway, msg, mail_from="")
    pub = am.dkim_txt(gateway["key"]).encode()
    assert dkim.verify(got, dnsfunc=lambda name, timeout=5: pub)


def test_unsigned_gets_dkim_none(gateway):
    got = send(gateway, am.message(frm="a@elsewhere.example"),
               mail_from="x@elsewhere.example")
    mine = ours(got)
    assert len(mine) == 1 and "dkim=none" in mine[0] and "dmarc=none" in mine[0]
    # a result without properties ends at its own value: no stray space
    head = got.split(b"\r\n\r\n", 1)[0]
    assert re.search(rb"\tdkim=none(;\r\n|\r\n)", head), head


def test_log_line_carries_the_results(gateway):
    msg = am.sign(am.message(frm="a@example.org"), gateway["key"])
    send(gateway, msg, mail_from="logline@example.org")
    wait_until(lambda: [l for l in gateway["postern"].log().splitlines()
                        if "from=<logline@example.org>" in l and
                        "spf=none dkim=pass dmarc=pass" in l],
               15, what="the transaction log line")


def test_dmarc_reject_reaches_the_client(gateway):
    # unsigned, From example.org (p=reject), SPF none: 550, nothing delivered
    with smtplib.SMTP("127.0.0.1", gateway["postern"].port, timeout=30) as s:
        s.ehlo("client.example.net")
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("x@elsewhere.example", ["bob@example.net"],
                       am.message(frm="a@example.org"))
        assert s.noop()[0] == 250
    assert e.value.smtp_code == 550
    assert b"DMARC policy of example.org" in e.value.smtp_error
    assert gateway["cap"].accepted() == []


def test_dmarc_quarantine_is_250_and_not_delivered(gateway):
    with smtplib.SMTP("127.0.0.1", gateway["postern"].port, timeout=30) as s:
        s.ehlo("client.example.net")
        s.sendmail("x@elsewhere.example", ["bob@example.net"], am.message(frm="a@q.example"))
        # the transaction is over when the server takes the next command
        assert s.noop()[0] == 250
    assert gateway["cap"].accepted() == []
