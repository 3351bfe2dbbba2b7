"""How far is libspf2 from RFC 7208? Runs the cases of
tests/integration/test_spf.py through libspf2 (on Postern's resolver, via
build/spf_libspf2) and through `postern check`, and prints every case where
either differs from the RFC's answer (make spf-compare). docs/spf.md lists
the result.
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import test_spf  # noqa: E402
from dnszone import POSTERN, Zone  # noqa: E402

LIBSPF2 = os.path.join(HERE, "..", "build", "bench", "spf_libspf2")


def main():
    with Zone(test_spf.R, reverse=test_spf.REVERSE) as z, tempfile.TemporaryDirectory() as d:
        conf = z.write_conf(os.path.join(d, "c.conf"))
        lines = "".join("%s\t%s\t%s\n" % (c[2], c[3], c[4] or "-") for c in test_spf.CASES)
        p = subprocess.run([LIBSPF2, "-c", conf], input=lines, capture_output=True,
                           text=True, timeout=600)
        lib = [ln.split("\t") for ln in p.stdout.splitlines()]
        if p.returncode != 0 or len(lib) != len(test_spf.CASES):
            sys.exit("spf_libspf2 failed: " + p.stderr[-2000:])
        bad_lib = bad_ours = 0
        for case, (lres, lexp, lerr) in zip(test_spf.CASES, lib):
            name, section, ip, helo, frm, want, expl = case
            wants = want if isinstance(want, list) else [want]
            ours = test_spf.check(conf, ip, helo, frm)["spf"]
            ok_ours = ours["result"] in wants and (
                expl is None or ours["result"] != "fail" or
                (ours["explanation"] or "") == expl)
            ok_lib = lres in wants and (expl is None or lres != "fail" or lexp == expl)
            bad_lib += not ok_lib
            bad_ours += not ok_ours
            if not ok_lib or not ok_ours:
                print("%-30s %-6s want %-20s libspf2 %-10s %-34s postern %s" % (
                    name, section, "/".join(wants) + ("" if expl in (None, "") else " '%s'" % expl[:12]),
                    lres, ("'%s' " % lexp[:14] if lexp and lres == "fail" else "") + lerr[:30],
                    ours["result"]))
        print("%d cases: libspf2 differs from RFC 7208 in %d, postern in %d"
              % (len(test_spf.CASES), bad_lib, bad_ours))


if __name__ == "__main__":
    main()
