#!/usr/bin/python3
"""The rate counters' writer round on PostgreSQL: starts a private
PostgreSQL on loopback (tests/integration/harness/pg.py: initdb in a
temporary directory, fsync off as in the tests) and runs
build/bench/pg_rate_bench on a fresh database for 10, 100, 1,000 and
10,000 rows (PG_RATE_SIZES overrides). Run by `make bench`.

    bench/pg_rate.py [BINARY...]

compares builds: each BINARY (a pg_rate_bench linked against another
tree) runs in turn on a database of its own, PG_RATE_RUNS times (default
1), on the one server, so a loaded machine's noise falls on all alike.
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from harness.pg import PgServer            # noqa: E402

SIZES = os.environ.get("PG_RATE_SIZES", "10 100 1000 10000").split()
RUNS = int(os.environ.get("PG_RATE_RUNS", "1"))


def main(binaries):
    binaries = binaries or [os.path.join(ROOT, "build", "bench", "pg_rate_bench")]
    server = PgServer().start()
    try:
        for run in range(RUNS):
            for k, binary in enumerate(binaries):
                url = server.createdb("pg_rate_%d_%d" % (run, k))
                print("%s (run %d):" % (binary, run + 1), flush=True)
                r = subprocess.run([binary, url] + SIZES, timeout=600)
                server.dropdb(url)
                if r.returncode != 0:
                    return r.returncode
        return 0
    finally:
        server.destroy()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
