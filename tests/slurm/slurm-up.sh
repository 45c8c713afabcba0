#!/usr/bin/env bash
# Start a throwaway one-node Slurm cluster (controller + compute on 127.0.0.1, one fake GPU) for
# tests/test_slurm.py and CI; docs/spec/workflow.md §5. Needs root. Stop it with slurm-down.sh
# and the same SLURM_CI_STATE; it stops only the daemons this script started, by their PIDs.
set -euo pipefail
# state dir: absolute (slurm.conf needs absolute paths); spool, logs and PID files live there
STATE=$(realpath -m "${SLURM_CI_STATE:-$(pwd)/.slurm-ci/state}")
if [ ! -x /usr/sbin/slurmctld ]; then   # Debian's slurm-wlm and munge
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi
MARK="# written by tests/slurm/slurm-up.sh"   # first line of the files it writes to /etc/slurm
for f in /etc/slurm/slurm.conf /etc/slurm/gres.conf; do
  if [ -e "$f" ] && [ "$(head -n 1 "$f")" != "$MARK" ]; then
    echo "slurm-up.sh: $f is this machine's own; the test cluster would replace it" >&2
    exit 1
  fi
done
if (exec 3<>/dev/tcp/127.0.0.1/6817) 2>/dev/null; then   # slurmctld's port
  echo "slurm-up.sh: a Slurm controller already listens on 127.0.0.1:6817; stop it first" \
    "(tests/slurm/slurm-down.sh with the SLURM_CI_STATE it was started with)" >&2
  exit 1
fi
mkdir -p "$STATE"/{ctld,d,log,run} /run/munge /etc/slurm
chown munge:munge /run/munge /var/log/munge /var/lib/munge
NODE=$(hostname -s); CPUS=$(nproc)
MEM=$(awk '/MemTotal/ {print int($2 / 1024 / 2)}' /proc/meminfo)   # advertise half of RAM
# /etc/slurm, the compiled-in default: slurm-jobstep strips SLURM_CONF before its inner srun.
# No slurmdbd: the profile polls squeue, which sees finished jobs for MinJobAge seconds.
# OverSubscribe=FORCE:2: two jobs may share a core, so concurrent test runs never queue.
cat > /etc/slurm/slurm.conf <<CONF
${MARK}
ClusterName=ci
SlurmctldHost=${NODE}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=600
ReturnToService=2
GresTypes=gpu
StateSaveLocation=${STATE}/ctld
SlurmdSpoolDir=${STATE}/d
SlurmctldPidFile=${STATE}/run/slurmctld.pid
SlurmdPidFile=${STATE}/run/slurmd.pid
SlurmctldLogFile=${STATE}/log/slurmctld.log
SlurmdLogFile=${STATE}/log/slurmd.log
NodeName=${NODE} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${MEM} Gres=gpu:fake:1 State=UNKNOWN
PartitionName=debug Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:2
CONF
# a schedulable fake GPU: without File= the node goes INVAL
printf '%s\n%s\n' "$MARK" "NodeName=${NODE} Name=gpu Type=fake File=/dev/null" > /etc/slurm/gres.conf
if ! munge -n </dev/null >/dev/null 2>&1; then   # reuse a running munged; else start (and own) one
  runuser -u munge -- /usr/sbin/munged
  cp /run/munge/munged.pid "$STATE/run/munged.pid"
fi
/usr/sbin/slurmctld -c      # -c: ignore saved state from an earlier run
/usr/sbin/slurmd
for _ in $(seq 60); do
  [ "$(timeout 5 sinfo -h -o %T 2>/dev/null)" = idle ] && { sinfo; exit 0; }
  sleep 0.5
done
echo "slurm-up.sh: the node did not become idle; logs under $STATE/log" >&2
tail -n 20 "$STATE"/log/*.log >&2
exit 1
