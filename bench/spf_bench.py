"""SPF evaluations per second with a warm cache (make bench-spf).

Starts a private unbound on loopback with a realistic policy -- two levels
of include, ip4 ranges, a and mx terms, the client matching near the end --
and runs build/spf_bench single-threaded (per core) and with two threads.
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from dnszone import Zone  # noqa: E402

BENCH = os.path.join(HERE, "..", "build", "bench", "spf_bench")
RECORDS = [
    ("bench.test", "TXT", "v=spf1 include:_spf1.bench.test include:_spf2.bench.test mx a:out.bench.test -all"),
    ("_spf1.bench.test", "TXT", "v=spf1 " + " ".join("ip4:198.51.100.%d" % i for i in range(0, 40)) + " ~all"),
    ("_spf2.bench.test", "TXT", "v=spf1 ip6:2001:db8:1::/48 include:_spf3.bench.test ?all"),
    ("_spf3.bench.test", "TXT", "v=spf1 exists:%{i}.ok.bench.test ip4:203.0.113.0/25 -all"),
    ("bench.test", "MX", "10 mx1.bench.test."),
    ("bench.test", "MX", "20 mx2.bench.test."),
    ("mx1.bench.test", "A", "192.0.2.10"),
    ("mx2.bench.test", "A", "192.0.2.11"),
    ("out.bench.test", "A", "192.0.2.77"),
]


def main():
    with Zone(RECORDS) as z, tempfile.TemporaryDirectory() as d:
        conf = z.write_conf(os.path.join(d, "b.conf"))
        for threads in (1, 2):
            p = subprocess.run([BENCH, "-c", conf, "--ip", "192.0.2.77", "--from",
                                "user@bench.test", "-n", str(20000 // threads), "-t", str(threads)],
                               capture_output=True, text=True, timeout=600)
            if p.returncode != 0:
                sys.exit("spf_bench failed: " + p.stderr + p.stdout)
            r = json.loads(p.stdout)
            print("spf: %(result)s after %(dns_terms)d DNS terms; %(threads)d thread(s): "
                  "%(per_second).0f evaluations/s (%(per_second_per_thread).0f per thread), "
                  "cache hits %(cache_hits)d misses %(cache_misses)d" % r)


if __name__ == "__main__":
    main()
