#!/usr/bin/env bash
# classify-audio on a 1-hour recording: seconds of audio classified per second of wall time and
# peak RSS (which must not grow with the recording: it is read window by window). The recording is
# the 2-minute mix of scripts/audio_data.py repeated 30 times (16-bit WAV, 115 MB).
#   bench/classify_audio.sh MODEL AUDIO_DATA_DIR [THREADS (2)] [HOP_SECONDS (1)]
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -ge 2 && $# -le 4 ]] || { echo "usage: $0 MODEL AUDIO_DATA_DIR [THREADS] [HOP_SECONDS]" >&2; exit 2; }
model=$1 data=$2 threads=${3:-2} hop=${4:-1}
bin=build/apps/longseq
[[ -x $bin ]] || scripts/build --target longseq >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sox "$data/long/mix.wav" "$work/hour.wav" repeat 29
seconds=$(soxi -D "$work/hour.wav")
for run in short hour; do
  in=$work/hour.wav
  [[ $run == short ]] && in=$data/long/mix.wav
  /usr/bin/time -f '%e %M' -o "$work/time" "$bin" -q --threads "$threads" classify-audio -m "$model" "$in" --hop "$hop" \
    -o "$work/$run" --format csv
  read -r wall rss <"$work/time"
  len=$(soxi -D "$in")
  rows=$(($(wc -l <"$work/$run/$(basename "${in%.*}").csv") - 1))
  awk -v r="$run" -v len="$len" -v wall="$wall" -v rss="$rss" -v rows="$rows" -v t="$threads" 'BEGIN {
    printf "%-5s %8.1f s of audio  %7.2f s wall  %8.1f s audio/s  peak RSS %6.1f MiB  %6d windows  threads %d\n",
           r, len, wall, len / wall, rss / 1024, rows, t }'
done
echo "(recording: $seconds s; RSS of the hour run vs the 2-minute run shows the memory does not grow with length)"
