"""Building test messages and comparing what the backend got with what was
sent.

Public: make_message(), stuff(), split_added(), ADDED_HEADERS.
"""
import re

# Headers Postern may prepend to a relayed message (CONTRACT.md "What the
# backend receives"; Received is what an MTA-like hop may add).
ADDED_HEADERS = {"authentication-results", "x-spam-score", "x-spam-flag",
                 "x-spam-status", "x-spam-level", "received"}


def make_message(subject="test", body=b"hello\r\n", size=None, headers=(),
                 sender="a@example.org", rcpt="b@example.org", msgid=None):
    """RFC 5322 bytes with CRLF line ends. With `size`, the body is padded
    with 76-char lines so the whole message has exactly `size` bytes."""
    head = [b"From: <%s>" % sender.encode(), b"To: <%s>" % rcpt.encode(),
            b"Subject: %s" % subject.encode(),
            b"Message-ID: <%s@example.org>" % (msgid or subject.replace(" ", ".")).encode(),
            b"Date: Mon, 23 Nov 2026 04:00:00 +0000"]
    head += [h.encode() if isinstance(h, str) else h for h in headers]
    msg = b"\r\n".join(head) + b"\r\n\r\n" + body
    if size is not None:
        need = size - len(msg)
        if need < 0:
            raise ValueError("size %d smaller than the bare message" % size)
        line = b"x" * 76 + b"\r\n"
        pad = line * (need // len(line))
        rest = need - len(pad)
        if rest >= 2:
            pad += b"y" * (rest - 2) + b"\r\n"
        elif rest == 1:
            if not pad:
                raise ValueError("cannot pad by exactly one byte")
            pad = pad[:-2] + b"x\r\n"
        msg += pad
        assert len(msg) == size
    return msg


def stuff(content):
    """Dot-stuff content for the DATA phase (RFC 5321 4.5.2) and add the
    terminator; content is expected to end with CRLF."""
    if not content.endswith(b"\r\n"):
        content += b"\r\n"
    return re.sub(rb"(?m)^\.", b"..", content) + b".\r\n"


def split_added(delivered, sent):
    """(added_header_names, rest): `delivered` must end with exactly `sent`;
    what comes before must be whole header fields Postern may add. Raises
    AssertionError with a readable diff otherwise."""
    assert delivered.endswith(sent), (
        "delivered bytes do not end with the sent message:\n sent tail %r\n got tail  %r"
        % (sent[-200:], delivered[-200:]))
    prefix = delivered[:len(delivered) - len(sent)]
    names = []
    for line in prefix.split(b"\r\n")[:-1] if prefix else []:
        if line[:1] in (b" ", b"\t"):
            assert names, "prepended block starts with a continuation: %r" % prefix[:200]
            continue
        name = line.split(b":", 1)[0].decode("ascii", "replace").lower()
        assert b":" in line and name in ADDED_HEADERS, \
            "Postern prepended an unexpected line %r" % line[:200]
        names.append(name)
    assert not prefix or prefix.endswith(b"\r\n"), "prepended block not CRLF-terminated"
    return names, sent
