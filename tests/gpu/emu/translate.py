#!/usr/bin/env python3
"""Turns a .cu file into C++ for the CPU emulation (emu.h): kernel<<<cfg>>>(args) becomes
rc_emu::launch(...), __shared__ declarations become per-block storage, extern __shared__ the
block's dynamic shared memory, and a (void *) cast of a cooperative kernel is dropped so the
emulator keeps its parameter types. Line numbers are kept, and a #line names the .cu file, so
diagnostics point at the original source.
Usage: translate.py IN.cu OUT.cc"""
import re
import sys


def split_top(s):
    """Splits a declarator list at the commas outside brackets and parentheses."""
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch in "([<":
            depth += 1
        elif ch in ")]>":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out


def shared_decl(m):
    decl = m.group(1)
    parts = split_top(decl)
    first = re.match(r"^(.*?[\w>*&\s])\s*\b(\w+)\s*((?:\[[^\]]*\]\s*)*)$", parts[0].strip(), re.S)
    if not first:
        raise SystemExit(f"translate.py: cannot read the __shared__ declaration '{decl}'")
    base = first.group(1).strip()
    decls = [(first.group(2), first.group(3))]
    for p in parts[1:]:
        d = re.match(r"^\s*(\w+)\s*((?:\[[^\]]*\]\s*)*)$", p)
        if not d:
            raise SystemExit(f"translate.py: cannot read the __shared__ declaration '{decl}'")
        decls.append((d.group(1), d.group(2)))
    out = []
    for name, dims in decls:
        dims = re.sub(r"\s+", "", dims)
        out.append(f"static char rc_shtag_{name}; auto &{name} = "
                   f"rc_emu::shared_var<{base}{dims}>(&rc_shtag_{name}, \"{name}\");")
    # keep the line count
    return " ".join(out) + "\n" * decl.count("\n")


def translate(s, path):
    s = re.sub(r"extern\s+__shared__\s+(?:__align__\(\d+\)\s*)?(\w+)\s+(\w+)\s*\[\s*\]\s*;",
               r"\1 *\2 = (\1 *)rc_emu::dyn_smem();", s)
    s = re.sub(r"(?<![\w#])__shared__\s+([^;{}]*);", shared_decl, s)
    s = re.sub(r"(\b[A-Za-z_]\w*(?:<[^;{}<>]*>)?)<<<(.*?)>>>\((.*?)\);",
               lambda m: f"rc_emu::launch(rc_emu::cfg({m.group(2)}), {m.group(1)}, {m.group(3)});",
               s, flags=re.S)
    s = re.sub(r"cudaLaunchCooperativeKernel\(\s*\(\s*(?:const\s+)?void\s*\*\s*\)\s*",
               "cudaLaunchCooperativeKernel(", s)
    return f'#line 1 "{path}"\n' + s


if __name__ == "__main__":
    src = open(sys.argv[1]).read()
    open(sys.argv[2], "w").write(translate(src, sys.argv[1]))
