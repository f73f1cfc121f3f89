"""Stand-in SLURM commands for tests: jobs run locally, state lives in files.

Installed on PATH as sbatch, squeue, sacct, scancel, scontrol, sinfo and srun (thin shell wrappers
calling this module).  Only the invocations snakemake-executor-plugin-slurm makes are
understood.  Every sbatch call is appended as one JSON line to $SLURM_STUB_DIR/sbatch.jsonl
so a test can check what was asked for (e.g. --gpus=1 on GPU jobs).  With
SLURM_STUB_SUBMIT_ONLY=1 set, a submitted job is logged but not run: it ends FAILED at once
(for a test that checks only the submission; the plugin's status polls back off by 10 s after
each poll that finds no job completed, so a job that runs for seconds costs ten times that).
"""

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

STATE = Path(os.environ.get("SLURM_STUB_DIR", f"/tmp/slurm-stub-{os.getuid()}"))


def _jobs():
    (STATE / "jobs").mkdir(parents=True, exist_ok=True)
    return STATE / "jobs"


def _next_id() -> str:
    counter = STATE / "counter"
    STATE.mkdir(parents=True, exist_ok=True)
    fd = os.open(STATE / "counter.lock", os.O_CREAT | os.O_RDWR)

    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        value = int(counter.read_text()) + 1 if counter.exists() else 1000
        counter.write_text(str(value))
    finally:
        os.close(fd)
    return str(value)


def _option(args, long, short=None):
    """Value of --long VALUE, --long=VALUE or -s VALUE; None when absent."""
    for i, a in enumerate(args):
        if a == long or (short and a == short):
            return args[i + 1] if i + 1 < len(args) else None
        if a.startswith(long + "="):
            return a.split("=", 1)[1]
    return None


def sbatch(args):
    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / "sbatch.jsonl", "a") as f:
        f.write(json.dumps(args) + "\n")
    script = _option(args, "--wrap")
    if script is None and args and args[-1] == "/dev/stdin":
        script = sys.stdin.read()
    if script is None:
        print("sbatch stub: no --wrap and no script on stdin", file=sys.stderr)
        return 1
    job = _next_id()
    jobs = _jobs()
    (jobs / f"{job}.name").write_text(_option(args, "--job-name", "-J") or "")
    if os.environ.get("SLURM_STUB_SUBMIT_ONLY") == "1":
        (jobs / f"{job}.state").write_text("FAILED")
        print(job)
        return 0
    (jobs / f"{job}.state").write_text("RUNNING")
    log = (_option(args, "--output", "-o") or "slurm-%j.out").replace("%j", job)
    workdir = _option(args, "-D") or _option(args, "--chdir") or os.getcwd()
    env = dict(os.environ, SLURM_JOB_ID=job, SLURM_JOBID=job)
    gpus = _option(args, "--gpus")
    if gpus:
        env["SLURM_GPUS"] = gpus
    (jobs / f"{job}.script").write_text(script)
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "_run", job, log],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    (jobs / f"{job}.pid").write_text(str(proc.pid))
    print(job)
    return 0


def _run(job, log):
    """Body of a stub job: run the script, record COMPLETED or FAILED."""
    script = (_jobs() / f"{job}.script").read_text()
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        rc = subprocess.call(["/bin/sh", "-c", script], stdout=out, stderr=subprocess.STDOUT)
    state = _jobs() / f"{job}.state"
    if state.read_text() != "CANCELLED":
        state.write_text("COMPLETED" if rc == 0 else "FAILED")
    return 0


def _status_lines(name):
    lines = []
    for f in sorted(_jobs().glob("*.name")):
        job = f.stem
        if name is None or f.read_text() == name:
            lines.append(f"{job}|{(_jobs() / f'{job}.state').read_text()}")
    return lines


def sacct(args):
    if "-o" in args:
        return 0  # account guess: none
    print("\n".join(_status_lines(_option(args, "--name"))))
    return 0


def squeue(args):
    print("\n".join(_status_lines(_option(args, "--name"))))
    return 0


def scancel(args):
    for job in args:
        if job.startswith("-"):
            continue
        state = _jobs() / f"{job}.state"
        if state.exists():
            state.write_text("CANCELLED")
            try:
                os.killpg(int((_jobs() / f"{job}.pid").read_text()), 15)
            except (OSError, ValueError):
                pass
    return 0


def sinfo(args):
    print("PARTITION\ncpu*\ngpu")
    return 0


def scontrol(args):
    """``scontrol show config``: the plugin reads MinJobAge from it; nothing else is needed.

    Without this stand-in a real ``scontrol`` on the machine (with no controller running)
    would be asked instead, and each call waits for its 10-second timeout."""
    if args[:2] == ["show", "config"]:
        print("MinJobAge               = 300 sec")
        return 0
    print(f"scontrol stand-in: {' '.join(args)} is not supported", file=sys.stderr)
    return 1


def srun(args):
    """Drop srun's options, run the command (as the jobstep executor expects)."""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 1
    if i == len(args):
        return 0
    return subprocess.call(args[i:])


if __name__ == "__main__":
    command, rest = sys.argv[1], sys.argv[2:]
    if command == "_run":
        sys.exit(_run(*rest))
    sys.exit(globals()[command](rest))
