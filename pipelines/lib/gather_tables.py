#!/usr/bin/env python3
"""Joins the per-shard classify-audio tables (CSV with a header) in shard order into one table,
after checking that every shard classified every recording of its list (the classify-audio.json
beside each table counts them). Written to a temp file and renamed.

Usage: gather_tables.py SHARDS.tsv OUT.csv SHARD_TABLE.csv...
"""
import json
import os
import sys

from shards import read_plan, write_atomic


def main(argv):
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    plan, out, tables = argv[1], argv[2], argv[3:]
    rows = read_plan(plan)
    if len(rows) != len(tables):
        print(f"gather_tables.py: {plan} lists {len(rows)} shards but {len(tables)} tables were given", file=sys.stderr)
        return 1
    header, body = None, []
    for r, table in zip(rows, tables):
        sidecar = os.path.join(os.path.dirname(table), "classify-audio.json")
        with open(sidecar) as f:
            done = json.load(f)
        if done["files"] != int(r["files"]) or done["failed"]:
            print(f"gather_tables.py: shard {r['shard']} classified {done['files']} of {r['files']} recordings "
                  f"({len(done['failed'])} failed, see {sidecar}); delete {os.path.dirname(table)} and rerun", file=sys.stderr)
            return 1
        with open(table) as f:
            lines = f.read().splitlines(keepends=True)
        if header is None:
            header = lines[0]
        elif lines[0] != header:
            print(f"gather_tables.py: {table} has another header ({lines[0].strip()}); were the shards made with other options?",
                  file=sys.stderr)
            return 1
        body += lines[1:]
    write_atomic(out, header + "".join(body))
    print(f"gather_tables.py: {len(body)} rows from {len(tables)} shards into {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
