#!/usr/bin/env python3
"""The cluster workflows (pipelines/) run for real: the shard planner's exact partition, both
workflows under the local executor on real data against one `longseq` run over the whole input
(same records, same scores, same order), a failing shard, an interrupted run resumed, and the
variant-scoring workflow through a real one-node SLURM cluster that the test starts and stops
(scripts/slurm-local).

Run one class:  python3 pipelines/tests/test_pipelines.py VariantScoringLocal
Environment:    LONGSEQ_BIN (default build/apps/longseq).
"""
import gzip
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "pipelines", "lib"))
import shards  # noqa: E402

LONGSEQ = os.environ.get("LONGSEQ_BIN") or os.path.join(ROOT, "build", "apps", "longseq")
CHR20 = "/usr/share/doc/vt/examples/ref/20.fa.gz"
CHR20_INDELS = "/usr/share/doc/vt/examples/normalize/01_IN.vcf.gz"  # 194 real chr20 records, 105 with multi-base REF
VARIANT_WF = os.path.join(ROOT, "pipelines", "variant-scoring", "Snakefile")
AUDIO_WF = os.path.join(ROOT, "pipelines", "audio-classification", "Snakefile")
PROFILES = os.path.join(ROOT, "pipelines", "profiles")


def run(cmd, **kw):
    return subprocess.run(cmd, text=True, capture_output=True, **kw)


def read(path):
    with open(path) as f:
        return f.read()


def records(vcf):
    """The records of a VCF/BCF as text lines (header left out)."""
    out = run(["bcftools", "view", "--no-version", "-H", vcf])
    if out.returncode != 0:
        raise AssertionError(f"bcftools view {vcf}: {out.stderr}")
    return out.stdout.splitlines()


def write_yaml(path, cfg):
    def value(v):
        if isinstance(v, dict):
            return "\n" + "".join(f"  {k}: {value(x)}\n" for k, x in v.items()).rstrip("\n")
        if isinstance(v, str):
            return '"' + v.replace('"', '\\"') + '"'
        return str(v)
    with open(path, "w") as f:
        f.writelines(f"{k}: {value(v)}\n" for k, v in cfg.items())


class Workdir(unittest.TestCase):
    """A temp folder per test, where snakemake runs (its .snakemake/ stays out of the checkout)."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="longseq-pipeline-")
        self.assertTrue(os.access(LONGSEQ, os.X_OK), f"{LONGSEQ} missing: build it first (scripts/build)")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, *p):
        return os.path.join(self.tmp, *p)

    def snakemake(self, workflow, cfg, profile="local", extra=(), check=True, env=None, **popen):
        cfg = dict(cfg, longseq=LONGSEQ)
        write_yaml(self.path("config.yaml"), cfg)
        cmd = ["snakemake", "-s", workflow, "--configfile", self.path("config.yaml"), "--profile", os.path.join(PROFILES, profile),
               *extra]
        if popen:
            return subprocess.Popen(cmd, cwd=self.tmp, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen)
        r = run(cmd, cwd=self.tmp, env=env)
        if check and r.returncode != 0:
            self.fail(f"snakemake failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}")
        return r

    def single_run_records(self, vcf, score_args):
        """One `longseq score-variants` over the whole VCF: what the workflow must reproduce."""
        ref = self.path("ref", os.path.basename(CHR20))
        if not os.path.exists(ref):
            os.makedirs(os.path.dirname(ref))
            shutil.copy(CHR20, ref)  # its index is built beside this copy, never in /usr/share
        out = self.path("single.vcf.gz")
        r = run([LONGSEQ, "--quiet", "score-variants", "-r", ref, "-m", os.path.join(ROOT, "models", "chr20-mamba"), "-i", vcf,
                 "-o", out, *score_args.split()])
        self.assertEqual(r.returncode, 0, r.stderr)
        return records(out)

    def run_audio_workflow(self, profile, env=None):
        """9 recordings in 5 shards through the audio workflow, against one classify-audio run."""
        audio = self.path("recordings")
        # Real speech (espeak-ng) and tones in a tree whose names sort differently as strings and as paths.
        for sub, n in (("a", 4), ("a-b", 2), ("c/d", 3)):
            os.makedirs(os.path.join(audio, sub), exist_ok=True)
            for i in range(n):
                f = os.path.join(audio, sub, f"r{i}.wav")
                if i % 2 == 0:
                    subprocess.run(["espeak-ng", "-w", f, ["one", "two", "seven", "nine"][i % 4]], check=True)
                else:
                    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", f, "synth", f"0.{i + 3}", "sine", str(300 * i)],
                                   check=True)
        model = os.path.join(ROOT, "models", "digits")
        cfg = {"audio_dir": audio, "model": model, "outdir": "audio", "files_per_shard": 2, "classify_args": "--top-k 2",
               "resources": {"threads": 1, "mem_mb": 1000, "runtime": 10, "gpus": 0, "slurm_extra": ""}}
        self.snakemake(AUDIO_WF, cfg, profile=profile, env=env, extra=["--latency-wait", "5"])
        self.assertEqual(len(shards.read_plan(self.path("audio", "lists", "shards.tsv"))), 5)
        single = self.path("single-audio")
        r = run([LONGSEQ, "--quiet", "classify-audio", "-m", model, audio, "--recursive", "--combine", "--top-k", "2", "-o", single])
        self.assertEqual(r.returncode, 0, r.stderr)
        want = read(os.path.join(single, "results.csv"))
        self.assertEqual(read(self.path("audio", "results.csv")), want)
        self.assertGreater(len(want.splitlines()), 9 * 2)

    def variant_config(self, vcf, shard_size, **more):
        return dict({"vcf": vcf, "reference": CHR20, "model": os.path.join(ROOT, "models", "chr20-mamba"), "outdir": "out",
                     "shard_size": shard_size, "score_args": "--window 256",
                     "resources": {"threads": 1, "mem_mb": 1000, "runtime": 10, "gpus": 0, "slurm_extra": ""}}, **more)


class ShardPlan(Workdir):
    """The planner alone, on a synthetic two-contig VCF built to break naive sharding."""

    VCF = """##fileformat=VCFv4.2
##contig=<ID=chrA,length=1000>
##contig=<ID=chrB,length=1000>
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO
chrA\t10\ta1\tA\tC\t.\t.\t.
chrA\t20\ta2\tACGTACGTAC\tA\t.\t.\t.
chrA\t25\ta3\tG\tT\t.\t.\t.
chrA\t25\ta4\tG\tC\t.\t.\t.
chrA\t25\ta5\tGT\tG\t.\t.\t.
chrA\t40\ta6\tT\tA\t.\t.\t.
chrB\t5\tb1\tC\tG\t.\t.\t.
chrB\t900\tb2\tA\tT\t.\t.\t.
"""

    def write_vcf(self, text, name="in.vcf"):
        plain = self.path(name)
        with open(plain, "w") as f:
            f.write(text)
        gz = plain + ".gz"
        subprocess.run(["bcftools", "view", "--no-version", "-Oz", "-o", gz, plain], check=True)
        subprocess.run(["bcftools", "index", "-t", gz], check=True)
        return gz

    def shard_records(self, vcf, plan, overlap):
        got = []
        for s in plan:
            args = ["--regions-overlap", overlap] if overlap else []
            out = run(["bcftools", "view", "--no-version", "-H", *args, "-r", shards.region(s), vcf])
            self.assertEqual(out.returncode, 0, out.stderr)
            got += [line.split("\t")[2] for line in out.stdout.splitlines()]
        return got

    def test_exact_partition(self):
        vcf = self.write_vcf(self.VCF)
        plan = shards.plan_vcf(shards.vcf_records(vcf), 2, vcf)
        # The deletion a2 (20-29) crosses the first boundary; the three records at 25 stay together.
        self.assertEqual([shards.region(s) for s in plan], ["chrA:1-24", "chrA:25-39", "chrA:40-", "chrB:1-"])
        self.assertEqual([s["records"] for s in plan], [2, 3, 1, 2])
        ids = ["a1", "a2", "a3", "a4", "a5", "a6", "b1", "b2"]
        self.assertEqual(self.shard_records(vcf, plan, "pos"), ids)  # each record once, in file order
        # What the pos rule prevents: by overlap, the deletion at 20 (to 29) also lands in the next shard.
        self.assertEqual(self.shard_records(vcf, plan, "record").count("a2"), 2)
        plan1 = shards.plan_vcf(shards.vcf_records(vcf), 1, vcf)
        self.assertEqual(self.shard_records(vcf, plan1, "pos"), ids)
        self.assertEqual(self.shard_records(vcf, plan1, "record").count("a2"), 2)

    def test_one_shard_per_contig_when_large(self):
        vcf = self.write_vcf(self.VCF)
        self.assertEqual([shards.region(s) for s in shards.plan_vcf(shards.vcf_records(vcf), 1000, vcf)], ["chrA:1-", "chrB:1-"])

    def test_bad_input_says_what_to_do(self):
        with self.assertRaisesRegex(shards.PlanError, r"record 3 \(chrA:5\) comes after position 20; sort the VCF"):
            shards.plan_vcf([("chrA", 10), ("chrA", 20), ("chrA", 5)], 2, "x.vcf")
        with self.assertRaisesRegex(shards.PlanError, r"record 3 \(chrA:30\): contig chrA appears again"):
            shards.plan_vcf([("chrA", 10), ("chrB", 20), ("chrA", 30)], 2, "x.vcf")
        with self.assertRaisesRegex(shards.PlanError, "shard_size"):
            shards.plan_vcf([], 0)
        r = run([sys.executable, os.path.join(ROOT, "pipelines", "lib", "shards.py"), "vcf", self.path("missing.vcf"), "5",
                 self.path("plan.tsv")])
        self.assertEqual(r.returncode, 1)
        self.assertIn("missing.vcf", r.stderr)
        self.assertFalse(os.path.exists(self.path("plan.tsv")))

    def test_empty_vcf_is_one_whole_file_shard(self):
        vcf = self.write_vcf("\n".join(self.VCF.splitlines()[:4]) + "\n", "empty.vcf")
        self.assertEqual(shards.write_vcf_plan(vcf, 10, self.path("plan.tsv"))[0]["records"], 0)
        self.assertEqual(shards.read_plan(self.path("plan.tsv")), [{"shard": 0, "region": ".", "records": "0"}])

    def test_file_lists_follow_longseq_order(self):
        listing = self.path("all.txt")
        with open(listing, "w") as f:
            f.write("d/a-c.wav\nd/a/b.wav\nd/a/a.wav\nd/b.wav\n")
        chunks = shards.write_file_lists(listing, 3, self.path("lists"))
        self.assertEqual(chunks, [["d/a/a.wav", "d/a/b.wav", "d/a-c.wav"], ["d/b.wav"]])  # by path component, as std::filesystem
        self.assertEqual(read(self.path("lists", "1.txt")), "d/b.wav\n")


class VariantScoringLocal(Workdir):
    def test_equals_one_run_and_a_failing_shard_fails_the_run(self):
        cfg = self.variant_config(CHR20_INDELS, 25)
        self.snakemake(VARIANT_WF, cfg)
        plan = shards.read_plan(self.path("out", "shards.tsv"))
        self.assertGreaterEqual(len(plan), 7)
        got = records(self.path("out", "scored.vcf.gz"))
        want = self.single_run_records(CHR20_INDELS, "--window 256")
        self.assertEqual(len(want), 194)
        self.assertEqual(got, want)  # same records, same scores, same order
        self.assertTrue(os.path.exists(self.path("out", "scored.vcf.gz.tbi")))
        self.assertTrue(all("LONGSEQ_DLL=" in line for line in got if "\t<" not in line))

        # One record's REF changed in the middle of the file, scored with --strict: its shard fails,
        # the run fails naming that shard's log, and no final output appears.
        with gzip.open(CHR20_INDELS, "rt") as f:
            lines = f.read().splitlines()
        body = [i for i, line in enumerate(lines) if not line.startswith("#")]
        k = body[100]
        fields = lines[k].split("\t")
        fields[3] = ("C" if fields[3][0] != "C" else "G") + fields[3][1:]
        lines[k] = "\t".join(fields)
        bad = self.path("bad.vcf")
        with open(bad, "w") as f:
            f.write("\n".join(lines) + "\n")
        bad_shard = next(s for s in range(len(plan)) if sum(int(r["records"]) for r in plan[:s + 1]) > 100)
        r = self.snakemake(VARIANT_WF, dict(cfg, vcf=bad, outdir="bad", score_args="--window 256 --strict"), check=False)
        self.assertNotEqual(r.returncode, 0)
        log = f"bad/logs/score/{bad_shard}.log"
        self.assertIn(log, r.stdout + r.stderr)
        self.assertIn("does not match", read(self.path(log)))
        self.assertFalse(os.path.exists(self.path("bad", "scored.vcf.gz")))

    def test_interrupted_run_resumes_with_only_the_unfinished_shards(self):
        cfg = self.variant_config(CHR20_INDELS, 20)
        proc = self.snakemake(VARIANT_WF, cfg, extra=["--cores", "1"], start_new_session=True)
        done_dir = self.path("out", "shards")
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if os.path.isdir(done_dir) and len([f for f in os.listdir(done_dir) if f.endswith(".vcf.gz")]) >= 3:
                break
            time.sleep(0.05)
        self.assertIsNone(proc.poll(), "the run finished before it could be interrupted")
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, or the scheduler stopping the head job
        proc.communicate(timeout=120)
        finished = {f: os.stat(os.path.join(done_dir, f)).st_mtime_ns for f in os.listdir(done_dir) if f.endswith(".vcf.gz")}
        total = len(shards.read_plan(self.path("out", "shards.tsv")))
        self.assertGreaterEqual(len(finished), 3)
        self.assertLess(len(finished), total)
        self.assertFalse(os.path.exists(self.path("out", "scored.vcf.gz")))

        r = self.snakemake(VARIANT_WF, cfg, extra=["--cores", "1"])  # the same command again
        log = r.stdout + r.stderr
        self.assertEqual(log.count("rule score:"), total - len(finished), log[-3000:])
        for f, mtime in finished.items():  # finished shards were not redone
            self.assertEqual(os.stat(os.path.join(done_dir, f)).st_mtime_ns, mtime, f)
        self.assertEqual(records(self.path("out", "scored.vcf.gz")), self.single_run_records(CHR20_INDELS, "--window 256"))
        self.assertEqual([f for f in os.listdir(self.path("out")) if "tmp" in f], [])


class GpuRequest(Workdir):
    """resources.gpus reaches both ends: `--device cuda` on longseq, `--gres=gpu:N` on sbatch."""

    def test_gpus_reach_longseq_and_sbatch(self):
        cfg = self.variant_config(CHR20_INDELS, 100, resources={"threads": 2, "mem_mb": 1000, "runtime": 10, "gpus": 1,
                                                                 "slurm_extra": "--qos=test"})
        self.snakemake(VARIANT_WF, cfg, extra=["--until", "plan", "index_reference"])  # left: the shards and the gather
        dry = self.snakemake(VARIANT_WF, cfg, extra=["-n"])
        self.assertEqual(dry.stdout.count("rule score:"), 2, dry.stdout[-3000:])
        self.assertEqual(dry.stdout.count("score-variants "), 2)  # the shell commands (printshellcmds)
        self.assertEqual(dry.stdout.count("--window 256 --device cuda"), 2)
        self.assertEqual(dry.stdout.count("slurm_extra=--gres=gpu:1 --qos=test"), 2)
        # Through the SLURM profile with stand-ins for the SLURM commands: the sbatch line itself.
        stubs = self.path("stubs")
        os.makedirs(stubs)
        for name, body in (("sbatch", 'echo "$@" >> "$STUB_LOG"; echo "Submitted batch job 42"'), ("sacct", "exit 1"),
                           ("scontrol", "echo JobState=FAILED"), ("sinfo", "printf 'PARTITION\\nlocal*\\n'"),
                           ("scancel", "exit 0")):
            with open(os.path.join(stubs, name), "w") as f:
                f.write(f"#!/bin/sh\n{body}\n")
            os.chmod(os.path.join(stubs, name), 0o755)
        env = dict(os.environ, PATH=stubs + os.pathsep + os.environ["PATH"], STUB_LOG=self.path("sbatch.log"), USER="tester")
        r = self.snakemake(VARIANT_WF, cfg, profile="slurm", check=False, env=env, extra=["--latency-wait", "1"])
        self.assertNotEqual(r.returncode, 0)  # the stand-in says every job failed
        calls = [c for c in read(self.path("sbatch.log")).splitlines() if "snakejob_score" in c]
        self.assertTrue(calls, read(self.path("sbatch.log")))
        for flag in ("--gres=gpu:1 --qos=test", "--cpus-per-task=2", "--mem 1000", "-t 10", "-p local"):
            self.assertIn(flag, calls[0])


class AudioClassificationLocal(Workdir):
    def test_equals_one_run(self):
        self.run_audio_workflow("local")


class VariantScoringSlurm(Workdir):
    """A real SLURM: munged, slurmctld and slurmd started by scripts/slurm-local for this test; both
    workflows run through it."""

    def test_both_workflows_equal_one_run(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to start SLURM daemons")
        cluster = self.path("cluster")
        env = dict(os.environ, USER=os.environ.get("USER") or "root", SLURM_CONF=os.path.join(cluster, "slurm.conf"))
        start = run([os.path.join(ROOT, "scripts", "slurm-local"), "start", cluster], env=env)
        try:
            self.assertEqual(start.returncode, 0, start.stderr + start.stdout)
            cfg = self.variant_config(CHR20_INDELS, 50)
            self.snakemake(VARIANT_WF, cfg, profile="slurm", extra=["--latency-wait", "5"], env=env)
            self.assertEqual(records(self.path("out", "scored.vcf.gz")), self.single_run_records(CHR20_INDELS, "--window 256"))
            jobs = os.listdir(self.path(".snakemake", "slurm_logs", "rule_score"))
            self.assertEqual(len(jobs), len(shards.read_plan(self.path("out", "shards.tsv"))))  # one SLURM job per shard
            self.assertGreaterEqual(len(jobs), 4)
            self.run_audio_workflow("slurm", env=env)  # the audio workflow on the same cluster
            self.assertEqual(len(os.listdir(self.path(".snakemake", "slurm_logs", "rule_classify"))), 5)
        finally:
            pids = read(os.path.join(cluster, "pids")).split() if os.path.exists(os.path.join(cluster, "pids")) else []
            run([os.path.join(ROOT, "scripts", "slurm-local"), "stop", cluster], env=env)
            for pid in pids[1::2]:  # exactly the daemons it started are gone
                self.assertFalse(os.path.exists(f"/proc/{pid}"), f"daemon {pid} still running")


if __name__ == "__main__":
    unittest.main(argv=sys.argv, verbosity=2)
