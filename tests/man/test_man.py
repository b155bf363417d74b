#!/usr/bin/python3
"""The manual pages: causeway.conf(5) documents every key of the option
tables (as `causeway --list-options` prints them) in its section's
subsection, with its type, default and range; groff -ww warns about
nothing in either page; man -l renders both; make install installs both.

  CAUSEWAY_BIN=build/causeway [CAUSEWAY_BUILD=build] tests/man/test_man.py
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
MAN = os.path.normpath(os.path.join(HERE, "..", "..", "docs", "man"))
PAGES = ("causeway.8", "causeway.conf.5")

n = failed = 0


def check(cond, name, diag=None):
    global n, failed
    n += 1
    print("%sok %d - %s" % ("" if cond else "not ", n, name))
    if not cond:
        failed += 1
        for line in str(diag or "").splitlines()[-30:]:
            print("#   " + line)
    sys.stdout.flush()
    return cond


def subsections(text):
    """{heading: body} of the .SS subsections of a page."""
    out = {}
    parts = re.split(r'^\.SS "?(.*?)"?$', text, flags=re.M)
    for i in range(1, len(parts) - 1, 2):
        body = re.split(r"^\.SH ", parts[i + 1], flags=re.M)[0]
        out[parts[i]] = body
    return out


def heading_for(section):
    """The subsection heading where a --list-options section is documented."""
    if section.startswith("component/"):
        return "[component DOMAIN] with backend = %s" % section.split("/", 1)[1]
    return {"causeway": "[causeway]", "component": "[component DOMAIN]"}.get(
        section)


def entries(body):
    """{key: entry text} of the .TP entries "key = type" of a subsection."""
    out = {}
    for chunk in re.split(r"^\.TP\n", body, flags=re.M)[1:]:
        m = re.match(r'^\.BR (\S+) " = " \\fI(\w+)\\fR\n', chunk)
        if m:
            out[m.group(1)] = (m.group(2), chunk[m.end():])
    return out


def roff_text(s):
    return s.replace("\\-", "-").replace("\\e", "\\")


def main():
    binary = os.environ.get("CAUSEWAY_BIN", "./causeway")
    p = subprocess.run([binary, "--list-options"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    rows = [l.split("\t") for l in p.stdout.splitlines() if l.count("\t") == 6]
    check(p.returncode == 0 and len(rows) > 20,
          "causeway --list-options lists the option tables (%d keys)"
          % len(rows), p.stdout)
    with open(os.path.join(MAN, "causeway.conf.5")) as f:
        conf5 = f.read()
    subs = subsections(conf5)
    missing, wrong = [], []
    for section, key, typ, default, lo, hi, _help in rows:
        heading = heading_for(section)
        if heading is None:
            heading = next((h for h in subs if h.startswith("[%s " % section)
                            or h == "[%s]" % section), None)
        body = subs.get(heading) if heading else None
        entry = entries(body).get(key) if body is not None else None
        if entry is None:
            missing.append("[%s] %s (subsection %r)" % (section, key, heading))
            continue
        etype, text = entry
        text = roff_text(text)
        why = []
        if etype != typ:
            why.append("type %s, table says %s" % (etype, typ))
        if default == "(required)":
            if "Required." not in text:
                why.append("not marked Required.")
        elif default == "":
            if "Default: empty." not in text:
                why.append("default not 'empty'")
        elif "Default: %s." % default not in text:
            why.append("default not %s" % default)
        if (lo, hi) != ("0", "0") and "Range: %s to %s." % (lo, hi) not in text:
            why.append("range not %s to %s" % (lo, hi))
        if why:
            wrong.append("[%s] %s: %s" % (section, key, "; ".join(why)))
    check(not missing, "causeway.conf(5) has an entry for every key of the "
          "option tables (%d keys)" % len(rows), "\n".join(missing))
    check(not wrong, "each entry gives the table's type, default and range",
          "\n".join(wrong))

    for page in PAGES:
        path = os.path.join(MAN, page)
        g = subprocess.run(["groff", "-ww", "-z", "-man", path],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
        check(g.returncode == 0 and not g.stdout.strip(),
              "groff -ww -man %s: no warnings" % page, g.stdout)
        env = dict(os.environ, MANWIDTH="80")
        env.pop("MAN_KEEP_FORMATTING", None)
        m = subprocess.run(["man", "-l", path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=env)
        title = "CAUSEWAY.CONF(5)" if page.endswith(".5") else "CAUSEWAY(8)"
        check(m.returncode == 0 and title in m.stdout and "NAME" in m.stdout
              and not m.stderr.strip(),
              "man -l %s renders (%d lines)" % (page, m.stdout.count("\n")),
              m.stderr)

    build = os.environ.get("CAUSEWAY_BUILD")
    if build:
        dest = tempfile.mkdtemp(prefix="cw-man-")
        r = subprocess.run(["make", "-C", build, "install-man",
                            "DESTDIR=" + dest], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        found = []
        for root, _dirs, files in os.walk(dest):
            found += [os.path.join(root, f) for f in files]
        want = [f for f in found if re.search(r"/man8/causeway\.8$", f)
                or re.search(r"/man5/causeway\.conf\.5$", f)]
        check(r.returncode == 0 and len(want) == 2,
              "make install puts causeway.8 and causeway.conf.5 under "
              "man8/ and man5/", r.stdout + "\n".join(found))
        shutil.rmtree(dest, ignore_errors=True)
    print("1..%d" % n)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
