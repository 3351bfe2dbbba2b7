"""SMTP smuggling: only CRLF.CRLF ends DATA. Every lone-LF / lone-CR
end-of-data look-alike must never turn one message into two at the
backend. With proxy.bare_lf = reject the message is refused; with
normalize it arrives as ONE message, canonical CRLF, the smuggled "MAIL
FROM" text inside its body."""
import re

import pytest

from harness import RawSMTP, make_message

VARIANTS = {"lf.lf": b"\n.\n", "cr.cr": b"\r.\r", "crlf.lf": b"\r\n.\n",
            "lf.crlf": b"\n.\r\n", "cr.crlf": b"\r.\r\n"}
SMUGGLED = (b"MAIL FROM:<smuggled@evil.test>\r\nRCPT TO:<victim@example.org>\r\n"
            b"DATA\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n")


def _payload(variant):
    head = make_message("carrier", body=b"innocent text")
    return head + VARIANTS[variant] + SMUGGLED + b".\r\n"


def _canonical(raw):
    return re.search(rb"\r(?!\n)|(?<!\r)\n", raw) is None


def _send(port, variant, sender="carrier@example.org"):
    """Send the carrier with its smuggled tail and QUIT in one write after
    354; return every reply until the server closes."""
    with RawSMTP(port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<%s>" % sender).code == 250
        assert c.cmd("RCPT TO:<b@example.org>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(_payload(variant) + b"QUIT\r\n")
        replies = []
        for _ in range(10):
            try:
                replies.append(c.reply())
            except (ConnectionError, OSError):
                break
            if replies[-1].code == 221:
                break
        return replies


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_smuggling_rejected(make_postern, capture, variant):
    p = make_postern(capture.addr, conf={"proxy.bare_lf": "reject"})
    replies = _send(p.port, variant)
    codes = [r.code for r in replies]
    # the one end of data: refused as etc/postern.conf documents (550 5.5.2)
    assert codes and codes[0] == 550 and replies[0].enhanced == "5.5.2", replies
    assert 250 not in codes[1:] and 354 not in codes, replies   # nothing smuggled ran
    assert not capture.messages
    assert not any(b"smuggled@" in l for l in capture.all_lines())


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_smuggling_normalized_capture(make_postern, capture, variant):
    p = make_postern(capture.addr, conf={"proxy.bare_lf": "normalize"})
    replies = _send(p.port, variant)
    assert [r.code for r in replies] == [250, 221], replies
    (m,) = capture.wait_messages(1)
    assert _canonical(m.raw), m.raw
    assert b"MAIL FROM:<smuggled@evil.test>" in m.data
    assert b"smuggled body" in m.data
    assert len(capture.messages) == 1
    assert not any(l.startswith(b"MAIL FROM:<smuggled@") for l in capture.all_lines())


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_smuggling_normalized_postfix(make_postern, postfix, variant):
    """Postfix 3.7 with smtpd_forbid_bare_newline = no is itself vulnerable:
    only Postern's canonical output keeps the smuggled message out."""
    p = make_postern(postfix.addr, conf={"proxy.bare_lf": "normalize"})
    sender = "carrier-%s@example.org" % variant.replace(".", "")
    replies = _send(p.port, variant, sender)
    assert [r.code for r in replies] == [250, 221], replies
    # The backend session that carried this message, to its disconnect line
    # (which counts its MAIL commands).
    log = postfix.wait_log("from=<%s>, size=" % sender)
    qid = re.search(r"(\w+): from=<%s>, size=" % re.escape(sender), log).group(1)
    pid = re.search(r"smtpd\[(\d+)\]: %s: client=" % qid, log).group(1)
    start = log.index("%s: client=" % qid)
    disc = "smtpd[%s]: disconnect from" % pid
    p.stop()    # the backend leg idles in Postern's pool until the drain QUITs it
    log = postfix.wait_until_after(start, disc)
    line = [l for l in log[start:].splitlines() if disc in l][0]
    assert " mail=1 " in line and " data=1 " in line, line
    assert "smuggled@evil.test" not in log
