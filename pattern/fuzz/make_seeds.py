#!/usr/bin/env python3
"""Writes a seed corpus for the `compile_and_match` fuzz target into fuzz/seeds/ from the
shared conformance corpus: every 10th (pattern, event) pair, in the target's input layout
(first byte = where the pattern ends, as a fraction of the rest)."""
import json, os, sys

here = os.path.dirname(os.path.abspath(__file__))
src = os.path.join(here, '..', '..', '..', 'shared', 'conformance', 'patterns-match.jsonl')
out = os.path.join(here, 'seeds')
os.makedirs(out, exist_ok=True)
n = 0
for i, line in enumerate(open(src, encoding='utf-8')):
    if i % 10:
        continue
    d = json.loads(line)
    p = json.dumps(d['pattern']).encode()
    e = json.dumps(d['event']).encode()
    rest = p + e
    split = next((s for s in range(256) if len(rest) * s // 255 == len(p)), 255)
    with open(os.path.join(out, 'c%04d' % i), 'wb') as f:
        f.write(bytes([split]) + rest)
    n += 1
print(f'{n} seeds in {out}', file=sys.stderr)
