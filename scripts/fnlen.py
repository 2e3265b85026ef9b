#!/usr/bin/env python3
"""Lists the longest functions in the product code (lines from `fn` to its closing brace).

Usage: scripts/fnlen.py [N] [paths...]   (default: the 15 longest under src/)
Strings, chars and comments are skipped when counting braces; #[cfg(test)] modules
are left out, since the limit is for product code.
"""
import re, sys, pathlib

FN = re.compile(r'^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)')

def strip(line, state):
    out, i = [], 0
    while i < len(line):
        c = line[i]
        if state['block']:
            if line.startswith('*/', i):
                state['block'] = False; i += 2; continue
            i += 1; continue
        if state['raw'] is not None:
            if line.startswith(state['raw'], i):
                i += len(state['raw']); state['raw'] = None; continue
            i += 1; continue
        if state['str']:
            if c == '\\': i += 2; continue
            if c == '"': state['str'] = False
            i += 1; continue
        if line.startswith('//', i): break
        if line.startswith('/*', i): state['block'] = True; i += 2; continue
        # Raw strings (r"..", r#".."#): quotes inside them neither open nor close.
        m = re.match(r'r(#*)"', line[i:])
        if m and not (i and (line[i-1].isalnum() or line[i-1] == '_')):
            state['raw'] = '"' + m.group(1); i += len(m.group(0)); continue
        if c == '"': state['str'] = True; i += 1; continue
        m = re.match(r"'(\\.|[^\\'])'", line[i:])
        if m: i += len(m.group(0)); continue
        out.append(c); i += 1
    return ''.join(out)

def functions(path):
    lines = path.read_text().splitlines()
    state = {'block': False, 'str': False, 'raw': None}
    clean = [strip(l, state) for l in lines]
    skip_until = -1
    res = []
    for i, l in enumerate(lines):
        if i < skip_until: continue
        if re.match(r'\s*#\[cfg\(test\)\]', l):
            # skip the following item (mod tests { ... })
            depth, j, opened = 0, i + 1, False
            while j < len(clean):
                depth += clean[j].count('{') - clean[j].count('}')
                opened |= '{' in clean[j]
                if opened and depth <= 0: break
                if not opened and clean[j].rstrip().endswith(';'): break
                j += 1
            skip_until = j + 1
            continue
        m = FN.match(l)
        if not m: continue
        depth, j, opened = 0, i, False
        while j < len(clean):
            depth += clean[j].count('{') - clean[j].count('}')
            opened |= '{' in clean[j]
            if opened and depth <= 0: break
            if not opened and clean[j].rstrip().endswith(';'): break
            j += 1
        if opened:
            res.append((j - i + 1, f"{path}:{i+1}", m.group(6)))
    return res

n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 15
roots = [a for a in sys.argv[1:] if not a.isdigit()] or ['src']
allf = []
for r in roots:
    for p in sorted(pathlib.Path(r).rglob('*.rs')):
        allf += functions(p)
allf.sort(reverse=True)
for length, where, name in allf[:n]:
    print(f"{length:5}  {name:32} {where}")
