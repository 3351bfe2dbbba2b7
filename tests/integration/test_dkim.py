"""DKIM (RFC 6376) through Postern's policy, against a real unbound serving
the keys. Messages are signed by dkimpy (an independent implementation);
each test states the RFC 8601 result it expects, so each can fail.

Covers: valid rsa-sha256 (relaxed and simple), ed25519-sha256 (RFC 8463),
body changed, signed header changed, key missing (NXDOMAIN -> permerror, not
temperror), key revoked (p= empty), expired (x=), l= with appended text, a
512-bit key (RFC 8301), several signatures each with its own result, a key
that times out (temperror), scoring once per message.
"""
import time

import pytest

import authmail as am

D = "example.org"


@pytest.fixture(scope="module")
def keys():
    return {"rsa": am.rsa_key(2048), "ed": am.ed25519_key(),
            "small": am.rsa_key(512)}


@pytest.fixture(scope="module")
def env(keys):
    k = keys
    recs = [("sel._domainkey." + D, "TXT", am.dkim_txt(k["rsa"])),
            ("ed._domainkey." + D, "TXT", am.dkim_txt(k["ed"])),
            ("small._domainkey." + D, "TXT", am.dkim_txt(k["small"])),
            ("rev._domainkey." + D, "TXT", am.dkim_txt(k["rsa"], revoked=True))]
    # no DMARC record: these tests look at DKIM alone
    e = am.AuthEnv(recs, timeout_zones=["_domainkey.slow.example."]).start()
    yield e
    e.stop()


def dkim(res):
    return res.get("dkim", [])


def one(res):
    d = dkim(res)
    assert len(d) == 1, res["raw"]
    return d[0]


def test_valid_relaxed_passes_with_properties(env, keys):
    r = env.check(am.sign(am.message(), keys["rsa"]))
    s = one(r)
    assert s["result"] == "pass", r["raw"]
    p = s["props"]
    assert p["header.d"] == D and p["header.s"] == "sel"
    assert p["header.a"] == "rsa-sha256" and p["header.i"] == "@" + D
    assert len(p["header.b"]) == 8
    assert r["verdict"] == "accept"


def test_valid_simple_passes(env, keys):
    assert one(env.check(am.sign(am.message(), keys["rsa"], canon="simple/simple")))["result"] == "pass"


def test_ed25519_passes(env, keys):
    s = one(env.check(am.sign(am.message(), keys["ed"], selector="ed")))
    assert s["result"] == "pass"
    assert s["props"]["header.a"] == "ed25519-sha256"


def test_body_changed_fails(env, keys):
    m = am.sign(am.message(), keys["rsa"]).replace(b"A test.", b"A tost.")
    assert one(env.check(m))["result"] == "fail"


def test_simple_body_whitespace_change_fails_relaxed_passes(env, keys):
    base = am.message(body="line  one\r\n")
    simple = am.sign(base, keys["rsa"], canon="simple/simple").replace(b"line  one", b"line one")
    relaxed = am.sign(base, keys["rsa"], canon="relaxed/relaxed").replace(b"line  one", b"line one")
    assert one(env.check(simple))["result"] == "fail"
    assert one(env.check(relaxed))["result"] == "pass"


def test_signed_header_changed_fails(env, keys):
    m = am.sign(am.message(subject="Invoice"), keys["rsa"]).replace(
        b"Subject: Invoice", b"Subject: Pay now")
    assert one(env.check(m))["result"] == "fail"


def test_missing_key_is_permerror_not_temperror(env, keys):
    r = env.check(am.sign(am.message(), keys["rsa"], selector="nokey"))
    assert one(r)["result"] == "permerror"
    assert r["verdict"] != "tempfail"


def test_revoked_key_is_permerror(env, keys):
    assert one(env.check(am.sign(am.message(), keys["rsa"], selector="rev")))["result"] == "permerror"


def test_expired_signature_not_accepted(env, keys):
    now = int(time.time())
    old = am.sign(am.message(), keys["rsa"], expire=(now - 7200, now - 3600))
    assert one(env.check(old))["result"] == "policy"
    fresh = am.sign(am.message(), keys["rsa"], expire=(now - 60, now + 86400))
    assert one(env.check(fresh))["result"] == "pass"


def test_expiry_follows_the_test_clock(env, keys):
    now = int(time.time())
    m = am.sign(am.message(), keys["rsa"], expire=(now - 60, now + 3600))
    assert one(env.check(m, clock=0))["result"] == "pass"
    s = one(env.check(m, clock=7200))
    assert s["result"] == "policy" and "expired" in s["reason"]


def test_length_tag_with_appended_text_passes(env, keys):
    m = am.sign(am.message(), keys["rsa"], length=True) + b"Appended by a list\r\n"
    assert one(env.check(m))["result"] == "pass"
    # without l= the same append breaks the signature
    m = am.sign(am.message(), keys["rsa"]) + b"Appended by a list\r\n"
    assert one(env.check(m))["result"] == "fail"


def test_512_bit_key_rejected(env, keys):
    s = one(env.check(am.sign(am.message(), keys["small"], selector="small")))
    assert s["result"] == "policy"


def test_every_signature_gets_its_result(env, keys):
    m = am.sign(am.message(), keys["rsa"])                     # good
    m = am.sign(m, keys["rsa"], selector="nokey")              # key missing
    m = am.sign(m, keys["ed"], selector="ed")                  # good
    r = env.check(m)
    got = sorted((s["props"].get("header.s"), s["result"]) for s in dkim(r))
    assert got == [("ed", "pass"), ("nokey", "permerror"), ("sel", "pass")], r["raw"]


def test_many_signatures_all_verify(env, keys):
    # Six signatures need more library memory than one thread's block
    # holds (dkim.c, DKIM_ARENA): the rest comes from malloc, and every
    # signature still gets its own, right result.
    m = am.message()
    for i in range(6):
        m = am.sign(m, keys["rsa"] if i % 2 else keys["ed"], selector="sel" if i % 2 else "ed")
    got = sorted((s["props"].get("header.s"), s["result"]) for s in dkim(env.check(m)))
    assert got == [("ed", "pass")] * 3 + [("sel", "pass")] * 3, got
    # and the next message starts with the whole block again
    after = am.sign(am.message(body="other body\r\n"), keys["rsa"])
    assert one(env.check(after))["result"] == "pass"


def test_unsigned_is_none(env):
    assert one(env.check(am.message()))["result"] == "none"


def test_key_lookup_timeout_is_temperror(env, keys):
    m = am.sign(am.message(frm="a@slow.example"), keys["rsa"], domain="slow.example")
    assert one(env.check(m, mail_from="a@slow.example"))["result"] == "temperror"


def test_forged_domain_signature_fails(env, keys):
    # signed with our key material but claiming a domain whose key differs
    other = am.rsa_key(1024)
    m = am.sign(am.message(), other)       # d=example.org s=sel, wrong key
    assert one(env.check(m))["result"] == "fail"


def test_slow_key_does_not_stop_other_signatures(env, keys):
    m = am.sign(am.message(), keys["rsa"])
    m = am.sign(m, keys["rsa"], domain="slow.example")
    r = env.check(m)
    got = sorted((s["props"].get("header.d"), s["result"]) for s in dkim(r))
    assert got == [(D, "pass"), ("slow.example", "temperror")], r["raw"]


def test_rsa_sha1_not_accepted(env, keys):
    k = keys["rsa"]
    sha1 = am.Key(b"rsa-sha1", k.private, k.public, k.bits)
    s = one(env.check(am.sign(am.message(), sha1)))
    assert s["result"] == "policy"
    assert s["props"]["header.a"] == "rsa-sha1"


def _tricky_body(rng):
    """A body made to stress body canonicalization: runs of SP and HTAB
    inside, before and after words, lines of blanks, empty lines inside
    and at the end, lines longer than Postern's 4 KB hashing buffer."""
    lines = []
    for _ in range(rng.randrange(1, 40)):
        kind = rng.randrange(6)
        if kind == 0:
            lines.append("")
        elif kind == 1:
            lines.append("".join(rng.choice(" \t") for _ in range(rng.randrange(1, 5))))
        elif kind == 2:
            lines.append("w" * rng.randrange(4000, 9000) + " \t x")
        else:
            words = ["".join(rng.choice("abcXYZ.,;-=") for _ in range(rng.randrange(1, 9)))
                     for _ in range(rng.randrange(1, 15))]
            seps = ["".join(rng.choice(" \t") for _ in range(rng.randrange(1, 4)))
                    for _ in words]
            lines.append(rng.choice(["", " ", "\t"]) + "".join(w + s for w, s in zip(words, seps)))
    tail = "\r\n" * rng.randrange(0, 4)
    return "\r\n".join(lines) + "\r\n" + tail


@pytest.mark.parametrize("canon", ["relaxed/relaxed", "simple/simple", "relaxed/simple"])
def test_body_canonicalization_agrees_with_an_independent_signer(env, keys, canon):
    """Postern hashes the body itself (policy/dkimbody.c); dkimpy signed
    these bodies, so every one must pass, and each changed in one visible
    character (not whitespace) must fail."""
    import random
    rng = random.Random("dkimbody-" + canon)
    for i in range(12):
        body = _tricky_body(rng)
        signed = am.sign(am.message(body=body), keys["rsa"], canon=canon)
        s = one(env.check(signed))
        assert s["result"] == "pass", (i, canon, s, body[:200])
        at = signed.rfind(b"\r\n\r\n") + 4
        pos = [k for k in range(at, len(signed)) if signed[k:k + 1] not in b" \t\r\n"]
        if not pos:
            continue
        k = rng.choice(pos)
        tampered = signed[:k] + (b"Q" if signed[k:k + 1] != b"Q" else b"R") + signed[k + 1:]
        s = one(env.check(tampered))
        assert s["result"] == "fail" and "body hash" in s["reason"], (i, canon, s)


def test_length_tag_goes_the_library_way(env, keys):
    """A signature with l= is verified by libopendkim over the whole body
    (Postern hands it the body only then): a body cut shorter than l=
    fails, one extended past it passes."""
    body = "first line\r\nsecond line\r\n"
    signed = am.sign(am.message(body=body), keys["rsa"], length=True)
    assert one(env.check(signed + b"more\r\n"))["result"] == "pass"
    cut = signed[:-len(b"second line\r\n")]
    assert one(env.check(cut))["result"] != "pass"
