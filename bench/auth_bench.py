#!/usr/bin/python3
"""SPF + DKIM + DMARC evaluations per second per core, warm cache.

Starts a private unbound (loopback) serving an SPF record, a 2048-bit DKIM
key and a DMARC record for example.org, signs a 10 KB message with dkimpy,
and runs build/bench/auth_bench (one thread: the whole policy path a
message takes, CONNECT..DATA) over it. Prints the tool's line, which is
the number to report. Run by `make bench` (through build/bench/auth_bench
without arguments).
"""
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import authmail as am                       # noqa: E402
from dnszone import Zone                    # noqa: E402

IP = "192.0.2.1"
COUNT = int(os.environ.get("AUTH_BENCH_COUNT", "3000"))


def main():
    key = am.rsa_key(2048)
    body = "".join("Line %04d of a ten kilobyte test message, long enough.\r\n" % i
                   for i in range(180))
    msg = am.sign(am.message(frm="Alice <alice@example.org>", body=body), key)
    recs = [("example.org", "TXT", "v=spf1 ip4:%s -all" % IP),
            ("sel._domainkey.example.org", "TXT", am.dkim_txt(key)),
            ("_dmarc.example.org", "TXT", "v=DMARC1; p=reject")]
    tmp = tempfile.mkdtemp(prefix="postern-bench-")
    try:
        with Zone(recs, zones=(), timeout_zones=()) as dns:
            conf = am.write_conf(os.path.join(tmp, "postern.conf"),
                                 "127.0.0.1:%d" % dns.port)
            path = os.path.join(tmp, "msg.eml")
            with open(path, "wb") as f:
                f.write(msg)
            r = subprocess.run([os.path.join(ROOT, "build", "bench", "auth_bench"),
                                "-c", conf, "-n", str(COUNT), "--ip", IP,
                                "--helo", "mail.example.org", "--from",
                                "alice@example.org", "--rcpt", "bob@example.net", "-v", path],
                               capture_output=True, text=True, timeout=600)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if r.returncode != 0 or "spf=pass" not in r.stdout or "dkim=pass" not in r.stdout or "dmarc=pass" not in r.stdout:
        sys.exit("auth_bench failed or did not pass SPF+DKIM+DMARC:\n%s%s" % (r.stdout, r.stderr))
    print(r.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
