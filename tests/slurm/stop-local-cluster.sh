#!/usr/bin/env bash
# Stop the one-node cluster started by tests/slurm/start-local-cluster.sh: slurmd, slurmctld
# and munged, by their pid files.  Leaves packages, configuration and logs in place
# ($SLURM_LOCAL_DIR, default /var/lib/mllm4wtal-slurm); --purge removes that state directory
# and the configuration files the start script wrote.
set -uo pipefail

STATE=${SLURM_LOCAL_DIR:-/var/lib/mllm4wtal-slurm}
MARKER="# written by mllm4wtal tests/slurm/start-local-cluster.sh"

stop_pidfile() {
    local pidfile=$1 name=$2
    [ -s "$pidfile" ] || return 0
    local pid
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -0 "$pid" 2>/dev/null && { echo "stop-local-cluster: $name ($pid) still running, killing" >&2; kill -9 "$pid"; }
    fi
    rm -f "$pidfile"
}

stop_pidfile "$STATE/slurmd.pid" slurmd
stop_pidfile "$STATE/slurmctld.pid" slurmctld
stop_pidfile /run/munge/munged.pid munged

if [ "${1:-}" = "--purge" ]; then
    for f in /etc/slurm/slurm.conf /etc/slurm/gres.conf; do
        [ -e "$f" ] && grep -qF "$MARKER" "$f" && rm -f "$f"
    done
    rm -rf "$STATE"
fi
echo "stop-local-cluster: stopped"
