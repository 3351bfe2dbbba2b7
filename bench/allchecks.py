"""The "every check on" scenario of bench/run.py (--policy all): the DNS
data, the trained classifier and the DKIM-signed messages it needs.

Every check Postern has, as a site that turned them all on would run it:
rDNS (the client 127.0.0.1 has a PTR whose name points back), SPF pass,
DKIM pass (RSA-2048), DMARC pass (p=reject), one DNS list (the client is
not listed: a cached NXDOMAIN), the starter rules (etc/rules.txt) and the
classifier (bayes.enabled = yes, 200 spam and 200 ham learned with
`postern learn` before the start, so it scores; autolearn as configured
by default). Greylisting stays off: it would defer every message.

Public: records(key), ZONES, settings(), messages(tmp, key, sizes),
train(postern, tmp), checks_seen(postern), missing(seen).
"""
import os
import random
import sqlite3
import subprocess

import authmail as am
from harness import POSTERN_BIN

CLIENT_NAME = "client.example.org"

COMMON = """the of and to in is it you that was for on are with as be at this have from
or one had by word but not what all were we when your can said there use an each which
she do how their if will up other about out many then them these so some her would make
like him into time has look two more write go see number no way could people my than
first water been call who oil its now find long down day did get come made may part over
new sound take only little work know place year live me back give most very after thing
our just name good sentence man think say great where help through much before line
right too mean old any same tell boy follow came want show also around form three small
set put end does another well large must big even such because turn here why ask went
men read need land different home us move try kind hand picture again change off play
spell air away animal house point page letter mother answer found study still learn should""".split()
HAM = """meeting agenda kernel patch review lunch report build release thanks minutes draft
schedule compiler branch merge commit test suite deadline budget invoice quarterly team
project plan notes attached document slides customer ticket issue fixed deploy server
backup monday tuesday wednesday thursday friday weekend conference travel hotel flight
coffee office manager colleague regards cheers question proposal feedback update""".split()
SPAM = """viagra cheap pills winner casino mortgage refinance click unsubscribe offer rolex
bonus prize guaranteed lowest free money credit loan debt bitcoin investment profit
limited exclusive deal discount pharmacy replica watches lottery inheritance urgent
claim reward congratulations selected million dollars cash earn income opportunity""".split()


def records(key):
    """unbound local-data for the scenario (and local zones: records_zones)."""
    return [
        'example.org. 300 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"',
        "sel._domainkey.example.org. 300 IN TXT %s" % am.txt_rdata(am.dkim_txt(key)),
        '_dmarc.example.org. 300 IN TXT "v=DMARC1; p=reject"',
        "1.0.0.127.in-addr.arpa. 300 IN PTR %s." % CLIENT_NAME,
        "%s. 300 IN A 127.0.0.1" % CLIENT_NAME,
        # the list knows another client; ours gets a cached NXDOMAIN
        "2.0.0.127.bl.test. 300 IN A 127.0.0.2",
    ]


# unbound's own 127.in-addr.arpa data would answer "localhost" otherwise
ZONES = {"127.in-addr.arpa.": "static"}


def settings():
    rules = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "etc", "rules.txt")
    return {"spf.enabled": "yes", "dkim.enabled": "yes", "dmarc.enabled": "yes",
            "greylist.enabled": "no", "rbl.zones": "bl.test*5", "rbl.rhsbl_zones": "",
            "rules.file": rules, "bayes.enabled": "yes"}


def _text(rnd, vocab, nbytes, width=72):
    """Lines of words from vocab, about nbytes in all."""
    lines, line, size = [], [], 0
    while size < nbytes:
        w = rnd.choice(vocab)
        if len(" ".join(line + [w])) > width:
            lines.append(" ".join(line))
            size += len(lines[-1]) + 2
            line = []
        line.append(w)
    lines.append(" ".join(line))
    return "\r\n".join(lines) + "\r\n"


def _mail(frm, subject, body, msgid):
    return ("From: %s\r\nTo: Bob <bob@example.org>\r\nSubject: %s\r\n"
            "Date: Mon, 23 Nov 2026 04:00:00 +0000\r\nMessage-ID: <%s>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s"
            % (frm, subject, msgid, body))


def messages(tmp, key, sizes):
    """{size: path} of one DKIM-signed ham-like message per size in bytes,
    LF line ends (smtp-source -F sends each line with CRLF)."""
    out = {}
    for size in sizes:
        rnd = random.Random(size)
        body = ("Hello Bob,\r\n\r\nThe notes are at https://wiki.example.org/build/notes "
                "and the tickets at https://tracker.example.org/q?team=build.\r\n\r\n")
        body += _text(rnd, COMMON * 2 + HAM, max(size - len(body) - 1000, 100))
        body += "\r\nRegards,\r\nAlice\r\n"
        msg = am.sign(am.message(frm="Alice <alice@example.org>", to="Bob <bob@example.org>",
                                 subject="Weekly build report", body=body,
                                 extra=["MIME-Version: 1.0",
                                        "Content-Type: text/plain; charset=utf-8"]), key)
        path = tmp.join("msg-%d.txt" % size)
        with open(path, "wb") as f:
            f.write(msg.replace(b"\r\n", b"\n"))
        out[size] = path
    return out


def train(postern, tmp, n=200):
    """Learn n spam and n ham messages (an mbox each) into the Postern's
    database with `postern learn`; its config is written first."""
    postern.write_config()
    for cls, vocab, frm in (("spam", COMMON + SPAM * 3, "Deals <promo@deals.test>"),
                            ("ham", COMMON + HAM * 3, "Carol <carol@corp.test>")):
        rnd = random.Random(cls)
        path = tmp.join("%s.mbox" % cls)
        with open(path, "w") as f:
            for i in range(n):
                subj = " ".join(rnd.choice(vocab) for _ in range(4))
                m = _mail(frm, subj, _text(rnd, vocab, rnd.randint(300, 3000)),
                          "%d.%s@train.test" % (i, cls))
                f.write("From %s Mon Jan  1 00:00:00 2024\n%s\n"
                        % (frm.split("<")[1].rstrip(">"), m.replace("\r\n", "\n")))
        r = subprocess.run([POSTERN_BIN, "learn", "-c", postern.conf_path, cls, path],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError("postern learn %s: %s" % (cls, r.stderr[-500:]))


def checks_seen(postern):
    """{check:result: count} from the Postern's per-minute counters."""
    c = sqlite3.connect(postern.settings["db.path"], timeout=10)
    try:
        return dict(c.execute("SELECT name, sum(n) FROM stats WHERE name LIKE 'check:%' "
                              "GROUP BY name").fetchall())
    finally:
        c.close()


# what a run of the scenario must have done, or it measured something else
WANT = ("check:rdns:pass", "check:spf:pass", "check:dkim:pass", "check:dmarc:pass",
        "check:bayes:ham")


def missing(seen):
    return [w for w in WANT if not seen.get(w)]

