# Shared by the longseq workflows (included from each Snakefile): which longseq binary runs, and the
# per-rule resources of config.yaml's `resources:` turned into Snakemake resources, so the same rule
# runs under the local executor and SLURM (a GPU request goes through slurm_extra, which
# Snakemake 7's --slurm passes to sbatch as is).
import getpass
import os
import shutil
import sys

from snakemake.exceptions import WorkflowError

sys.path.insert(0, os.path.join(workflow.basedir, "..", "lib"))
import shards  # noqa: E402  (pipelines/lib/shards.py)

LIB = os.path.join(workflow.basedir, "..", "lib")

# Snakemake 7's SLURM executor reads $USER (to guess an account); containers and cron jobs often lack it.
os.environ.setdefault("USER", getpass.getuser())


def longseq_binary():
    """config `longseq`, else `longseq` on PATH, else this checkout's build/apps/longseq."""
    candidates = [config.get("longseq"), shutil.which("longseq"),
                  os.path.join(workflow.basedir, "..", "..", "build", "apps", "longseq")]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return os.path.abspath(c)
    raise WorkflowError("config: no longseq binary found (set `longseq: /path/to/longseq` in config.yaml, "
                        "put it on PATH, or build it with scripts/build)")


def required(key):
    value = config.get(key)
    if value in (None, ""):
        raise WorkflowError(f"config: `{key}` is not set; give it in config.yaml or with --config {key}=...")
    return value


def positive_int(key):
    value = required(key)
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1 or str(value).strip() != str(number):
        raise WorkflowError(f"config: {key} must be a positive integer, got {value!r}; fix it in config.yaml or --config {key}=N")
    return number


def existing_file(key):
    path = required(key)
    if not os.path.exists(path):
        raise WorkflowError(f"config: {key} = {path} does not exist; fix the path in config.yaml or --config {key}=...")
    return path


RES = {"threads": 2, "mem_mb": 4000, "runtime": 60, "gpus": 0, "slurm_extra": ""}
RES.update(config.get("resources") or {})
for key in ("threads", "mem_mb", "runtime", "gpus"):
    value = RES[key]
    if isinstance(value, str) and value.strip().isdigit():  # --config gives strings
        value = RES[key] = int(value)
    if not isinstance(value, int) or value < 0 or (key == "threads" and value < 1):
        raise WorkflowError(f"config: resources.{key} must be a non-negative integer (threads >= 1), got {value!r}")

# longseq's device flag and the scheduler's GPU request go together.
DEVICE_ARGS = "--device cuda" if RES["gpus"] > 0 else ""
SLURM_EXTRA = " ".join(x for x in [f"--gres=gpu:{RES['gpus']}" if RES["gpus"] > 0 else "", RES["slurm_extra"]] if x)
LONGSEQ = longseq_binary()
OUT = config.get("outdir") or "results"
