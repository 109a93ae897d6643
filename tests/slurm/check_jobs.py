"""Did every SLURM job of a Snakemake run end COMPLETED with exit code 0, granted the CPUs,
memory and time limit that Snakemake resolved for it (the rule's threads and resources, or the
profile's defaults)?   `check_jobs.py SNAKEMAKE_LOG JOBCOMP_FILE`

There is no accounting (no slurmdbd, so no sacct). Two records are read instead, and must agree:
- slurmctld's job completion log (JobCompType=jobcomp/filetxt): one line per finished job with
  its final JobState, ExitCode, TimeLimit and granted TRES, kept whatever the job's age;
- `scontrol -o show job <id>` for each job id, which slurmctld keeps for MinJobAge seconds
  (the test cluster sets 3600) after the job ends.
The job ids, and what each job asked for, come from Snakemake's log: a block per job
("rule NAME:" ... "jobid: N" ... "threads: T" ... "resources: ..., mem_mb=M, ..., runtime=R"),
then "Job N has been submitted with SLURM jobid ID"."""

import re
import subprocess
import sys
from pathlib import Path


def fields(line: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S*)", line))


def asked(log: str) -> dict[str, dict]:
    """Snakemake job id -> rule, threads, mem_mb, runtime, from the job blocks of its log."""
    jobs = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", log):
        head = re.match(r"(?:local)?rule (\w+):\n", block)
        jobid = re.search(r"^    jobid: (\d+)$", block, re.M)
        resources = re.search(r"^    resources: (.*)$", block, re.M)
        if head and jobid and resources:
            values = dict(re.findall(r"(\w+)=([^,]+)", resources.group(1)))
            threads = re.search(r"^    threads: (\d+)$", block, re.M)
            jobs[jobid.group(1)] = dict(
                rule=head.group(1),
                threads=int(threads.group(1)) if threads else 1,
                mem_mb=int(values["mem_mb"]),
                runtime=int(values["runtime"]),
            )
    return jobs


def main(log_path: Path, jobcomp: Path) -> int:
    log = log_path.read_text()
    wanted = asked(log)
    submitted = re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log)
    completion = {}
    if jobcomp.exists():
        for line in jobcomp.read_text().splitlines():
            record = fields(line)
            if "JobId" in record:
                completion[record["JobId"]] = record
    problems = []
    print(
        f"{'jobid':>5}  {'scontrol':<9} {'jobcomp':<9} {'exit':<4} {'cpus':>4} {'mem':>6} {'limit':>5}  "
        f"{'start':<19} {'end':<19}  rule"
    )
    for job, jobid in submitted:
        run = subprocess.run(["scontrol", "-o", "show", "job", jobid], capture_output=True, text=True)
        live = fields(run.stdout) if run.returncode == 0 else {}
        done = completion.get(jobid, {})
        state, final = live.get("JobState", "gone"), done.get("JobState", "missing")
        exit_code = done.get("ExitCode", live.get("ExitCode", "?"))
        tres = dict(item.split("=", 1) for item in done.get("Tres", "").split(",") if "=" in item)
        granted = (tres.get("cpu", "?"), tres.get("mem", "?"), done.get("TimeLimit", "?"))
        want = wanted.get(job)
        rule = want["rule"] if want else "?"
        print(
            f"{jobid:>5}  {state:<9} {final:<9} {exit_code:<4} {granted[0]:>4} {granted[1]:>6} {granted[2]:>5}  "
            f"{done.get('StartTime', '?'):<19} {done.get('EndTime', '?'):<19}  {rule}"
        )
        if final != "COMPLETED" or exit_code != "0:0" or state not in ("COMPLETED", "gone"):
            problems.append(f"{jobid} ({rule}): {state}/{final}, exit {exit_code}")
        if want is None:
            problems.append(f"{jobid}: no job block for Snakemake job {job} in the log")
        elif granted != (str(want["threads"]), f"{want['mem_mb']}M", str(want["runtime"])):
            problems.append(
                f"{jobid} ({rule}): granted cpus, mem, time limit {granted}; Snakemake "
                f"asked {want['threads']}, {want['mem_mb']}M, {want['runtime']} min"
            )
    extra = sorted(set(completion) - {jobid for _, jobid in submitted}, key=int)
    if extra:
        problems.append(f"jobs in the completion log that Snakemake did not submit: {extra}")
    if not submitted:
        problems.append("Snakemake submitted no SLURM job")
    for problem in problems:
        print("PROBLEM", problem)
    ok = sum(completion.get(jobid, {}).get("JobState") == "COMPLETED" for _, jobid in submitted)
    print(
        f"{ok} of {len(submitted)} SLURM jobs COMPLETED with exit code 0:0; CPUs, memory and time "
        f"limit as Snakemake asked: {'yes' if not problems else 'see PROBLEM lines'}"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
