"""The floors of the tree hold (docs/architecture.md): lib/ stands on
nothing, no two modules of different folders include each other (directly
or through others), policy/ does no socket I/O, SQL and SQLite stay in db/,
and production code does not repeat a block of six lines.

These read the source as text, as a reviewer would; each assertion names
the file and line that breaks the rule."""
import collections
import glob
import os
import re

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FOLDERS = ["lib", "cli", "proxy", "policy", "rules", "dns", "db", "web"]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def sources(folders=FOLDERS, exts=(".c", ".h")):
    for d in folders:
        for p in sorted(glob.glob(os.path.join(ROOT, d, "*"))):
            if p.endswith(exts):
                yield os.path.relpath(p, ROOT)


def read(rel):
    with open(os.path.join(ROOT, rel), errors="replace") as f:
        return f.read()


def code_lines(rel):
    """(line number, text) of each line outside comments and strings'
    contents, so a rule is not broken by a sentence that names a call."""
    text = read(rel)
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    out = []
    for n, line in enumerate(text.split("\n"), 1):
        line = re.sub(r"//.*", "", line)
        out.append((n, line))
    return out


def test_every_project_include_names_its_folder():
    bad = []
    for rel in sources():
        for inc in INCLUDE.findall(read(rel)):
            if inc.split("/")[0] not in FOLDERS:
                bad.append("%s: #include \"%s\"" % (rel, inc))
    assert not bad, "includes must name the folder (\"db/db.h\"):\n" + "\n".join(bad)


def test_lib_includes_no_other_folder():
    bad = ["%s: %s" % (rel, inc) for rel in sources(["lib"])
           for inc in INCLUDE.findall(read(rel)) if not inc.startswith("lib/")]
    assert not bad, "lib/ is the ground floor:\n" + "\n".join(bad)


def module_graph():
    """module "folder/name" (name.c + name.h) -> the modules it includes."""
    g = collections.defaultdict(set)
    for rel in sources():
        mod = os.path.splitext(rel)[0]
        for inc in INCLUDE.findall(read(rel)):
            dep = os.path.splitext(inc)[0]
            if dep != mod:
                g[mod].add(dep)
    return g


def test_no_include_cycle_across_folders():
    g = module_graph()
    folder = lambda m: m.split("/")[0]
    # strongly connected components (Tarjan); a component spanning two
    # folders is a cycle between floors
    index, low, stack, on, comps = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            comps.append(comp)

    for v in list(g):
        if v not in index:
            visit(v)
    bad = [sorted(c) for c in comps if len({folder(m) for m in c}) > 1]
    assert not bad, "modules of different folders include each other: %s" % bad


def test_folders_include_only_lower_floors():
    """The folder graph has no cycle: a folder never reaches, through its
    own includes, a folder that includes it."""
    edges = collections.defaultdict(set)
    for mod, deps in module_graph().items():
        for d in deps:
            if d.split("/")[0] != mod.split("/")[0]:
                edges[mod.split("/")[0]].add(d.split("/")[0])
    for start in list(edges):
        seen, todo = set(), list(edges[start])
        while todo:
            f = todo.pop()
            assert f != start, "folder %s reaches itself through %s" % (start, sorted(seen))
            if f not in seen:
                seen.add(f)
                todo.extend(edges.get(f, ()))


SOCKET_CALLS = re.compile(r"\b(socket|connect|accept4?|bind|listen|getaddrinfo|recv|recvfrom|"
                          r"send|sendto|sendmsg|recvmsg|setsockopt)\s*\(")


def test_policy_does_no_socket_io():
    bad = ["%s:%d: %s" % (rel, n, line.strip()) for rel in sources(["policy"], (".c",))
           for n, line in code_lines(rel) if SOCKET_CALLS.search(line)]
    assert not bad, "policy/ must not do socket I/O:\n" + "\n".join(bad)


SQL = re.compile(r'"[^"]*\b(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM|CREATE TABLE)\b')


def test_sql_and_sqlite_stay_in_db():
    bad = []
    for rel in sources([f for f in FOLDERS if f != "db"]):
        for n, line in code_lines(rel):
            if "sqlite3" in line or SQL.search(line):
                bad.append("%s:%d: %s" % (rel, n, line.strip()))
    assert not bad, "SQL outside db/:\n" + "\n".join(bad)


def test_no_repeated_block_of_six_lines():
    """Six consecutive code lines (whitespace folded, comments, blank
    lines and #include lines left out) that stand in two places are one
    function waiting to be written."""
    windows = collections.defaultdict(list)
    for rel in sources(exts=(".c",)):
        lines = [(n, re.sub(r"\s+", " ", t.strip())) for n, t in code_lines(rel)]
        lines = [(n, t) for n, t in lines if t and not t.startswith("#include")]
        for k in range(len(lines) - 5):
            win = tuple(t for _, t in lines[k:k + 6])
            if sum(len(t) for t in win) >= 60:	# six closing braces are no block
                windows[win].append("%s:%d" % (rel, lines[k][0]))
    bad = ["%s\n    %s" % (" ~ ".join(locs), win[0]) for win, locs in windows.items() if len(locs) > 1]
    assert not bad, "repeated blocks:\n" + "\n".join(bad)
