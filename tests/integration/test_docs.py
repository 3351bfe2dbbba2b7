"""The documented interface matches the program: every config key that
`postern configtest -v` knows is in etc/postern.conf and in the README's key
table, and nothing documented there is unknown to the program."""
import os
import re
import subprocess

from harness import POSTERN_BIN

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def program_keys():
    r = subprocess.run([POSTERN_BIN, "configtest", "-v", "-c", os.path.join(ROOT, "etc/postern.conf")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return {line.split()[0] for line in r.stdout.splitlines() if line.strip()}


def test_example_config_lists_every_key():
    keys, sec = set(), None
    with open(os.path.join(ROOT, "etc/postern.conf")) as f:
        for line in f:
            m = re.match(r"\[(\w+)\]", line)
            if m:
                sec = m.group(1)
            m = re.match(r"#?(\w+) =", line)
            if m and sec:
                keys.add("%s.%s" % (sec, m.group(1)))
    assert keys == program_keys()


def test_readme_documents_every_key():
    with open(os.path.join(ROOT, "README.md")) as f:
        documented = set(re.findall(r"^\| `(\w+\.\w+)` \|", f.read(), re.M))
    assert documented == program_keys()


def test_readme_opens_with_the_two_commands():
    with open(os.path.join(ROOT, "README.md")) as f:
        head = "".join(f.readlines()[:40])
    assert "make run" in head and "make test" in head
