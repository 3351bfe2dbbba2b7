"""DMARC (RFC 7489) through Postern's policy against a real unbound.

Covers: DKIM- and SPF-aligned pass, relaxed vs strict (adkim/aspf),
unaligned fail with p=reject (550), p=quarantine (quarantine), p=none
(accepted, dis=none), subdomain policy sp= via the organizational-domain
fallback (Public Suffix List), pct=0 sampling, no record, a broken record
(permerror), two records (no policy), a public suffix signing for a
registrable domain below it (not aligned), RFC 7489 6.6.1 From problems,
dmarc.reject_action=score, a DNS timeout (temperror / 451), and SPF
alignment on the domain SPF checked when the MAIL FROM local-part is quoted.
"""
import pytest

import authmail as am

IP = "192.0.2.1"

DMARC = {
    "example.org": ["v=DMARC1; p=reject"],
    "strict.example": ["v=DMARC1; p=reject; adkim=s; aspf=s"],
    "relaxed.example": ["v=DMARC1; p=quarantine"],
    "orgfb.example": ["v=DMARC1; p=reject; sp=quarantine"],
    "orgp.example": ["v=DMARC1; p=reject"],
    "broken.example": ["v=DMARC1; p=bogus"],
    "two.example": ["v=DMARC1; p=reject", "v=DMARC1; p=none"],
    "pct.example": ["v=DMARC1; p=reject; pct=0"],
    "none.example": ["v=DMARC1; p=none"],
    "shop.co.uk": ["v=DMARC1; p=reject"],
    "spfonly.example": ["v=DMARC1; p=reject", "v=spf1 -all is not DMARC"],
}
KEY_DOMAINS = ["example.org", "strict.example", "mail.strict.example",
               "mail.relaxed.example", "orgfb.example", "co.uk", "other.example",
               "none.example", "pct.example", "two.example", "broken.example"]
SPF_DOMAINS = ["example.org", "mail.example.org", "mail.strict.example",
               "strict.example", "spfonly.example", "bounce.spfonly.example"]


@pytest.fixture(scope="module")
def key():
    return am.rsa_key(2048)


@pytest.fixture(scope="module")
def env(key):
    recs = []
    for dom, txts in DMARC.items():
        recs += [("_dmarc." + dom, "TXT", t) for t in txts]
    for dom in KEY_DOMAINS:
        recs.append(("sel._domainkey." + dom, "TXT", am.dkim_txt(key)))
    for dom in SPF_DOMAINS:
        recs.append((dom, "TXT", "v=spf1 ip4:%s -all" % IP))
    e = am.AuthEnv(recs, timeout_zones=["_dmarc.slow.example."]).start()
    e.score_conf = e.write_conf("score.conf",
                                "[dmarc]\nreject_action = score\nquarantine_action = score\n")
    e.tempfail_conf = e.write_conf("tempfail.conf", "[policy]\ntemperror_tempfail = yes\n")
    yield e
    e.stop()


def dmarc(r):
    d = r.get("dmarc", [])
    assert len(d) == 1, r["raw"]
    return d[0]


def signed(key, frm, d, **kw):
    return am.sign(am.message(frm=frm), key, domain=d, **kw)


def test_dkim_aligned_pass(env, key):
    r = env.check(signed(key, "a@example.org", "example.org"), mail_from="")
    m = dmarc(r)
    assert m["result"] == "pass", r["raw"]
    assert r["verdict"] == "accept"
    assert m["props"].get("header.from") == "example.org"
    assert m["props"].get("p") == "reject" and m["props"].get("dis") == "none"


# (From, signing domain, DMARC result, verdict): DKIM is the only identifier
# (no SPF: null sender, HELO without a record).
CASES = [
    # aligned / unaligned, relaxed / strict
    ("a@example.org", "other.example", "fail", "reject"),
    ("a@relaxed.example", "mail.relaxed.example", "pass", "accept"),
    ("a@strict.example", "mail.strict.example", "fail", "reject"),
    ("a@strict.example", "strict.example", "pass", "accept"),
    # what the policy asks
    ("a@relaxed.example", "other.example", "fail", "quarantine"),
    ("a@none.example", "other.example", "fail", "accept"),
    ("a@pct.example", "other.example", "fail", "quarantine"),   # pct=0: milder
    # organizational-domain fallback: sp=, or p= without sp=
    ("a@news.orgfb.example", "other.example", "fail", "quarantine"),
    ("a@deep.sub.orgp.example", "other.example", "fail", "reject"),
    ("a@news.orgfb.example", "orgfb.example", "pass", "accept"),
    # no record, a broken one, two of them
    ("a@nodmarc.example", "other.example", "none", "accept"),
    ("a@broken.example", "other.example", "permerror", "accept"),
    ("a@two.example", "other.example", "none", "accept"),
]


@pytest.mark.parametrize("frm,d,result,verdict", CASES)
def test_dkim_identifier(env, key, frm, d, result, verdict):
    r = env.check(signed(key, frm, d), mail_from="")
    assert r["dkim"][0]["result"] == "pass"
    assert dmarc(r)["result"] == result, r["raw"]
    assert r["verdict"] == verdict
    if verdict == "reject":
        assert r["code"] == 550


def test_unsigned_p_reject_rejects(env):
    r = env.check(am.message(frm="a@example.org"), ip="198.51.100.7",
                  mail_from="x@elsewhere.example")
    assert dmarc(r)["result"] == "fail"
    assert r["verdict"] == "reject"


def test_p_none_fail_says_dis_none(env, key):
    m = dmarc(env.check(signed(key, "a@none.example", "other.example"), mail_from=""))
    assert m["props"].get("p") == "none" and m["props"].get("dis") == "none"


def test_public_suffix_signature_does_not_align(env, key):
    # d=co.uk verifies, but co.uk is a public suffix: not shop.co.uk's
    r = env.check(signed(key, "a@shop.co.uk", "co.uk"), mail_from="")
    assert r["dkim"][0]["result"] == "pass"
    assert dmarc(r)["result"] == "fail"
    assert r["verdict"] == "reject"


def test_several_from_fields_permerror(env, key):
    msg = am.message(frm="a@example.org", extra=["From: b@evil.example"])
    r = env.check(am.sign(msg, key), mail_from="")
    assert dmarc(r)["result"] == "permerror"


def test_from_with_two_domains_permerror(env, key):
    msg = am.message(frm="a@example.org, b@evil.example")
    r = env.check(am.sign(msg, key), mail_from="")
    assert dmarc(r)["result"] == "permerror"


def test_missing_from_permerror(env):
    msg = b"To: b@example.net\r\nSubject: x\r\n\r\nbody\r\n"
    r = env.check(msg, mail_from="")
    assert dmarc(r)["result"] == "permerror"


def test_reject_action_score(env, key):
    r = env.check(signed(key, "a@example.org", "other.example"), mail_from="",
                  conf=env.score_conf)
    assert dmarc(r)["result"] == "fail"
    assert r["verdict"] != "reject"


def test_dns_timeout_is_temperror_and_451_when_asked(env, key):
    msg = signed(key, "a@slow.example", "other.example")
    r = env.check(msg, mail_from="")
    assert dmarc(r)["result"] == "temperror"
    assert r["verdict"] == "accept"
    r = env.check(msg, mail_from="", conf=env.tempfail_conf)
    assert dmarc(r)["result"] == "temperror"
    assert r["verdict"] == "tempfail" and r["code"] == 451


# (From, MAIL FROM, DMARC result): SPF passes for each MAIL FROM domain;
# the message is unsigned, so SPF alignment alone decides.
SPF_CASES = [
    ("a@example.org", "bounce@mail.example.org", "pass"),        # relaxed
    ("a@strict.example", "bounce@mail.strict.example", "fail"),  # aspf=s
    ("a@example.org", "bounce@spfonly.example", "fail"),         # unaligned
]


@pytest.mark.parametrize("frm,mail_from,result", SPF_CASES)
def test_spf_identifier(env, frm, mail_from, result):
    r = env.check(am.message(frm=frm), ip=IP, mail_from=mail_from)
    assert r["spf"][0]["result"] == "pass"
    assert dmarc(r)["result"] == result


def test_null_sender_helo_identity_aligns(env):
    # RFC 7489 4.1: for MAIL FROM:<> the SPF HELO identity is the one
    r = env.check(am.message(frm="a@example.org"), ip=IP, mail_from="",
                  helo="mail.example.org")
    assert r["spf"][0]["result"] == "pass"
    assert r["spf"][0]["props"].get("smtp.helo") == "mail.example.org"
    assert dmarc(r)["result"] == "pass"
    # the same HELO from an address SPF does not list: fail, p=reject
    r = env.check(am.message(frm="a@example.org"), ip="198.51.100.7", mail_from="",
                  helo="mail.example.org")
    assert dmarc(r)["result"] == "fail" and r["verdict"] == "reject"


def test_spf_identity_with_quoted_local_part_aligns(env):
    # DMARC aligns on the domain SPF checked (typed), not on the text of
    # smtp.mailfrom=, which a quoted local-part with ';' or a space would
    # cut short before the '@'
    for mail_from in ('"a;b"@mail.example.org', '"a b"@mail.example.org'):
        r = env.check(am.message(frm="a@example.org"), ip=IP, mail_from=mail_from)
        assert r["spf"][0]["result"] == "pass", r["raw"]
        assert r["spf"][0]["domain"] == "mail.example.org"
        assert dmarc(r)["result"] == "pass", r["raw"]
        assert r["verdict"] == "accept"


def test_smtp_cached_dkim_and_dmarc_run_inline(key):
    """Over SMTP: once the DKIM keys and DMARC records a message needs are
    cached, its DATA stage runs on the I/O loop with the results a worker
    gave; a quarantine verdict reached there still stores its copy (on a
    worker) before the 250; past DKIM_INLINE_SIGS signatures, or with a
    key not yet cached, DATA goes to a worker."""
    import re
    from dnszone import txt_rdata
    from harness.capture import Capture
    from policyenv import PolicyEnv, rows, smtp_session, stage_counts
    token = "d" * 40
    recs = ["sel._domainkey.example.org. 300 IN TXT %s" % txt_rdata(am.dkim_txt(key)),
            "sel2._domainkey.example.org. 300 IN TXT %s" % txt_rdata(am.dkim_txt(key)),
            '_dmarc.example.org. 300 IN TXT "v=DMARC1; p=reject"',
            '_dmarc.q.example. 300 IN TXT "v=DMARC1; p=quarantine"']
    sink = Capture().start()
    e = PolicyEnv(recs, conf="[dkim]\nenabled = yes\n[dmarc]\nenabled = yes\n"
                  "[web]\napi_token = %s\n" % token).start()
    signed = am.sign(am.message(frm="Alice <alice@example.org>"), key)
    spam = am.message(frm="Q <q@q.example>")
    many = signed
    for sel in ("sel", "sel2", "sel"):
        many = am.sign(many, key, selector=sel)

    def send(msg, sender):
        before = stage_counts(e.p.web_port, token)
        s = smtp_session(e.port)
        s.ehlo("client.example")
        code = s.sendmail(sender, ["b@example.net"], msg)
        s.quit()
        after = stage_counts(e.p.web_port, token)
        return code, after[0] - before[0], after[1] - before[1]

    try:
        e.serve(sink)
        send(b"Subject: warm\r\n\r\nx\r\n", "w@warm.example")  # tick, HELO
        cold = send(signed, "alice@example.org")
        warm = send(signed, "alice@example.org")
        assert warm[1] - cold[1] == 1 and cold[2] - warm[2] == 1, (cold, warm)
        q1 = send(spam, "q@q.example")
        q2 = send(spam, "q@q.example")
        assert q1[1] == q2[1] and q1[2] == q2[2], (q1, q2)   # inline, then a worker stores
        send(many, "alice@example.org")
        again_many = send(many, "alice@example.org")
        assert again_many[2] == warm[2] + 1, (warm, again_many)  # 4 signatures: a worker
        assert len(sink.accepted()) == 1 + 2 + 2
        assert e.stop_serving() == 0
        log = e.log()
        lines = re.findall(r"from=<alice@example\.org>.* verdict=(\w+) .*dkim=(\w+) dmarc=(\w+)", log)
        assert lines == [("accept", "pass", "pass")] * 4, lines
        assert re.findall(r"from=<q@q\.example>.* verdict=(\w+) ", log) == ["quarantine"] * 2
        assert rows(e.db, "SELECT count(*) FROM quarantine") == [(2,)]
    finally:
        e.stop()
        sink.stop()
