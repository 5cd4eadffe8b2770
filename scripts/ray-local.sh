#!/usr/bin/env bash
# A one-node Ray cluster on this machine, for the launcher's `ray` tests and for trying the ray backend.
#
#   bash scripts/ray-local.sh start    # start a head bound to 127.0.0.1; wait until its dashboard answers;
#                                      # idempotent (a head whose pid file names a live process is kept)
#   bash scripts/ray-local.sh status   # exit 0 when the head's pid is alive and its dashboard answers
#   bash scripts/ray-local.sh stop     # stop the processes of this head only, by pid (never `ray stop`,
#                                      # which kills every Ray process of the user); idempotent
#   bash scripts/ray-local.sh env      # print `export RAY_ADDRESS=...` for this head
#
# State lives under $POPTRAIN_RAY_DIR (default /tmp/poptrain-ray): the session files (Ray's --temp-dir), the
# pid file (`gcs_server`'s pid: Ray's head process tree hangs off it and the raylet), `address` (HOST:PORT
# for --ray_address) and the start log. The temp dir must stay short: Ray puts AF_UNIX sockets under it and
# Linux caps their paths at 107 bytes.
# RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 keeps `ray start` on --node-ip-address (127.0.0.1): without it Ray
# binds the primary interface, which is not reachable from here.
set -euo pipefail

DIR="${POPTRAIN_RAY_DIR:-/tmp/poptrain-ray}"
PORT="${POPTRAIN_RAY_PORT:-6379}"
DASHBOARD_PORT="${POPTRAIN_RAY_DASHBOARD_PORT:-8265}"
CPUS="${POPTRAIN_RAY_CPUS:-$(nproc --all)}"
# Logical GPUs the head advertises (default 2): Ray accounts and assigns them like real ones and sets each
# task's CUDA_VISIBLE_DEVICES, so the tests check GPU pinning on a machine without one; nothing opens a device.
# Set it to the real count (or leave Ray to detect: POPTRAIN_RAY_GPUS=detect) on a GPU machine.
GPUS="${POPTRAIN_RAY_GPUS:-2}"
PIDS="$DIR/pids"
RAY="${RAY:-ray}"

say() { echo "ray-local: $*" >&2; }

dashboard_up() {
    python3 - "$DASHBOARD_PORT" <<'EOF'
import sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/api/version", timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
EOF
}

pid_alive() {  # pid_alive PID: running and not a zombie (Ray's daemons outlive `ray start`, their parent,
    # and where nothing reaps them they stay zombies, which `kill -0` still finds)
    local state
    state="$( { sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f1; } 2>/dev/null || true)"
    [[ -n "$state" && "$state" != "Z" ]]
}

head_alive() {  # every pid in the pid file is alive
    [[ -s "$PIDS" ]] || return 1
    local pid
    while read -r pid; do
        pid_alive "$pid" || return 1
    done < "$PIDS"
}

# The processes Ray started for our session: those whose command line names our temp dir (raylet, gcs,
# dashboard, log monitor, workers all carry --temp-dir / --session-dir / a socket path under it).
session_pids() {
    local pid cmd
    for pid in $(ls /proc | grep -E '^[0-9]+$'); do
        cmd="$( { tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null || true)"
        if [[ "$cmd" == *"$DIR/s/"* || "$cmd" == *"--temp-dir=$DIR/s"* || "$cmd" == *"$DIR/s "* ]]; then
            echo "$pid"
        fi
    done
}

start() {
    if head_alive && dashboard_up; then
        say "already up: $(cat "$DIR/address")"
        echo "export RAY_ADDRESS=$(cat "$DIR/address")"
        return 0
    fi
    if ! command -v "$RAY" >/dev/null; then
        say "'$RAY' is not on PATH; install the extra: pip install 'poptrain[ray]'"
        exit 1
    fi
    stop >/dev/null 2>&1 || true
    mkdir -p "$DIR/s"
    local t0=$SECONDS
    local gpu_flag=(--num-gpus "$GPUS")
    [[ "$GPUS" == detect ]] && gpu_flag=()
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 "$RAY" start --head --num-cpus "$CPUS" "${gpu_flag[@]}" \
        --node-ip-address 127.0.0.1 --port "$PORT" --temp-dir "$DIR/s" --disable-usage-stats \
        --include-dashboard true --dashboard-host 127.0.0.1 --dashboard-port "$DASHBOARD_PORT" \
        > "$DIR/start.log" 2>&1 || {
        say "ray start failed; see $DIR/start.log"
        tail -20 "$DIR/start.log" >&2
        exit 1
    }
    local deadline=$((SECONDS + 90))
    until dashboard_up; do
        if ((SECONDS >= deadline)); then
            say "timed out waiting for the dashboard on 127.0.0.1:$DASHBOARD_PORT; see $DIR/start.log"
            exit 1
        fi
        sleep 0.5
    done
    session_pids > "$PIDS.tmp.$$"
    mv -f "$PIDS.tmp.$$" "$PIDS"
    echo "127.0.0.1:$PORT" > "$DIR/address.tmp.$$"
    mv -f "$DIR/address.tmp.$$" "$DIR/address"
    say "up in $((SECONDS - t0)) s: 127.0.0.1:$PORT, $CPUS CPUs, $GPUS GPUs, $(wc -l < "$PIDS") processes"
    echo "export RAY_ADDRESS=127.0.0.1:$PORT"
}

stop() {
    local pids pid
    # Every process of our session, found again now (workers started since `start` included), plus the
    # recorded ones: TERM, then KILL after 10 s.
    pids="$( { cat "$PIDS" 2>/dev/null || true; session_pids; } | sort -u)"
    for pid in $pids; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 1 40); do
        local left=0
        for pid in $pids; do pid_alive "$pid" && left=1; done
        ((left == 0)) && break
        sleep 0.25
    done
    for pid in $pids; do
        if pid_alive "$pid"; then
            say "pid $pid ignored SIGTERM for 10 s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    rm -f "$PIDS" "$DIR/address"
    say "stopped (session files kept in $DIR/s)"
}

status() {
    if head_alive && dashboard_up; then
        echo "ray head: running ($(wc -l < "$PIDS") processes) at $(cat "$DIR/address")"
        return 0
    fi
    echo "ray head: not running"
    return 1
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    env) echo "export RAY_ADDRESS=127.0.0.1:$PORT" ;;
    *)
        echo "usage: $0 start|stop|status|env" >&2
        exit 2
        ;;
esac
