#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the launcher's `slurm` tests and for trying the slurm backend.
#
#   bash scripts/slurm-local.sh start    # install slurm-wlm + munge when missing (needs root), start munged,
#                                        # slurmctld, slurmd; wait until the node is idle; idempotent
#   bash scripts/slurm-local.sh status   # exit 0 when all three daemons run and the node answers
#   bash scripts/slurm-local.sh stop     # stop the daemons by pid file (idempotent); state stays for debugging
#   bash scripts/slurm-local.sh env      # print `export SLURM_CONF=...` for this cluster
#
# Every daemon's config, state, spool, socket, pid and log files live under $POPTRAIN_SLURM_DIR
# (default /tmp/poptrain-slurm). Clients find the cluster through $SLURM_CONF=<dir>/slurm.conf; the
# tests look there by default. No accounting (no slurmdbd): job state comes from squeue/scontrol, and
# finished jobs stay visible to `scontrol show job` for MinJobAge=3600 s.
# Settings seen to work as root without systemd: proctrack/linuxproc, task/none, select/cons_tres with
# CR_Core, one node named after `hostname` with its real CPU count, a private munge socket and key.
set -euo pipefail

DIR="${POPTRAIN_SLURM_DIR:-/tmp/poptrain-slurm}"
CONF="$DIR/slurm.conf"
MUNGE_DIR="$DIR/munge"
MUNGE_SOCKET="$MUNGE_DIR/munge.socket"
PIDS=("$MUNGE_DIR/munged.pid" "$DIR/slurmctld.pid" "$DIR/slurmd.pid")
CTLD_PORT="${POPTRAIN_SLURMCTLD_PORT:-6817}"
SLURMD_PORT="${POPTRAIN_SLURMD_PORT:-6818}"

say() { echo "slurm-local: $*" >&2; }

alive() {  # alive PIDFILE: the pid in the file names a running process
    [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
        && command -v munged >/dev/null; then
        return
    fi
    if [[ $(id -u) -ne 0 ]]; then
        say "slurm-wlm/munge are not installed and this is not root; run: sudo apt-get install -y slurm-wlm munge"
        exit 1
    fi
    say "installing slurm-wlm and munge from apt"
    # Keep the packages' init scripts from starting system-wide daemons we would not own.
    local made_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
    if [[ $made_policy -eq 1 ]]; then rm -f /usr/sbin/policy-rc.d; fi
}

write_config() {
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log" "$MUNGE_DIR"
    chmod 700 "$MUNGE_DIR"
    local host cpus mem_mb user
    host="$(hostname -s)"
    cpus="$(nproc --all)"
    mem_mb="$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)"
    user="$(id -un)"
    if [[ ! -s "$MUNGE_DIR/munge.key" ]]; then
        head -c 1024 /dev/urandom > "$MUNGE_DIR/munge.key"
        chmod 400 "$MUNGE_DIR/munge.key"
    fi
    local tmp="$CONF.tmp.$$"
    cat > "$tmp" <<EOF
# Written by scripts/slurm-local.sh; one node, no accounting.
ClusterName=poptrain
SlurmctldHost=$host
SlurmUser=$user
SlurmdUser=$user
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=3600
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    mv -f "$tmp" "$CONF"
    printf 'export SLURM_CONF=%q\n' "$CONF" > "$DIR/env.sh.tmp.$$"
    mv -f "$DIR/env.sh.tmp.$$" "$DIR/env.sh"
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local deadline=$((SECONDS + $1)) what="$2"
    shift 2
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            say "timed out waiting for $what; logs under $DIR/log and $MUNGE_DIR"
            return 1
        fi
        sleep 0.5
    done
}

node_idle() {
    SLURM_CONF="$CONF" sinfo -h -N -o '%T' | grep -qE '^(idle|mixed|allocated)'
}

start() {
    install_packages
    local t0=$SECONDS
    write_config
    export SLURM_CONF="$CONF"
    if ! alive "$MUNGE_DIR/munged.pid"; then
        rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
        munged --force --key-file="$MUNGE_DIR/munge.key" --socket="$MUNGE_SOCKET" \
            --pid-file="$MUNGE_DIR/munged.pid" --log-file="$MUNGE_DIR/munged.log" \
            --seed-file="$MUNGE_DIR/munged.seed"
        wait_for 15 munged munge --socket="$MUNGE_SOCKET" -n
    fi
    if ! alive "$DIR/slurmctld.pid"; then
        slurmctld -f "$CONF"
        wait_for 30 slurmctld scontrol ping
    fi
    if ! alive "$DIR/slurmd.pid"; then
        slurmd -f "$CONF"
    fi
    wait_for 60 "node $(hostname -s) to become idle" node_idle
    # A node left DOWN/DRAINED by an earlier unclean stop comes back here.
    SLURM_CONF="$CONF" scontrol update NodeName="$(hostname -s)" State=RESUME >/dev/null 2>&1 || true
    say "up in $((SECONDS - t0)) s: $(SLURM_CONF="$CONF" sinfo -h -N -o '%N %c CPUs %T')"
    echo "export SLURM_CONF=$CONF"
}

stop() {
    local pidfile pid
    # slurmd first (it owns the job steps), then the controller, then munge.
    for pidfile in "$DIR/slurmd.pid" "$DIR/slurmctld.pid" "$MUNGE_DIR/munged.pid"; do
        if alive "$pidfile"; then
            pid="$(cat "$pidfile")"
            kill -TERM "$pid"
            for _ in $(seq 1 40); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.25
            done
            if kill -0 "$pid" 2>/dev/null; then
                say "pid $pid ($pidfile) ignored SIGTERM for 10 s; sending SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
            fi
        fi
        rm -f "$pidfile"
    done
    say "stopped (state kept in $DIR)"
}

status() {
    local pidfile ok=0
    for pidfile in "${PIDS[@]}"; do
        if alive "$pidfile"; then
            echo "$(basename "$pidfile" .pid): running (pid $(cat "$pidfile"))"
        else
            echo "$(basename "$pidfile" .pid): not running"
            ok=1
        fi
    done
    if [[ $ok -eq 0 ]] && SLURM_CONF="$CONF" sinfo -h -N -o '%N %c CPUs %T' 2>/dev/null; then
        echo "export SLURM_CONF=$CONF"
        return 0
    fi
    return 1
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *)
        echo "usage: $0 start|stop|status|env" >&2
        exit 2
        ;;
esac
