"""Signed test mail for the DKIM/DMARC tests: keys, DNS records, signatures.

Public: rsa_key(bits), ed25519_key(), dkim_txt(key), message(...),
        sign(msg, key, ...), write_conf(), AuthEnv (DNS + `postern check`).

Signatures are made by dkimpy (Debian's python3-dkim), an implementation
independent of libopendkim, so a test proves interoperability and not that
our code agrees with itself. Keys are generated fresh per test session.
x= (expiry) is the one tag dkimpy will not write; _ExpiringDKIM adds it
through dkimpy's own header generator, so the signature still covers it.
"""
import base64
import time

import dkim
import nacl.signing
import nacl.encoding
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


class Key:
    """A signing key: alg is b"rsa-sha256" or b"ed25519-sha256"; private is
    what dkimpy takes; public is the base64 for p=."""

    def __init__(self, alg, private, public, bits):
        self.alg, self.private, self.public, self.bits = alg, private, public, bits


def rsa_key(bits=2048):
    k = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    priv = k.private_bytes(serialization.Encoding.PEM,
                           serialization.PrivateFormat.TraditionalOpenSSL,
                           serialization.NoEncryption())
    pub = k.public_key().public_bytes(serialization.Encoding.DER,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    return Key(b"rsa-sha256", priv, base64.b64encode(pub).decode(), bits)


def ed25519_key():
    sk = nacl.signing.SigningKey.generate()
    priv = sk.encode(encoder=nacl.encoding.Base64Encoder)
    pub = sk.verify_key.encode(encoder=nacl.encoding.Base64Encoder).decode()
    return Key(b"ed25519-sha256", priv, pub, 256)


def dkim_txt(key, revoked=False):
    """The key record text (RFC 6376 3.6.1); revoked keys have an empty p=."""
    k = "ed25519" if key.alg == b"ed25519-sha256" else "rsa"
    return "v=DKIM1; k=%s; p=%s" % (k, "" if revoked else key.public)


def txt_rdata(text):
    """TXT rdata for unbound local-data: 255-byte character-strings."""
    parts = [text[i:i + 255] for i in range(0, len(text), 255)] or [""]
    return " ".join('"%s"' % p for p in parts)


def message(frm="Alice <alice@example.org>", to="bob@example.net",
            subject="Hello", body="Hello Bob,\r\n\r\nA test.\r\n", extra=()):
    """An RFC 5322 message as bytes with CRLF line ends."""
    hdrs = ["From: %s" % frm, "To: %s" % to, "Subject: %s" % subject,
            "Date: Mon, 23 Nov 2026 04:00:00 +0000",
            "Message-ID: <%d.test@example.org>" % int(time.time() * 1e6)]
    hdrs += list(extra)
    return ("\r\n".join(hdrs) + "\r\n\r\n" + body).encode()


class _ExpiringDKIM(dkim.DKIM):
    """dkimpy with t= and x= set by the caller."""

    def __init__(self, msg, t, x, **kw):
        super().__init__(msg, **kw)
        self._t, self._x = t, x

    def gen_header(self, fields, include_headers, canon_policy, header_name,
                   pk, standardize=False):
        out = []
        for name, value in fields:
            if name == b"t":
                out.append((b"t", str(self._t).encode()))
                out.append((b"x", str(self._x).encode()))
            else:
                out.append((name, value))
        return super().gen_header(out, include_headers, canon_policy,
                                  header_name, pk, standardize)


def sign(msg, key, domain="example.org", selector="sel", canon="relaxed/relaxed",
         length=False, expire=None, identity=None):
    """The message with a DKIM-Signature prepended. canon is
    "header/body"; expire=(t, x) writes t= and x= (seconds since epoch)."""
    c = tuple(x.encode() for x in canon.split("/"))
    kw = dict(identity=identity.encode() if identity else None, canonicalize=c,
              include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
              length=length)
    if expire is None:
        d = dkim.DKIM(msg, signature_algorithm=key.alg)
    else:
        d = _ExpiringDKIM(msg, expire[0], expire[1], signature_algorithm=key.alg)
    sig = d.sign(selector.encode(), domain.encode(), key.private, **kw)
    return sig + msg


# --- running Postern on signed mail ---------------------------------------

import json
import os
import re
import shutil
import subprocess
import tempfile

from harness import TIME_SCALE

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# POSTERN_BIN picks another build (an ASan one), as in dnszone.py.
POSTERN = os.environ.get("POSTERN_BIN") or os.path.join(ROOT, "build", "postern")
HOSTNAME = "mx.test.example"


def write_conf(path, resolver, extra=""):
    """A config for these tests: our unbound, no greylisting or database
    side effects in the way of sender authentication."""
    with open(path, "w") as f:
        f.write("[proxy]\nhostname = %s\n[dns]\nresolver = %s\ntimeout = %d\n"
                "[greylist]\nenabled = no\n%s"
                % (HOSTNAME, resolver, int(1000 * TIME_SCALE), extra))
    return path


def _props(s):
    """'(p=reject dis=none) header.d=x header.b=y' -> {'p': 'reject', ...}"""
    return dict(re.findall(r"([\w.]+)=([^\s;()]+)", s or ""))


def _normalize_check(doc):
    """postern check's JSON -> {"dkim": [result...], "dmarc": [...],
    "verdict": str, "code": int or None, "headers": str, "raw": doc}; each
    result is the JSON object plus "props", its RFC 8601 properties parsed."""
    reply = doc.get("reply") or ""
    out = {"verdict": doc.get("verdict"), "raw": doc,
           "code": int(reply.split()[0]) if reply else None,
           "headers": doc.get("headers") or ""}
    for r in doc.get("results", []):
        out.setdefault(r["check"], []).append(dict(r, props=_props(r.get("authres"))))
    return out


class AuthEnv:
    """A private unbound (dnszone.Zone) serving `records` ((name, type,
    rdata) tuples; names under `timeout_zones` never answer) and a config
    pointing at it; check() runs one message through `postern check`."""

    def __init__(self, records, conf_extra="", timeout_zones=()):
        from dnszone import Zone
        self.zone = Zone(records, zones=(), timeout_zones=tuple(timeout_zones))
        self.conf_extra = conf_extra
        self.n = 0

    def start(self):
        self.zone.__enter__()
        self.tmp = tempfile.mkdtemp(prefix="postern-auth-")
        self.resolver = "127.0.0.1:%d" % self.zone.port
        self.conf = self.write_conf("postern.conf", self.conf_extra)
        return self

    def write_conf(self, name, extra=""):
        return write_conf(os.path.join(self.tmp, name), self.resolver, extra)

    def stop(self):
        self.zone.__exit__(None, None, None)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def check(self, msg, ip="198.51.100.7", mail_from="alice@example.org",
              helo="client.example.net", conf=None, clock=None):
        """clock: seconds added to Postern's wall clock (POSTERN_CLOCK_FILE)."""
        self.n += 1
        path = os.path.join(self.tmp, "msg%d.eml" % self.n)
        with open(path, "wb") as f:
            f.write(msg)
        args = ["-c", conf or self.conf, "--ip", ip, "--helo", helo,
                "--from", mail_from, "--rcpt", "bob@example.net", path]
        env = dict(os.environ)
        if clock is not None:
            env["POSTERN_CLOCK_FILE"] = os.path.join(self.tmp, "clock")
            with open(env["POSTERN_CLOCK_FILE"], "w") as f:
                f.write("%d\n" % clock)
        r = subprocess.run([POSTERN, "check"] + args, capture_output=True,
                           text=True, timeout=60, env=env)
        assert r.returncode == 0, "postern check failed: %s" % r.stderr
        return _normalize_check(json.loads(r.stdout))
