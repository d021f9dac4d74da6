# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""Reads a systemd service unit the way systemd would run it, for a test on a host whose PID 1
is not systemd: the test runs the unit's own command lines instead of copies of them.

  unit_exec.py UNIT ENVFILE KEY     one line per KEY= command (ExecStartPre, ExecStart, ...),
                                    in order: "-" or "." (failure ignored or not), a tab, then
                                    the argv as shell words (for bash: eval "argv=($words)")
  unit_exec.py UNIT ENVFILE env     the command's environment, NAME=VALUE per line
  unit_exec.py UNIT ENVFILE caps    CapabilityBoundingSet= as setpriv --bounding-set wants it
  unit_exec.py UNIT ENVFILE get KEY the value of KEY= (the last one)

ENVFILE stands in for the unit's EnvironmentFile=. What systemd does and this does too:
Environment= then the file (which overrides it), "$$" for a literal "$", "${NAME}" for a
variable's value as it is, a word that is only "$NAME" split at whitespace into words, the
command prefixes "-" "@" ":" "+" "!" removed, quotes as the shell has them. What it does not:
specifiers (%n and others), "\\" continuations, several commands on one line (";").
"""
import re
import shlex
import sys

NAME = r"[A-Za-z_][A-Za-z0-9_]*"


def service_settings(path):
    """(key, value) of every line of [Service], in order."""
    section, out = None, []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            if section == "Service" and "=" in line:
                key, value = line.split("=", 1)
                out.append((key.strip(), value.strip()))
    return out


def environment(settings, envfile):
    """Environment= assignments, then the file's lines (systemd reads them in that order)."""
    env = {}
    for key, value in settings:
        if key == "Environment":
            for word in shlex.split(value):
                name, _, val = word.partition("=")
                env[name] = val
    with open(envfile) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;" or "=" not in line:
                continue
            name, _, val = line.partition("=")
            words = shlex.split(val) if val.strip() else [""]
            env[name.strip()] = " ".join(words)
    return env


def expand(word, env):
    if re.fullmatch(r"\$" + NAME, word):
        return env.get(word[1:], "").split()

    def sub(m):
        return "$" if m.group(0) == "$$" else env.get(m.group(1), "")

    return [re.sub(r"\$\$|\$\{(" + NAME + r")\}", sub, word)]


def commands(settings, env, key):
    for k, value in settings:
        if k != key:
            continue
        flags = ""
        while value and value[0] in "-@:+!":
            flags += value[0]
            value = value[1:]
        argv = []
        for word in shlex.split(value):
            argv += expand(word, env)
        yield ("-" if "-" in flags else "."), argv


def main():
    unit, envfile, what = sys.argv[1:4]
    settings = service_settings(unit)
    env = environment(settings, envfile)
    if what == "env":
        for name, val in env.items():
            print(f"{name}={val}")
    elif what == "caps":
        caps = [v for k, v in settings if k == "CapabilityBoundingSet"][-1].split()
        print("-all" + "".join(",+" + c.lower().removeprefix("cap_") for c in caps))
    elif what == "get":
        print([v for k, v in settings if k == sys.argv[4]][-1])
    else:
        for flag, argv in commands(settings, env, what):
            print(flag + "\t" + " ".join(shlex.quote(a) for a in argv))


if __name__ == "__main__":
    main()
