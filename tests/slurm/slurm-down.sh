#!/usr/bin/env bash
# Stop the cluster of slurm-up.sh (same SLURM_CI_STATE): each daemon it started, by its PID file,
# never by name; a PID whose process is not that daemon (a stale file) is left alone. Waits
# until they are gone, so a next slurm-up.sh can bind the ports again.
set -uo pipefail
STATE=$(realpath -m "${SLURM_CI_STATE:-$(pwd)/.slurm-ci/state}")
pids=()
for name in slurmd slurmctld munged; do
  f="$STATE/run/$name.pid"
  if [ -s "$f" ]; then
    pid=$(cat "$f")
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] && kill "$pid" && pids+=("$pid")
    rm -f "$f"
  fi
done
for pid in "${pids[@]}"; do   # a daemon that exits but is never reaped stays a zombie: done too
  for _ in $(seq 50); do
    state=$(ps -o stat= -p "$pid" 2>/dev/null) || break
    [[ $state == Z* ]] && break
    sleep 0.1
  done
done
# the configuration slurm-up.sh wrote (marked so), never a site's own: left in place, it makes
# every slurm client, and so snakemake's slurm plugin at start-up, wait ~9 s for a controller
for conf in /etc/slurm/slurm.conf /etc/slurm/gres.conf; do
  [ "$(head -n1 "$conf" 2>/dev/null)" = "# written by tests/slurm/slurm-up.sh" ] && rm -f "$conf"
done
exit 0
