#!/usr/bin/python3
"""Builds the audio classification datasets of longseq from Debian packages only, reproducibly.

  instruments/{train,test}/<family>/*.wav  2 s notes of 10 General-MIDI families, 16 kHz mono,
      rendered by fluidsynth: train from FluidR3 (fluid-soundfont-gm) + MuseScore General Lite
      (musescore-general-soundfont-small), test from TimGM6mb (timgm6mb-soundfont), never trained on.
  digits/train/<digit>/*.wav   espeak-ng saying 0..9 in English, Spanish, French, Italian and Russian
      with several voice variants, speeds and pitches (1 s, 16 kHz mono).
  digits/test/<digit>/*.wav    the real recorded digits of asterisk-core-sounds-{en,es,fr,it,ru}-g722.
      (--asterisk-only builds just these.)
  long/mix.wav + long/truth.csv  a 2-minute recording of held-out instrument notes at known times
      over low noise, for the windowed mode of `longseq classify-audio`.

Every conversion goes through `sox -D` (no dither) and the clips are cut from the rendered streams
by sample index, so a rerun writes byte-identical files. Usage: scripts/audio_data.py OUT_DIR [--asterisk-only]
"""
import array
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import wave

RATE = 16000
FAMILIES = {  # General-MIDI program ranges (0-based); ensembles, pads and effects are left out
    "piano": range(0, 8), "chromatic_percussion": range(8, 16), "organ": range(16, 24),
    "guitar": range(24, 32), "bass": range(32, 40), "strings": range(40, 47), "brass": range(56, 64),
    "reed": range(64, 72), "pipe": range(72, 80), "synth_lead": range(80, 88),
}
TRANSPOSE = {"bass": -24, "pipe": 12}  # keep notes inside each family's usual range
PITCHES = (48, 55, 60, 67, 72)
VELOCITIES = (70, 110)
NOTE_SECONDS, SLOT_SECONDS = 1.5, 2.0
SOUNDFONTS = {
    "train": {"fluidr3": "/usr/share/sounds/sf2/FluidR3_GM.sf2",
              "musescore": "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"},
    "test": {"timgm6mb": "/usr/share/sounds/sf2/TimGM6mb.sf2"},
}
DIGIT_VOICES = {"en": ["en", "en-us", "en-gb-scotland", "en-029"], "es": ["es", "es-419"], "fr": ["fr", "fr-be"],
                "it": ["it"], "ru": ["ru"]}
VARIANTS = ("", "+m1", "+m3", "+m7", "+f1", "+f2", "+f4", "+klatt")
SPEEDS = (130, 175)
PITCHES_TTS = (35, 60)
ASTERISK = {"en": "en_US_f_Allison", "es": "es_MX_f_Allison", "fr": "fr_CA_f_June", "it": "it_IT_m_Carlo",
            "ru": "ru_RU_f_IvrvoiceRU"}


def run(*cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def midi_file(path, notes):
    """A format-0 MIDI file: notes = [(program, pitch, velocity)], one per 2 s slot, channel 0
    (channel 9 would be drums)."""
    tpq, tempo = 480, 500000  # 120 bpm: 960 ticks per second
    ticks = lambda s: int(round(s * tpq * 1e6 / tempo))
    def vlq(n):
        out = [n & 0x7F]
        n >>= 7
        while n:
            out.append((n & 0x7F) | 0x80)
            n >>= 7
        return bytes(reversed(out))
    ev = bytearray(b"\x00\xff\x51\x03" + tempo.to_bytes(3, "big"))
    now = 0
    for i, (prog, pitch, vel) in enumerate(notes):
        start, stop = ticks(i * SLOT_SECONDS), ticks(i * SLOT_SECONDS + NOTE_SECONDS)
        ev += vlq(start - now) + bytes([0xC0, prog]) + vlq(0) + bytes([0x90, pitch, vel])
        ev += vlq(stop - start) + bytes([0x80, pitch, 0])
        now = stop
    ev += vlq(ticks(len(notes) * SLOT_SECONDS) - now) + b"\xff\x2f\x00"
    with open(path, "wb") as f:
        f.write(b"MThd" + struct.pack(">IHHH", 6, 0, 1, tpq) + b"MTrk" + struct.pack(">I", len(ev)) + ev)


SILENT_RMS = 3e-4  # of full scale


def rms(pcm):
    a = array.array("h", pcm)
    return (sum(v * v for v in a) / max(1, len(a))) ** 0.5 / 32768


def read_mono16(path):
    with wave.open(path, "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2 and w.getframerate() == RATE, path
        return w.readframes(w.getnframes())


def write_mono16(path, frames):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with wave.open(tmp, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(frames)
    os.replace(tmp, path)


def note_list():
    return [(fam, prog, min(127, p + TRANSPOSE.get(fam, 0)), v)
            for fam, progs in FAMILIES.items() for prog in progs for p in PITCHES for v in VELOCITIES]


def render(sf, notes, tmp):
    mid, raw, mono = (os.path.join(tmp, n) for n in ("notes.mid", "raw.wav", "mono.wav"))
    midi_file(mid, [(prog, pitch, vel) for _, prog, pitch, vel in notes])
    run("fluidsynth", "-n", "-i", "-q", "-R", "0", "-C", "0", "-g", "0.6", "-r", str(RATE), "-F", raw, sf, mid)
    run("sox", "-D", raw, "-r", str(RATE), "-c", "1", "-b", "16", mono)
    return read_mono16(mono)


def instruments(out, tmp):
    notes = note_list()
    slot = int(SLOT_SECONDS * RATE) * 2
    for split, fonts in SOUNDFONTS.items():
        for name, sf in fonts.items():
            pcm = render(sf, notes, tmp)
            kept = 0
            for i, (fam, prog, pitch, vel) in enumerate(notes):
                clip = pcm[i * slot:(i + 1) * slot].ljust(slot, b"\0")
                if rms(clip) < SILENT_RMS:  # the soundfont has no sample for this note of this program
                    continue
                write_mono16(os.path.join(out, "instruments", split, fam, f"{name}_p{prog:03d}_n{pitch:03d}_v{vel:03d}.wav"), clip)
                kept += 1
            print(f"instruments/{split}: {kept} clips from {name} ({len(notes) - kept} silent notes left out)", flush=True)


def fit_1s(src, dst, tmp):
    """Trims silence at both ends, then centres the word in exactly 1 s (cut if longer)."""
    t = os.path.join(tmp, "fit.wav")
    run("sox", "-D", src, "-r", str(RATE), "-c", "1", "-b", "16", t, "silence", "1", "0.02", "-45d", "reverse",
        "silence", "1", "0.02", "-45d", "reverse")
    pcm = read_mono16(t)
    nbytes = RATE * 2  # one second of 16-bit samples
    if len(pcm) >= nbytes:
        pcm = pcm[(len(pcm) - nbytes) // 4 * 2:][:nbytes]
    pad = (nbytes - len(pcm)) // 4 * 2
    write_mono16(dst, b"\0" * pad + pcm + b"\0" * (nbytes - len(pcm) - pad))


def digits(out, tmp):
    count = 0
    for lang, voices in DIGIT_VOICES.items():
        for voice in voices:
            for var in VARIANTS:
                for s in SPEEDS:
                    for p in PITCHES_TTS:
                        for d in range(10):
                            src = os.path.join(tmp, "tts.wav")
                            run("espeak-ng", "-v", voice + var, "-s", str(s), "-p", str(p), "-w", src, str(d))
                            tag = f"{voice}{var.replace('+', '_')}_s{s}_p{p}"
                            fit_1s(src, os.path.join(out, "digits", "train", str(d), f"{tag}.wav"), tmp)
                            count += 1
    print(f"digits/train: {count} clips from espeak-ng", flush=True)
    asterisk_digits(out, tmp)


def asterisk_digits(out, tmp):
    count = 0
    for lang, folder in ASTERISK.items():
        for d in range(10):
            src = f"/usr/share/asterisk/sounds/{folder}/digits/{d}.g722"
            wav = os.path.join(tmp, "g722.wav")
            run("ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-f", "g722", "-i", src, "-ac", "1", "-ar", str(RATE),
                "-c:a", "pcm_s16le", "-bitexact", wav)
            fit_1s(wav, os.path.join(out, "digits", "test", str(d), f"asterisk_{lang}.wav"), tmp)
            count += 1
    print(f"digits/test: {count} real recordings from Asterisk", flush=True)


def long_mix(out):
    """Test-soundfont notes at seeded random times over seeded low noise, with their truth table."""
    rng = random.Random(7)
    n = RATE * 120
    mix = [0] * n
    for i in range(n):
        mix[i] = rng.randint(-60, 60)
    rows, t = [], 1.0
    test_dir = os.path.join(out, "instruments", "test")
    fams = sorted(os.listdir(test_dir))
    while t + SLOT_SECONDS < 119.0:
        fam = rng.choice(fams)
        clip = rng.choice(sorted(os.listdir(os.path.join(test_dir, fam))))
        pcm = read_mono16(os.path.join(test_dir, fam, clip))
        s0 = int(t * RATE)
        for j, (v,) in enumerate(struct.iter_unpack("<h", pcm)):
            mix[s0 + j] = max(-32768, min(32767, mix[s0 + j] + v))
        rows.append((t, t + SLOT_SECONDS, fam, clip))
        t += SLOT_SECONDS + rng.choice((0.5, 1.0, 2.0, 3.0))
    write_mono16(os.path.join(out, "long", "mix.wav"), struct.pack(f"<{n}h", *mix))
    tmp = os.path.join(out, "long", "truth.csv.tmp")
    with open(tmp, "w") as f:
        f.write("start,end,label,source\n")
        for a, b, fam, clip in rows:
            f.write(f"{a:.3f},{b:.3f},{fam},{clip}\n")
    os.replace(tmp, os.path.join(out, "long", "truth.csv"))
    print(f"long/mix.wav: {n / RATE:.0f} s, {len(rows)} labelled notes", flush=True)


def main():
    args = sys.argv[1:]
    if len(args) not in (1, 2) or (len(args) == 2 and args[1] != "--asterisk-only"):
        sys.exit("usage: scripts/audio_data.py OUT_DIR [--asterisk-only]")
    out = args[0]
    for tool in ("fluidsynth", "sox", "espeak-ng", "ffmpeg"):
        if not shutil.which(tool):
            sys.exit(f"audio_data: {tool} not found; run scripts/setup first")
    if len(args) == 2:  # just the real recorded digits (a few seconds; the demo's input)
        shutil.rmtree(os.path.join(out, "digits", "test"), ignore_errors=True)
        with tempfile.TemporaryDirectory() as tmp:
            asterisk_digits(out, tmp)
        return
    for part in ("instruments", "digits", "long"):  # a rerun starts clean, so nothing stale survives
        shutil.rmtree(os.path.join(out, part), ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        instruments(out, tmp)
        digits(out, tmp)
    long_mix(out)


if __name__ == "__main__":
    main()
