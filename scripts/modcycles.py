#!/usr/bin/env python3
"""Import cycles between the product's modules (one node per source file).

Usage: scripts/modcycles.py [src]
Reads `crate::a::b`, `super::x` and `self::x` paths (outside #[cfg(test)] modules)
and prints each strongly connected group of more than one module.
"""
import re, sys, pathlib

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else 'src')

def module_of(p):
    parts = list(p.relative_to(root).with_suffix('').parts)
    if parts[-1] in ('mod', 'lib', 'main'): parts = parts[:-1]
    return tuple(parts)

mods = {module_of(p): p for p in root.rglob('*.rs')}

def resolve(path):
    """Longest known module prefix of a path."""
    for k in range(len(path), 0, -1):
        if tuple(path[:k]) in mods: return tuple(path[:k])
    return None

def product_text(p):
    out, skip, depth = [], False, 0
    lines = p.read_text().splitlines()
    i = 0
    while i < len(lines):
        l = lines[i]
        if re.match(r'\s*#\[cfg\(test\)\]', l):
            # skip the next item
            j, d, opened = i + 1, 0, False
            while j < len(lines):
                d += lines[j].count('{') - lines[j].count('}')
                opened |= '{' in lines[j]
                if (opened and d <= 0) or (not opened and lines[j].rstrip().endswith(';')): break
                j += 1
            i = j + 1; continue
        if not l.lstrip().startswith('//'): out.append(l)
        i += 1
    return '\n'.join(out)

def expand_use(text):
    """crate::a::{b, c::d} -> crate::a::b, crate::a::c::d (one level of braces)."""
    paths = []
    for m in re.finditer(r'\b(crate|super|self)((?:::\w+)*)(::\{([^{}]*)\})?', text):
        head = [m.group(1)] + [x for x in m.group(2).split('::') if x]
        if m.group(4):
            for item in m.group(4).split(','):
                item = item.strip().split(' as ')[0]
                if item: paths.append(head + [x for x in item.split('::') if x])
        else:
            paths.append(head)
    return paths

edges = {m: set() for m in mods}
for m, p in mods.items():
    is_dir_mod = p.name in ('mod.rs', 'lib.rs', 'main.rs')
    for path in expand_use(product_text(p)):
        if path[0] == 'crate': full = path[1:]
        elif path[0] == 'self': full = list(m if is_dir_mod else m) + path[1:] if is_dir_mod else list(m) + path[1:]
        else:  # super
            base = list(m) if is_dir_mod else list(m[:-1])
            rest = path[1:]
            while rest and rest[0] == 'super': base, rest = base[:-1], rest[1:]
            base = base[:-1] if is_dir_mod else base
            full = base + rest
        t = resolve(full)
        # a module using its own parent's re-exports is not an import of the parent's body
        if t is not None and t != m and not (len(t) < len(m) and m[:len(t)] == t):
            edges[m].add(t)

# Tarjan
index, low, stack, on, out, n = {}, {}, [], set(), [], [0]
def strong(v):
    index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
    for w in edges[v]:
        if w not in index: strong(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: out.append(comp)
sys.setrecursionlimit(10000)
for v in mods:
    if v not in index: strong(v)
name = lambda m: '::'.join(m) or 'crate'
for comp in out:
    names = sorted(name(c) for c in comp)
    print('cycle:', ', '.join(names))
    for a in sorted(comp):
        for b in sorted(edges[a]):
            if b in comp: print(f'    {name(a)} -> {name(b)}')
if not out: print('no import cycles')
