#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""
Holds the manual pages against the binaries' help texts, for tests/integration/test_docs.sh.

  docs_check.py sockway HELP_DIR PAGE RENDERED     compare sockway.8 with the help texts
  docs_check.py sockwayd HELP PAGE RENDERED        compare sockwayd.8 with sockwayd --help
  docs_check.py objects HELP_DIR                   the objects "sockway --help" names
  docs_check.py globals HELP_DIR                   the global options it names
  docs_check.py page-objects PAGE                  the objects of the page's commands
  docs_check.py commands HELP_DIR                  one line per command of the help texts:
                                                   OBJECT VERB NARGS SUBVERBS OPTIONS (tabs)
  docs_check.py escapes PAGE                       options written with a bare '-'

HELP_DIR holds _help.txt ("sockway --help") and OBJECT.txt ("sockway OBJECT help") for each
object; RENDERED is the page as groff renders it, without fonts, on one long line per
paragraph line. Each check prints "ok - ..." or "not ok - ..." and a line of detail.

The help side is read from the usage lines (the first paragraph of each help text: "Usage:
sockway OBJECT VERB ARGS [OPTIONS]" and the lines continuing it) and the options named in
the rest of the text. The page side is read twice: its tags (the line after .TP or .TQ:
"sockway OBJECT ..." for a command, "-x ..." for an option of the command above it, in
COMMANDS and OPTIONS), from the source; and its rendered text, where each option and verb
of the help must appear in the block of its object, as a reader sees it.
"""
import os
import re
import sys

OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")
WORD = re.compile(r"(?<![\w-])[a-z][a-z0-9_-]*(?![\w-])")
USAGE = re.compile(r"^\s*(?:Usage:\s*)?sockway\s+(.*)$")


class Usage:
    """What help texts or a page say: objects, their verbs and options, the commands."""

    def __init__(self):
        self.objects = set()
        self.verbs = {}  # object -> set of verbs (and sub-verbs: guard deny add)
        self.opts = {}  # object -> set of options
        self.prose = {}  # object -> options named outside the usage lines
        self.described = {}  # object -> options with a tag of their own (a page's)
        self.glob = set()  # global options
        self.commands = []  # (object, verb, nargs, subverbs, options)

    def add_object(self, obj):
        self.objects.add(obj)
        self.verbs.setdefault(obj, set())
        self.opts.setdefault(obj, set())
        self.prose.setdefault(obj, set())
        self.described.setdefault(obj, set())

    def add_line(self, rest):
        """One usage line, without its "sockway ": "backend create NAME ..."."""
        rest = rest.strip()
        if not rest or not WORD.match(rest):
            return  # "[OPTIONS] OBJECT { COMMAND | help }"
        alt = re.match(r"^([a-z]+(?:\s*\|\s*[a-z]+)+)(?:\s|$)", rest)
        if alt:  # "load | unload | status": objects of their own
            for obj in re.split(r"\s*\|\s*", alt.group(1)):
                self.add_object(obj)
                self.commands.append((obj, "", 0, [], []))
            return
        obj, _, rem = rest.partition(" ")
        self.add_object(obj)
        self.parse_rest(obj, rem.strip())

    def parse_rest(self, obj, rem):
        opts = OPTION.findall(rem)
        self.opts[obj].update(opts)
        bare = rem
        while re.search(r"\[[^\[\]]*\]", bare):
            bare = re.sub(r"\[[^\[\]]*\]", " ", bare)
        bare = OPTION.sub(" ", bare)
        words = WORD.findall(bare)
        self.verbs[obj].update(words)
        if rem.startswith("{"):
            return  # "backend { create | delete | list | help }": a summary
        alt = re.match(r"^([a-z]+(?:\s*\|\s*[a-z]+)+)(?:\s|$)", rem)
        if alt:  # "accel on | off": verbs without arguments
            for verb in re.split(r"\s*\|\s*", alt.group(1)):
                self.commands.append((obj, verb, 0, [], []))
            return
        tokens = rem.split()
        verb = tokens.pop(0) if tokens and WORD.fullmatch(tokens[0]) else ""
        # The arguments before the first option, bracket or brace: what the completion
        # needs on the line before it offers the options.
        nargs = 0
        for t in tokens:
            if t[0] in "-[{|" or WORD.fullmatch(t):
                break
            nargs += 1
        sub = [w for w in words if w != verb]
        self.commands.append((obj, verb, nargs, sub, opts))


def help_usage(help_dir):
    """The usage of sockway from its help texts."""
    u = Usage()
    for name in ["_help"] + sorted(f[:-4] for f in os.listdir(help_dir) if f != "_help.txt"):
        text = open(os.path.join(help_dir, name + ".txt"), errors="replace").read()
        paragraphs = text.split("\n\n", 1)
        lines = []
        for line in paragraphs[0].splitlines():
            if USAGE.match(line) or not lines:
                lines.append(line)
            else:
                lines[-1] += " " + line.strip()
        for line in lines:
            m = USAGE.match(line)
            if m:
                u.add_line(m.group(1))
        prose = paragraphs[1] if len(paragraphs) > 1 else ""
        if name == "_help":
            u.glob.update(OPTION.findall(prose))
        elif name in u.prose:
            u.prose[name].update(OPTION.findall(prose))
    return u


def detroff(line):
    """A source line as text: font macros and escapes removed, \\- as -."""
    m = re.match(r"^\.(B|I|SM|SB|BR|RB|BI|IB|IR|RI)\s+(.*)$", line)
    if m:
        args = re.findall(r'"((?:[^"]|"")*)"|(\S+)', m.group(2))
        args = [a.replace('""', '"') if a else b for a, b in args]
        line = (" " if len(m.group(1)) == 1 or m.group(1) in ("SM", "SB") else "").join(args)
    line = re.sub(r"\\f(\[[^\]]*\]|\(..|.)", "", line)
    for esc, text in (("\\-", "-"), ("\\&", ""), ("\\%", ""), ("\\e", "\\"), ("\\(aq", "'"),
                      ("\\(dq", '"'), ("\\ ", " ")):
        line = line.replace(esc, text)
    return line


def page_tags(page):
    """The tags of the page by section: [(section, text)], from the source."""
    lines = open(page).read().splitlines()
    section, tags = "", []
    for i, line in enumerate(lines):
        if line.startswith(".SH"):
            section = detroff(line[3:].strip().strip('"'))
        elif line in (".TP", ".TQ") and i + 1 < len(lines):
            tags.append((section, detroff(lines[i + 1]).strip()))
    return tags


def page_usage(page):
    """The usage of sockway from its page's tags."""
    u = Usage()
    obj = None
    for section, tag in page_tags(page):
        if section == "COMMANDS" and tag.startswith("sockway "):
            u.add_line(tag[len("sockway "):])
            obj = tag.split()[1]
        elif section == "COMMANDS" and tag.startswith("-") and obj:
            u.opts[obj].update(OPTION.findall(tag.split()[0]))
            u.described[obj].update(OPTION.findall(tag.split()[0]))
        elif section == "OPTIONS" and tag.startswith("-"):
            u.glob.update(OPTION.findall(tag))
    return u


def rendered_sections(rendered):
    """Section name -> its lines, from the rendered page."""
    sections, name = {}, ""
    for line in open(rendered, errors="replace").read().splitlines():
        # A renderer may print \- as a minus sign and - as a hyphen: both are '-' here.
        line = line.replace("\u2212", "-").replace("\u2010", "-").replace("\u00ad", "")
        if re.match(r"^[A-Z]", line):
            name = line.strip()
            continue
        sections.setdefault(name, []).append(line)
    return sections


def rendered_blocks(lines):
    """Object -> (its command tag lines, all of its lines) in the rendered COMMANDS."""
    blocks, obj = {}, None
    for line in lines:
        m = re.match(r"^ {7}sockway (\S+)", line)
        if m:
            obj = m.group(1)
            blocks.setdefault(obj, ([], []))[0].append(line)
        elif re.match(r"^ {0,6}\S", line):
            obj = None  # a subsection's heading and its introduction
        if obj:
            blocks[obj][1].append(line)
    return blocks


def has_option(lines, opt):
    pat = re.compile(r"(?<![\w-])" + re.escape(opt) + r"(?![\w-])")
    return any(pat.search(l) for l in lines)


def has_word(lines, word):
    pat = re.compile(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])")
    return any(pat.search(l[len("       sockway "):]) for l in lines)


def report(desc, missing, label="missing"):
    if missing:
        print("not ok - " + desc)
        print("    %s: %s" % (label, " ".join(sorted(missing))))
    else:
        print("ok - " + desc)


def check_sockway(help_dir, page, rendered):
    h = help_usage(help_dir)
    m = page_usage(page)
    top = Usage()
    text = open(os.path.join(help_dir, "_help.txt"), errors="replace").read()
    paras = text.split("\n\n", 1)
    lines = []
    for line in paras[0].splitlines():
        if USAGE.match(line) or not lines:
            lines.append(line)
        else:
            lines[-1] += " " + line.strip()
    for line in lines:
        mm = USAGE.match(line)
        if mm:
            top.add_line(mm.group(1))
    sections = rendered_sections(rendered)
    blocks = rendered_blocks(sections.get("COMMANDS", []))
    name = os.path.basename(page)

    report("every object of sockway --help has commands in %s" % name,
           h.objects - set(blocks))
    report("every object of %s is in sockway --help" % name, m.objects - h.objects,
           "not in the help")
    for obj in sorted(h.objects):
        tags, block = blocks.get(obj, ([], []))
        report("%s: %s shows every verb of its help" % (obj, name),
               {v for v in h.verbs[obj] if not has_word(tags, v)})
        report("%s: %s shows every option of its usage" % (obj, name),
               {o for o in h.opts[obj] if not has_option(block, o)})
        report("%s: %s describes every option of its usage under a tag of its own" % (obj, name),
               h.opts[obj] - m.described.get(obj, set()))
        # The rest of a help text may name another object's options (apply's and export's
        # help is one text): anywhere in COMMANDS will do.
        report("%s: %s shows every option the rest of its help names" % (obj, name),
               {o for o in h.prose[obj] if not has_option(sections.get("COMMANDS", []), o)})
    for obj in sorted(m.objects):
        hv, ho = h.verbs.get(obj, set()), h.opts.get(obj, set()) | h.prose.get(obj, set())
        report("%s: every verb %s documents is in its help" % (obj, name), m.verbs[obj] - hv,
               "not in the help")
        report("%s: every option %s documents is in its help" % (obj, name), m.opts[obj] - ho,
               "not in the help")
    report("the global options of sockway --help are in the OPTIONS of %s" % name,
           {o for o in h.glob if not has_option(sections.get("OPTIONS", []), o)})
    report("the OPTIONS of %s are global options of sockway --help" % name, m.glob - h.glob,
           "not in the help")

    # The SYNOPSIS is the page's "sockway --help": the same objects, verbs and options.
    syn = Usage()
    joined = []
    for line in sections.get("SYNOPSIS", []) + [""]:
        if not line.strip() or line.strip().startswith(("sockway ", "OPTIONS")) or not joined:
            joined.append(line.strip())
        else:
            joined[-1] += " " + line.strip()
    for line in joined:
        if line.startswith("sockway "):
            syn.add_line(line[len("sockway "):])
        syn.glob.update(OPTION.findall(line) if line.startswith("OPTIONS") else [])

    def pairs(u, what):
        return {(o, w) for o in u.objects for w in getattr(u, what)[o]}

    report("SYNOPSIS: the objects of sockway --help", top.objects - syn.objects)
    report("SYNOPSIS: only the objects of sockway --help", syn.objects - top.objects,
           "not in the help")
    for what in ("verbs", "opts"):
        report("SYNOPSIS: the %s of sockway --help" % what,
               {"%s:%s" % p for p in pairs(top, what) - pairs(syn, what)})
        report("SYNOPSIS: only the %s of sockway --help" % what,
               {"%s:%s" % p for p in pairs(syn, what) - pairs(top, what)}, "not in the help")
    report("SYNOPSIS: the global options of sockway --help", h.glob - syn.glob)
    report("SYNOPSIS: only the global options of sockway --help", syn.glob - h.glob,
           "not in the help")


def sockwayd_help(path):
    """sockwayd --help's options: "--name ARG", "-v", "--verbose"..."""
    out = set()
    for line in open(path).read().splitlines():
        m = re.match(r"^  (?:(-\w), )?(--[\w-]+)(?: ([A-Z][A-Z:_]*))?(?:\s|$)", line)
        if m:
            if m.group(1):
                out.add(m.group(1))
            out.add(m.group(2) + (" " + m.group(3) if m.group(3) else ""))
    return out


def check_sockwayd(help_path, page, rendered):
    h = sockwayd_help(help_path)
    m = set()
    for section, tag in page_tags(page):
        if section != "OPTIONS" or not tag.startswith("-"):
            continue
        names = [t.strip() for t in tag.split(",")]
        for n in names:
            m.add(" ".join(n.split()[:2]))
    name = os.path.basename(page)
    opts = rendered_sections(rendered).get("OPTIONS", [])
    report("every option of sockwayd --help, with its argument, is an OPTIONS tag of %s" % name,
           h - m)
    report("every OPTIONS tag of %s is in sockwayd --help, with its argument" % name, m - h,
           "not in the help")
    report("every option of sockwayd --help shows in the rendered OPTIONS of %s" % name,
           {o for o in h if not has_option(opts, o.split()[0])})


def check_escapes(page):
    """Options in the source written with a bare '-': stock groff renders '-' as a hyphen
    (U+2010) in UTF-8, which a shell does not take for an option."""
    bad = set()
    for line in open(page).read().splitlines():
        if line.startswith('.\\"'):
            continue
        for m in re.finditer(r"(?:^|(?<=[\s\[|({]))-{1,2}[A-Za-z][\w-]*", line):
            bad.add(m.group(0))
        for m in re.finditer(r"\\-(?:\\-)?[A-Za-z][\w\\-]*", line):
            if re.search(r"(?<!\\)-", m.group(0)):
                bad.add(m.group(0))
    report("%s writes every option with \\- (no bare '-')" % os.path.basename(page), bad,
           "bare")


def main():
    cmd = sys.argv[1]
    if cmd == "sockway":
        check_sockway(*sys.argv[2:5])
    elif cmd == "sockwayd":
        check_sockwayd(*sys.argv[2:5])
    elif cmd == "escapes":
        check_escapes(sys.argv[2])
    elif cmd == "objects":
        print("\n".join(sorted(help_usage(sys.argv[2]).objects)))
    elif cmd == "globals":
        print("\n".join(sorted(help_usage(sys.argv[2]).glob)))
    elif cmd == "page-objects":
        print("\n".join(sorted(page_usage(sys.argv[2]).objects)))
    elif cmd == "commands":
        seen = []
        for obj, verb, nargs, sub, opts in help_usage(sys.argv[2]).commands:
            line = "\t".join([obj, verb or "-", str(nargs), " ".join(sub) or "-",
                              " ".join(opts) or "-"])
            if line not in seen:
                seen.append(line)
                print(line)
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
