#!/usr/bin/env bash
# Start a one-node Slurm cluster on this machine, for testing workflow/profiles/slurm against
# a real controller (tests/test_slurm_cluster.py).  Run as root; stop it with
# tests/slurm/stop-local-cluster.sh.
#
# What it sets up:
#   - the Debian packages slurm-wlm (slurmctld, slurmd, client commands) and munge, installed
#     with apt-get when missing;
#   - /etc/slurm/slurm.conf for this host with 2 CPUs and two partitions: "cpu" (default) and
#     "gpu".  The node advertises one generic resource gpu:1 (gres.conf, backed by a plain
#     file standing in for the device), so jobs submitted with --gpus=1 to "gpu" are accepted
#     and scheduled on a machine without a GPU; they run on the CPU.  No slurmdbd: the
#     snakemake executor plugin polls with squeue when given --slurm-status-command squeue
#     (MinJobAge stays at 300 s, above the plugin's threshold), and every finished job is
#     recorded by the controller in the job-completion log $SLURM_LOCAL_DIR/jobcomp.log.
#   - munged, slurmctld and slurmd, then waits until sinfo reports the node idle.
#
# It refuses to overwrite an /etc/slurm/slurm.conf it did not write (a real site's).
# Exit status: 0 when the node is idle, 1 otherwise (with the reason on stderr).
set -euo pipefail

STATE=${SLURM_LOCAL_DIR:-/var/lib/mllm4wtal-slurm}
CONF=/etc/slurm/slurm.conf
MARKER="# written by mllm4wtal tests/slurm/start-local-cluster.sh"
WAIT_SECONDS=${SLURM_LOCAL_WAIT:-90}

die() { echo "start-local-cluster: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and starts daemons)"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null \
   || ! command -v sbatch >/dev/null; then
    echo "start-local-cluster: installing slurm-wlm and munge" >&2
    export DEBIAN_FRONTEND=noninteractive
    # policy-rc.d: keep the packages' service scripts from starting daemons with their own configs.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge; } >&2 \
        || die "apt-get could not install slurm-wlm and munge"
    rm -f /usr/sbin/policy-rc.d
    trap - EXIT
fi

if [ -e "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
    die "$CONF exists and was not written by this script; not touching a real configuration"
fi

host=$(hostname -s)
cpus=2
# Memory the node advertises: what the machine has, less 1 GiB for the daemons (MiB).
mem_mib=$(awk '/^MemTotal:/ {print int($2 / 1024) - 1024}' /proc/meminfo)
mkdir -p "$STATE"/{ctld,spool} /etc/slurm /run/munge /var/log/munge /var/lib/munge /etc/munge
# Stands in for /dev/nvidia0 (gres.conf wants a device File for type gpu): a character device
# with /dev/null's numbers; a plain file where mknod is not allowed (slurmd logs an error, works).
[ -e "$STATE/fake-gpu0" ] || mknod "$STATE/fake-gpu0" c 1 3 2>/dev/null || : >"$STATE/fake-gpu0"

cat >"$CONF" <<CONF
$MARKER
# One-node test cluster: partitions "cpu" (default) and "gpu" on host $host.
ClusterName=mllm4wtal-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
# No cgroups (containers often lack them): plain process tracking, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/jobcomp.log
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# Keep finished jobs visible to squeue for 5 minutes (the executor plugin polls with squeue).
MinJobAge=300
SlurmdParameters=config_overrides
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mib Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host MaxTime=INFINITE State=UP
CONF

cat >/etc/slurm/gres.conf <<GRES
$MARKER
NodeName=$host Name=gpu File=$STATE/fake-gpu0
GRES

# munge: a key (created once), then the daemon as its own user.
if [ ! -s /etc/munge/munge.key ]; then
    if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key
    else dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; fi
fi
chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
chmod 0700 /etc/munge /var/log/munge /var/lib/munge
chmod 0755 /run/munge
chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged || die "munged did not start (see /var/log/munge/munged.log)"
    for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
    munge -n | unmunge >/dev/null || die "munge credentials do not round-trip"
fi

running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
if running "$STATE/slurmctld.pid"; then
    scontrol reconfigure || true   # already up: take the configuration just written
else
    rm -f "$STATE/slurmctld.pid"
    slurmctld || die "slurmctld did not start (see $STATE/slurmctld.log)"
fi
if ! running "$STATE/slurmd.pid"; then
    rm -f "$STATE/slurmd.pid"
    slurmd || die "slurmd did not start (see $STATE/slurmd.log)"
fi

for _ in $(seq "$WAIT_SECONDS"); do
    # A daemon that wrote its pid file and is gone will not come back (e.g. a fatal config error).
    for d in slurmctld slurmd; do
        if [ -s "$STATE/$d.pid" ] && ! running "$STATE/$d.pid"; then
            die "$d exited: $(grep -E 'fatal|error' "$STATE/$d.log" 2>/dev/null | tail -n 3)"
        fi
    done
    state=$(sinfo -h -N -n "$host" -o %T 2>/dev/null | head -1 || true)
    case "$state" in
        idle) echo "start-local-cluster: node $host idle (partitions: $(sinfo -h -o %P | tr '\n' ' '))"; exit 0 ;;
        drain*|down*|inval*) scontrol update NodeName="$host" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 1
done
sinfo -N -l >&2 || true
tail -n 20 "$STATE/slurmctld.log" "$STATE/slurmd.log" >&2 2>/dev/null || true
die "node $host not idle after ${WAIT_SECONDS}s (state: ${state:-none})"
