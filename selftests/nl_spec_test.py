#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Check that uapi/linux/lvmm_nl.h agrees with the YNL spec
Documentation/netlink/specs/lvmm.yaml: family name and version, the
multicast group, every constant and enum value, attribute and command
number, and the *_MAX defines.  Runs on the build host (python3, python3-yaml); prints
kselftest (TAP) output with a "# Totals:" line.

usage: nl_spec_test.py [--spec FILE] [--header FILE]
"""
import argparse
import os
import re
import sys

try:
    import yaml
except ImportError:
    print("TAP version 13\n1..0 # SKIP python3-yaml is not installed "
          "(apt-get install python3-yaml)")
    print("# Totals: pass:0 fail:0 xfail:0 xpass:0 skip:1 error:0")
    sys.exit(4)

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def c_name(name):
    return name.upper().replace("-", "_")


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def parse_header(path):
    """The header's #defines and enum constants: {name: value} and a list
    of enum bodies, each a list of constant names in order."""
    text = strip_comments(open(path).read())
    consts = {}
    enums = []
    define = re.compile(r"^[ \t]*#define[ \t]+(\w+)[ \t]+(.+?)[ \t]*$", re.M)
    for m in define.finditer(text):
        val = m.group(2)
        if val.startswith('"'):
            consts[m.group(1)] = val.strip('"')
        elif re.fullmatch(r"\(?\s*-?(0x[0-9a-fA-F]+|\d+)\s*\)?", val):
            consts[m.group(1)] = int(val.strip("() "), 0)
    for m in re.finditer(r"\benum\s*(\w*)\s*\{(.*?)\}", text, re.S):
        names = []
        nxt = 0
        for item in m.group(2).split(","):
            item = item.strip()
            if not item:
                continue
            name, _, expr = item.partition("=")
            name = name.strip()
            if expr.strip():
                nxt = eval(expr, {"__builtins__": {}}, dict(consts))
            consts[name] = nxt
            names.append(name)
            nxt += 1
        enums.append((m.group(1), names))
    return consts, enums


class Tap:
    def __init__(self):
        self.results = []

    def check(self, ok, what, why=""):
        self.results.append((ok, what, why))

    def report(self):
        print("TAP version 13")
        print("1..%d" % len(self.results))
        for i, (ok, what, why) in enumerate(self.results, 1):
            if not ok:
                print("# %s" % why)
            print("%s %d %s" % ("ok" if ok else "not ok", i, what))
        p = sum(1 for r in self.results if r[0])
        f = len(self.results) - p
        print("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:0 error:0"
              % (p, f))
        return 1 if f else 0


def expect(tap, consts, cname, want, what):
    have = consts.get(cname)
    tap.check(have == want, "%s %s = %r" % (what, cname, want),
              "%s: header has %s, spec says %r" %
              (cname, "no such name" if have is None else repr(have), want))


def enum_of(enums, consts, first):
    """The header enum that holds @first."""
    for tag, names in enums:
        if first in names:
            return names
    return []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", default=os.path.join(
        TOP, "Documentation/netlink/specs/lvmm.yaml"))
    ap.add_argument("--header", default=os.path.join(
        TOP, "uapi/linux/lvmm_nl.h"))
    args = ap.parse_args()

    spec = yaml.safe_load(open(args.spec))
    consts, enums = parse_header(args.header)
    tap = Tap()

    expect(tap, consts, c_name(spec["c-family-name"]), spec["name"],
           "family name")
    expect(tap, consts, c_name(spec["c-version-name"]), spec["version"],
           "family version")
    for grp in spec["mcast-groups"]["list"]:
        expect(tap, consts, c_name(grp["c-define-name"]), grp["name"],
               "multicast group")

    for d in spec.get("definitions", []):
        if d["type"] == "const":
            expect(tap, consts, c_name(spec["name"] + "-" + d["name"]),
                   d["value"], "constant")
            continue
        if d["type"] not in ("enum", "flags"):
            continue
        prefix = d.get("name-prefix", d["name"] + "-")
        val = d.get("value-start", 0)
        cnames = []
        for e in d["entries"]:
            if isinstance(e, dict):
                val = e.get("value", val)
                e = e["name"]
            cn = c_name(prefix + e)
            cnames.append(cn)
            expect(tap, consts, cn, val, "enum %s:" % d["name"])
            val += 1
        extra = [n for n in enum_of(enums, consts, cnames[0])
                 if n not in cnames]
        tap.check(not extra, "enum %s: no value missing from the spec"
                  % d["name"], "in the header, not in the spec: %s" %
                  ", ".join(extra))

    for aset in spec["attribute-sets"]:
        prefix = aset.get("name-prefix", aset["name"] + "-")
        val = 1
        cnames = []
        for a in aset["attributes"]:
            val = a.get("value", val)
            cn = c_name(prefix + a["name"])
            cnames.append(cn)
            expect(tap, consts, cn, val, "attribute set %s:" % aset["name"])
            val += 1
        if "attr-max-name" in aset:
            expect(tap, consts, c_name(aset["attr-max-name"]), val - 1,
                   "attribute set %s:" % aset["name"])
        if "attr-cnt-name" in aset:
            expect(tap, consts, c_name(aset["attr-cnt-name"]), val,
                   "attribute set %s:" % aset["name"])
        unspec = c_name(prefix + "unspec")
        expect(tap, consts, unspec, 0, "attribute set %s:" % aset["name"])
        extra = [n for n in enum_of(enums, consts, cnames[0])
                 if n not in cnames and n != unspec and
                 n not in (c_name(aset.get("attr-max-name", "")),
                           c_name(aset.get("attr-cnt-name", "")))]
        tap.check(not extra, "attribute set %s: no attribute missing from "
                  "the spec" % aset["name"],
                  "in the header, not in the spec: %s" % ", ".join(extra))

    ops = spec["operations"]
    prefix = ops.get("name-prefix", spec["name"] + "-cmd-")
    val = 1
    cnames = []
    for op in ops["list"]:
        val = op.get("value", val)
        cn = c_name(prefix + op["name"])
        cnames.append(cn)
        expect(tap, consts, cn, val, "command")
        tap.check(op.get("attribute-set") in
                  [s["name"] for s in spec["attribute-sets"]],
                  "command %s names a known attribute set" % op["name"],
                  "unknown attribute-set %r" % op.get("attribute-set"))
        val += 1
    if "cmd-max-name" in spec:
        expect(tap, consts, c_name(spec["cmd-max-name"]), val - 1, "command")
    if "cmd-cnt-name" in spec:
        expect(tap, consts, c_name(spec["cmd-cnt-name"]), val, "command")
    unspec = c_name(prefix + "unspec")
    expect(tap, consts, unspec, 0, "command")
    extra = [n for n in enum_of(enums, consts, cnames[0])
             if n not in cnames and n != unspec and
             n not in (c_name(spec.get("cmd-max-name", "")),
                       c_name(spec.get("cmd-cnt-name", "")))]
    tap.check(not extra, "no command missing from the spec",
              "in the header, not in the spec: %s" % ", ".join(extra))
    return tap.report()


if __name__ == "__main__":
    sys.exit(main())
