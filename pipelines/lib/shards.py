#!/usr/bin/env python3
"""Shard plans for the longseq workflows: an exact partition of a VCF into regions, and of a list
of recordings into file lists.

A VCF shard is a region `contig:start-end` read with `bcftools view --regions-overlap pos`, so a
record belongs to the one shard whose region holds its POS: a deletion that reaches past a shard's
end is scored once, in the shard where it starts. Regions are cut only between distinct positions
(records sharing a POS stay together) and together they cover every contig from 1 to its end, so
every record of a sorted VCF lands in exactly one shard. The plan records each shard's record count;
the gather step checks the total.

Usage (what the Snakefiles run):
  shards.py vcf VCF RECORDS_PER_SHARD OUT.tsv
  shards.py files LIST FILES_PER_SHARD OUTDIR     (OUTDIR/shards.tsv and OUTDIR/<i>.txt)
Exit status 1 with a one-line message naming the file, the record and the fix on bad input.
"""
import os
import subprocess
import sys
import tempfile
from pathlib import PurePosixPath


class PlanError(Exception):
    pass


def plan_vcf(records, per_shard, source="VCF"):
    """Shards from (contig, pos) pairs in file order: a list of dicts with contig, start, end (None =
    to the contig's end) and records. Raises PlanError on unsorted input."""
    if per_shard < 1:
        raise PlanError(f"records per shard must be >= 1, got {per_shard} (set shard_size in config.yaml)")
    shards, seen, cur = [], set(), None
    last_contig, last_pos, n = None, 0, 0
    for contig, pos in records:
        n += 1
        if contig != last_contig:
            if contig in seen:
                raise PlanError(f"{source}: record {n} ({contig}:{pos}): contig {contig} appears again after other contigs; "
                                f"sort the VCF (bcftools sort -Oz -o sorted.vcf.gz {source}) and index it")
            seen.add(contig)
            if cur:
                shards.append(cur)
            cur = {"contig": contig, "start": 1, "end": None, "records": 0}
            last_contig, last_pos = contig, 0
        elif pos < last_pos:
            raise PlanError(f"{source}: record {n} ({contig}:{pos}) comes after position {last_pos}; "
                            f"sort the VCF (bcftools sort -Oz -o sorted.vcf.gz {source}) and index it")
        if cur["records"] >= per_shard and pos != last_pos:  # a new shard starts at a new position only
            cur["end"] = pos - 1
            shards.append(cur)
            cur = {"contig": contig, "start": pos, "end": None, "records": 0}
        cur["records"] += 1
        last_pos = pos
    if cur:
        shards.append(cur)
    return shards


def region(shard):
    """The bcftools region string of a shard (1-based, inclusive; open end = to the contig's end)."""
    if shard["contig"] is None:
        return None
    end = "" if shard["end"] is None else str(shard["end"])
    return f"{shard['contig']}:{shard['start']}-{end}"


def vcf_records(vcf):
    """(contig, pos) of every record, through bcftools query (any VCF/BCF htslib reads)."""
    proc = subprocess.Popen(["bcftools", "query", "-f", "%CHROM\t%POS\n", vcf], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        contig, pos = line.rstrip("\n").split("\t")
        yield contig, int(pos)
    err = proc.stderr.read()
    if proc.wait() != 0:
        raise PlanError(f"{vcf}: bcftools could not read it ({err.strip().splitlines()[-1] if err.strip() else 'no message'}); "
                        "check that it is a valid VCF/BCF")


def write_atomic(path, text):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_vcf_plan(vcf, per_shard, out):
    shards = plan_vcf(vcf_records(vcf), per_shard, vcf)
    if not shards:  # no records: one shard over the whole file, so the output still gets its header
        shards = [{"contig": None, "start": 0, "end": None, "records": 0}]
    lines = ["shard\tregion\trecords"]
    lines += [f"{i}\t{region(s) or '.'}\t{s['records']}" for i, s in enumerate(shards)]
    write_atomic(out, "\n".join(lines) + "\n")
    return shards


def read_plan(path):
    """Rows of a plan TSV as dicts (shard as int), in shard order."""
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        rows = [dict(zip(header, line.rstrip("\n").split("\t"))) for line in f if line.strip()]
    for r in rows:
        r["shard"] = int(r["shard"])
    return sorted(rows, key=lambda r: r["shard"])


def path_key(path):
    """The order longseq classify-audio lists recordings in (std::filesystem::path: by component)."""
    return PurePosixPath(path).parts


def write_file_lists(listing, per_shard, outdir):
    if per_shard < 1:
        raise PlanError(f"files per shard must be >= 1, got {per_shard} (set files_per_shard in config.yaml)")
    with open(listing) as f:
        files = [line.rstrip("\n") for line in f if line.strip()]
    if not files:
        raise PlanError(f"{listing}: no recordings found; check audio_dir and extensions in config.yaml")
    files.sort(key=path_key)
    chunks = [files[i:i + per_shard] for i in range(0, len(files), per_shard)]
    for i, chunk in enumerate(chunks):
        write_atomic(os.path.join(outdir, f"{i}.txt"), "\n".join(chunk) + "\n")
    write_atomic(os.path.join(outdir, "shards.tsv"),
                 "shard\tfiles\n" + "".join(f"{i}\t{len(c)}\n" for i, c in enumerate(chunks)))
    return chunks


def main(argv):
    if len(argv) != 5 or argv[1] not in ("vcf", "files"):
        print(__doc__.split("Usage")[1], file=sys.stderr)
        return 2
    try:
        if argv[1] == "vcf":
            shards = write_vcf_plan(argv[2], int(argv[3]), argv[4])
            print(f"{argv[2]}: {sum(s['records'] for s in shards)} records in {len(shards)} shards", file=sys.stderr)
        else:
            chunks = write_file_lists(argv[2], int(argv[3]), argv[4])
            print(f"{argv[2]}: {sum(map(len, chunks))} recordings in {len(chunks)} shards", file=sys.stderr)
    except (PlanError, OSError, ValueError) as e:
        print(f"shards.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
