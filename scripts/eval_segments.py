#!/usr/bin/python3
"""Scores the windowed output of `longseq classify-audio` (CSV) against a truth table of labelled
events (CSV start,end,label[,...], e.g. the long mix of scripts/audio_data.py).

Each event is given the top label of the window that overlaps it most (ties: the more confident);
windows lying wholly inside an event are also scored one by one. Prints both accuracies and the
confusions, and exits non-zero on malformed input. Usage:
  scripts/eval_segments.py PREDICTIONS.csv TRUTH.csv
"""
import csv
import sys
from collections import Counter


def read_rows(path, needed):
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        sys.exit(f"{path}: {e.strerror}; give the CSV written by classify-audio and the truth table")
    if not rows or any(k not in rows[0] for k in needed):
        sys.exit(f"{path}: expected a CSV with columns {','.join(needed)}; check the file")
    return rows


def top_windows(rows):
    """One (start, end, label, confidence) per window: the most confident row (--top-k may give several)."""
    best = {}
    for r in rows:
        key = (float(r["start"]), float(r["end"]))
        if key not in best or float(r["confidence"]) > best[key][1]:
            best[key] = (r["label"], float(r["confidence"]))
    return [(s, e, lab, conf) for (s, e), (lab, conf) in sorted(best.items())]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    windows = top_windows(read_rows(sys.argv[1], ("start", "end", "label", "confidence")))
    events = [(float(r["start"]), float(r["end"]), r["label"]) for r in read_rows(sys.argv[2], ("start", "end", "label"))]
    hits, inside, inside_hits, confusions = 0, 0, 0, Counter()
    for s, e, label in events:
        overlap = lambda w: (min(e, w[1]) - max(s, w[0]), w[3])
        w = max(windows, key=overlap)
        if overlap(w)[0] <= 0:
            sys.exit(f"{sys.argv[1]}: no window overlaps the event {s:.3f}-{e:.3f}; classify the whole recording")
        hits += w[2] == label
        if w[2] != label:
            confusions[(label, w[2])] += 1
        for ws, we, wl, _ in windows:
            if ws >= s and we <= e:
                inside += 1
                inside_hits += wl == label
    print(f"events: {hits}/{len(events)} correct ({100.0 * hits / len(events):.1f}%)")
    if inside:
        print(f"windows inside events: {inside_hits}/{inside} correct ({100.0 * inside_hits / inside:.1f}%)")
    for (truth, said), n in confusions.most_common():
        print(f"  {truth} -> {said}: {n}")


if __name__ == "__main__":
    main()
