#!/usr/bin/env bash
# `make test-slurm`: the tiny config through a real single-node SLURM with
# `snakemake --executor slurm --profile profiles/slurm`, and through `--profile profiles/local`;
# every SLURM job must end COMPLETED with exit code 0, granted the CPUs, memory and time limit
# Snakemake asked for it (check_jobs.py: there is no accounting, so slurmctld's job completion
# log and scontrol, not sacct), and the score tables must equal the local run's (compare.py). Root only: it installs Debian's slurm-wlm and munge when missing and
# starts munged, slurmctld and slurmd itself (no systemd), with every config, spool, log and pid
# file under one temporary folder, and stops them by their pids on any exit (trap).
# Settings measured in ../shared/SLURM_LOCAL.md.
#
#   tests/slurm/run.sh                 the test (KEEP=1 keeps the temporary folder;
#                                      LOCAL_RUN=DIR reuses an earlier local run in DIR)
#   tests/slurm/run.sh --install-only  install slurm-wlm and munge if missing; exit 0 if present
# Limits (seconds): INSTALL_LIMIT (600), LOCAL_LIMIT (900), SLURM_LIMIT (1500); each step runs
# under `timeout -s KILL` (Snakemake ignores SIGTERM while it waits for jobs), so the trap still
# stops the daemons when a step hangs.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$REPO/.venv/bin
CONFIG=${CONFIG:-$REPO/tests/configs/tiny.yaml}
CTLD_PORT=${CTLD_PORT:-16817}  # not SLURM's default ports: a real SLURM on this host keeps its own
SLURMD_PORT=${SLURMD_PORT:-16818}
say() { printf '[test-slurm %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

[ "$(id -u)" = 0 ] || { say "needs root (installs packages, starts munged, slurmctld, slurmd)"; exit 2; }

have_packages() {
  local tool
  for tool in munged munge unmunge slurmctld slurmd sbatch squeue scontrol sinfo; do
    command -v "$tool" >/dev/null || return 1
  done
}

install_packages() {
  have_packages && return 0
  say "installing slurm-wlm and munge (apt-get)"
  timeout -s KILL "${INSTALL_LIMIT:-600}" bash -c \
    'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null' \
    || { say "could not install slurm-wlm and munge"; return 1; }
  have_packages
}

if [ "${1:-}" = --install-only ]; then
  install_packages
  exit
fi
install_packages
[ -x "$BIN/snakemake" ] || { say "no $BIN/snakemake: run make test-slurm (it builds .venv)"; exit 2; }
"$BIN/python" -c 'import snakemake_executor_plugin_slurm' \
  || { say "snakemake-executor-plugin-slurm is not in .venv (requirements.txt)"; exit 2; }

# --- daemons an earlier run left behind (it was killed before its trap ran): by pid, and only
# when that pid is still the daemon started with that run's folder
for pidfile in /tmp/genex-slurm.*/run/snakemake-*.pid /tmp/genex-slurm.*/run/slurmd.pid \
    /tmp/genex-slurm.*/run/slurmctld.pid /tmp/genex-slurm.*/munge/munged.pid; do
  [ -s "$pidfile" ] || continue
  old=${pidfile%/*/*}
  pid=$(cat "$pidfile")
  if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$old/"; then
    say "stopping ${pidfile##*/} $pid left by an earlier run in $old"
    case $pidfile in  # a Snakemake run: its timeout leads a process group of its own
      */snakemake-*) kill -KILL -- "-$pid" 2>/dev/null || true; continue ;;
    esac
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
  fi
done

# --- one temporary folder for everything this cluster writes --------------------------------
WORK=$(mktemp -d /tmp/genex-slurm.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$WORK"/{etc,run,log,spool/slurmctld,spool/slurmd,munge}
chown munge:munge "$WORK/munge"
chmod 755 "$WORK/munge"  # munged wants its socket folder searchable by all, writable by it only
export SLURM_CONF=$WORK/etc/slurm.conf
MUNGE_SOCKET=$WORK/munge/munge.socket

stop_pid() {  # stop_pid NAME PIDFILE: TERM, wait until gone (20 s), then KILL; by pid only
  local name=$1 pidfile=$2 pid i
  [ -s "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || { say "stopped $name (pid $pid)"; return 0; }
    sleep 0.2
  done
  say "$name (pid $pid) still running 20 s after TERM: KILL"
  kill -KILL "$pid" 2>/dev/null || true
}

limited() {  # limited NAME LIMIT LOG COMMAND...: under timeout -s KILL, its pid kept for cleanup
  local name=$1 limit=$2 log=$3 rc=0
  shift 3
  timeout -s KILL "$limit" "$@" >"$log" 2>&1 &
  echo $! >"$WORK/run/snakemake-$name.pid"
  wait $! || rc=$?
  rm -f "$WORK/run/snakemake-$name.pid"
  return "$rc"
}

cleanup() {
  local rc=$? pidfile
  trap - EXIT INT TERM
  for pidfile in "$WORK"/run/snakemake-*.pid; do  # a Snakemake still running (the script was stopped)
    [ -s "$pidfile" ] || continue
    say "stopping Snakemake (process group $(cat "$pidfile"))"
    kill -KILL -- "-$(cat "$pidfile")" 2>/dev/null || true
  done
  if [ -s "$WORK/run/slurmctld.pid" ] && kill -0 "$(cat "$WORK/run/slurmctld.pid")" 2>/dev/null; then
    # This cluster exists for this run only: every job on it is ours. Cancel what is left
    # (a killed Snakemake leaves its jobs running) before slurmd goes.
    local jobs
    jobs=$(squeue -h -o %i 2>/dev/null || true)
    if [ -n "$jobs" ]; then
      say "cancelling SLURM jobs still queued or running: $(echo $jobs)"
      scancel $jobs || true
      for _ in $(seq 30); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 1; done
    fi
  fi
  # A cancelled job's inner Snakemake can outlive its step (proctrack/linuxproc follows parent
  # pids only): stop, by pid, any process still working in this run's Snakemake folders.
  local proc pid cwd
  for proc in /proc/[0-9]*; do
    pid=${proc#/proc/}
    cwd=$(readlink "$proc/cwd" 2>/dev/null) || continue
    if [[ $cwd/ == "$WORK"/slurm/* || $cwd/ == "$WORK"/local/* ]]; then
      say "stopping pid $pid (still working in $cwd)"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  stop_pid slurmd "$WORK/run/slurmd.pid"
  stop_pid slurmctld "$WORK/run/slurmctld.pid"
  stop_pid munged "$WORK/munge/munged.pid"
  if [ "$rc" = 0 ] && [ "${KEEP:-0}" != 1 ]; then
    rm -rf "$WORK"
  else
    say "kept $WORK (logs: $WORK/log, $WORK/*.log)"
  fi
  say "$([ "$rc" = 0 ] && echo OK || echo "FAILED (exit $rc)")"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the local run first: the reference --------------------------------------------------------
LOCAL=$WORK/local
if [ -n "${LOCAL_RUN:-}" ]; then  # an earlier local run's --directory (when iterating on this script)
  LOCAL=$LOCAL_RUN
  say "local run: reusing $LOCAL"
else
  say "local run: snakemake --profile profiles/local --cores 2 (log $WORK/local.log)"
  start=$(date +%s)
  limited local "${LOCAL_LIMIT:-900}" "$WORK/local.log" "$BIN/snakemake" --snakefile "$REPO/Snakefile" \
    --profile "$REPO/profiles/local" --cores 2 --configfile "$CONFIG" --directory "$LOCAL" \
    || { tail -40 "$WORK/local.log"; say "local run failed"; exit 1; }
  say "local run done in $(($(date +%s) - start)) s"
fi

# --- munge and SLURM ---------------------------------------------------------------------------
runuser -u munge -- munged --socket="$MUNGE_SOCKET" --pid-file="$WORK/munge/munged.pid" \
  --log-file="$WORK/munge/munged.log" --seed-file="$WORK/munge/munged.seed"
munge -n -S "$MUNGE_SOCKET" | unmunge -S "$MUNGE_SOCKET" >/dev/null
say "munged up (pid $(cat "$WORK/munge/munged.pid"))"

HOST=$(hostname -s)
# This node as slurmd sees it (NodeName must equal `hostname -s`), a little memory held back.
read -r -a NODE <<<"$(slurmd -C | head -1)"
MEMORY=$(printf '%s\n' "${NODE[@]}" | sed -n 's/^RealMemory=//p')
NODE_LINE=$(printf '%s ' "${NODE[@]}" | sed "s/RealMemory=[0-9]*/RealMemory=$((MEMORY * 95 / 100))/")
cat >"$SLURM_CONF" <<EOF
# Single-node SLURM for make test-slurm: no systemd, no cgroups, no accounting database.
ClusterName=genextest
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$WORK/spool/slurmctld
SlurmdSpoolDir=$WORK/spool/slurmd
SlurmctldPidFile=$WORK/run/slurmctld.pid
SlurmdPidFile=$WORK/run/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# Without accounting, the completion log is where each job's final state stays.
JobCompType=jobcomp/filetxt
JobCompLoc=$WORK/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# Finished jobs stay visible to squeue/scontrol for an hour: the plugin's squeue status check
# needs MinJobAge >= 3 x its first status delay, and check_jobs.py reads them at the end.
MinJobAge=3600
MailProg=/bin/true
MpiDefault=none
SwitchType=switch/none
$NODE_LINE NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
# Inside a job, the jobstep plugin (0.6.1) starts `srun` with every SLURM_* variable but the job's
# ids removed, SLURM_CONF included: srun would then look for /etc/slurm/slurm.conf (a real
# cluster's place, or configless). An srun first on PATH puts this cluster's config back.
mkdir -p "$WORK/bin"
printf '#!/bin/sh\nexport SLURM_CONF=%s\nexec %s "$@"\n' "$SLURM_CONF" "$(command -v srun)" >"$WORK/bin/srun"
chmod 755 "$WORK/bin/srun"
export PATH=$WORK/bin:$PATH
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 60); do
  [ "$(sinfo -h -o %T 2>/dev/null)" = idle ] && break
  sleep 0.5
done
[ "$(sinfo -h -o %T)" = idle ] || { sinfo; tail -20 "$WORK/log/slurmctld.log" "$WORK/log/slurmd.log"; exit 1; }
say "SLURM up: slurmctld pid $(cat "$WORK/run/slurmctld.pid"), slurmd pid $(cat "$WORK/run/slurmd.pid"); node: $NODE_LINE"

# --- the SLURM run -----------------------------------------------------------------------------
# Without accounting, the plugin's default status check (sacct) waits forever: squeue it is.
say "SLURM run: snakemake --profile profiles/slurm (log $WORK/slurm.log)"
start=$(date +%s)
limited slurm "${SLURM_LIMIT:-1500}" "$WORK/slurm.log" "$BIN/snakemake" --snakefile "$REPO/Snakefile" \
  --profile "$REPO/profiles/slurm" --configfile "$CONFIG" --directory "$WORK/slurm" \
  --slurm-no-account --slurm-status-command squeue \
  --slurm-init-seconds-before-status-checks 1 --seconds-between-status-checks 1 --latency-wait 5 \
  || { tail -60 "$WORK/slurm.log"; say "SLURM run failed"; exit 1; }
say "SLURM run done in $(($(date +%s) - start)) s"
grep -E "steps \(100%\) done" "$WORK/slurm.log" | tail -1

# --- checks ------------------------------------------------------------------------------------
"$BIN/python" "$REPO/tests/slurm/check_jobs.py" "$WORK/slurm.log" "$WORK/log/jobcomp.txt"
"$BIN/python" "$REPO/tests/slurm/compare.py" "$LOCAL/results" "$WORK/slurm/results"
