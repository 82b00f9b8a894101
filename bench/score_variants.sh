#!/usr/bin/env bash
# score-variants throughput and peak RSS on the 300-SNV chr20 VCF of python-pysam-tests (human
# GRCh37 chr20 from vt-examples), both strands, for a tiny (1k window) and a small (32k window)
# random-weight model of each family. The 32k runs score the records in 20:1-1,700,000 (5 SNVs; a
# 32k window costs seconds per variant on 2 cores) and all 300 with --full. A 1k run on the first
# 115 records shows whether memory grows with the number of variants.
#   bench/score_variants.sh [--threads N] [--full]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2
full=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --full) full=1; shift ;;
    *) echo "usage: $0 [--threads N] [--full]" >&2; exit 2 ;;
  esac
done
bin=build/apps/longseq
[[ -x $bin ]] || scripts/build --target longseq >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp /usr/share/doc/vt/examples/ref/20.fa.gz /usr/share/doc/vt/examples/ref/20.fa.gz.fai "$work/"
vcf=/usr/share/doc/python-pysam/tests/tabix_data/vcf/20.vcf.gz
q() { "$bin" -q "$@"; }
q init -o "$work/mamba-1k" --family mamba --d-model 128 --n-layer 2 --seed 1
q init -o "$work/hyena-1k" --family hyenadna --d-model 128 --n-layer 2 --max-seq-len 1026 --seed 1
q init -o "$work/mamba-32k" --family mamba --d-model 256 --n-layer 4 --seed 1
q init -o "$work/hyena-32k" --family hyenadna --d-model 256 --n-layer 4 --max-seq-len 32770 --seed 1

run() {  # model window [regions]
  local regions=()
  [[ -n ${3:-} ]] && regions=(--regions "$3")
  local line
  line=$("$bin" --threads "$threads" score-variants -r "$work/20.fa.gz" -m "$work/$1" -i "$vcf" -o /dev/null -O v \
    --window "$2" "${regions[@]}" 2>&1 | grep 'ALT alleles')
  printf '%-10s W=%-6s %-16s %s\n' "$1" "$2" "${3:-all}" "${line#*score-variants: }"
}
echo "threads=$threads  (d_model 128 x 2 layers for 1k, 256 x 4 layers for 32k; strand both)"
run mamba-1k 1024
run hyena-1k 1024
run mamba-1k 1024 20:1-20000000
run hyena-1k 1024 20:1-20000000
run mamba-32k 32768 20:1-1700000
run hyena-32k 32768 20:1-1700000
if [[ $full == 1 ]]; then
  run mamba-32k 32768
  run hyena-32k 32768
fi
