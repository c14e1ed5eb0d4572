#!/usr/bin/env bash
# A throwaway single-node SLURM cluster in one directory, to rehearse a cluster sweep on a laptop (and for the tests).
#
#   sudo scripts/slurm_local.sh start /tmp/slurm     # prints `export SLURM_CONF=/tmp/slurm/slurm.conf`
#   export SLURM_CONF=/tmp/slurm/slurm.conf          # sbatch/squeue/scontrol now talk to this cluster only
#   sudo scripts/slurm_local.sh stop /tmp/slurm      # cancel its jobs, stop its daemons (the directory stays)
#
# Everything lives under DIR: slurm.conf, munge key and socket, state, spool, logs and pid files; the ports are free
# ones picked at start. Nothing in /etc, /run or /var is read or written, so a cluster the machine already has (or a
# second throwaway one) is never touched. Needs root (slurmd starts each job as its user) and Debian's slurmctld,
# slurmd, slurm-client and munge. One node (this machine's CPUs, at least 2, and memory), one partition `cpu`,
# no accounting (sacct is unavailable; emergence's SLURM launcher polls squeue instead, see docs/cluster.md).
set -euo pipefail

usage() { echo "usage: $0 start|stop|status DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
dir=$(realpath -m "$2")
conf=$dir/slurm.conf
export SLURM_CONF=$conf

pid_of() { [ -s "$dir/run/$1.pid" ] && cat "$dir/run/$1.pid" || true; }
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }
any_alive() { for p in "$@"; do alive "$p" && return 0; done; return 1; }

stop_daemons() {  # SIGTERM, up to 10 s, then SIGKILL; only the pids this cluster recorded
  local pids=() pid
  for d in "$@"; do pid=$(pid_of "$d"); alive "$pid" && pids+=("$pid") && kill -TERM "$pid" 2>/dev/null; done
  for _ in $(seq 100); do any_alive "${pids[@]}" || return 0; sleep 0.1; done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}

case $cmd in
start)
  for exe in munged slurmctld slurmd sbatch squeue scontrol sinfo; do
    command -v "$exe" >/dev/null || PATH=$PATH:/usr/sbin command -v "$exe" >/dev/null || {
      echo "[slurm_local] $exe not found: sudo apt-get install slurmctld slurmd slurm-client munge" >&2; exit 3; }
  done
  export PATH=$PATH:/usr/sbin
  [ "$(id -u)" = 0 ] || { echo "[slurm_local] needs root: slurmd starts each job as its user (use sudo)" >&2; exit 3; }
  [ -e "$conf" ] && alive "$(pid_of slurmctld)" && { echo "[slurm_local] already running: export SLURM_CONF=$conf"; exit 0; }
  mkdir -p "$dir"/{munge,state,spool,log,run}
  trap 'echo "[slurm_local] start failed; logs in $dir/log" >&2; stop_daemons slurmd slurmctld; stop_daemons munged' ERR
  chmod 755 "$dir" "$dir/run" "$dir/log"
  chmod 700 "$dir/state" "$dir/spool"
  chmod 711 "$dir/munge"  # the socket must be reachable by every user who submits; the key is 0600
  [ -s "$dir/munge/munge.key" ] || dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 600 "$dir/munge/munge.key"
  munged --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" --pid-file="$dir/run/munged.pid" \
    --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed"
  read -r ctld_port slurmd_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
  host=$(hostname -s)
  cpus=$(nproc)
  cpus=$((cpus < 2 ? 2 : cpus))  # two job slots even on one core, so that parallel and serial sweeps differ
  mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  : >"$dir/plugstack.conf"
  cat >"$conf" <<EOF
# single-node cluster written by scripts/slurm_local.sh; everything under $dir
ClusterName=emergence-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
PlugStackConfig=$dir/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SlurmdParameters=config_overrides
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
KillWait=5
MinJobAge=600
InactiveLimit=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  chmod 644 "$conf"
  slurmctld -f "$conf"
  slurmd -f "$conf" -N "$host"
  for _ in $(seq 300); do  # up to 30 s for the node to register
    state=$(sinfo -h -N -o %T 2>/dev/null || true)
    [ "$state" = idle ] && { echo "export SLURM_CONF=$conf"; exit 0; }
    sleep 0.1
  done
  echo "[slurm_local] the node did not become idle (state: ${state:-none})" >&2
  false  # the ERR trap stops what was started
  ;;
stop)
  [ -e "$conf" ] || { echo "[slurm_local] no cluster in $dir" >&2; exit 1; }
  if alive "$(pid_of slurmctld)"; then  # cancel this cluster's jobs (only its own, through its own SLURM_CONF)
    squeue -h -o %A 2>/dev/null | sort -u | xargs -r scancel --quiet 2>/dev/null || true
    for _ in $(seq 100); do [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break; sleep 0.1; done
  fi
  stop_daemons slurmd slurmctld
  stop_daemons munged
  ;;
status)
  sinfo && squeue
  ;;
*) usage ;;
esac
