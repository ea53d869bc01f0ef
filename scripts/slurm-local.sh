#!/usr/bin/env bash
# slurm-local.sh -- a real one-node SLURM cluster on this machine, for tests and CI.
#
#   scripts/slurm-local.sh up      # install (if needed), configure, start munged/slurmctld/slurmd
#   scripts/slurm-local.sh down    # stop exactly the daemons this script started (by pid file)
#   scripts/slurm-local.sh status  # print sinfo/squeue; exit 1 if the cluster is not up
#
# Needs root (Debian/Ubuntu: apt packages slurm-wlm + munge). All state -- pid files, logs,
# spool and controller state -- lives under $SSLOBJ_SLURM_DIR (default /var/tmp/sslobj-slurm).
# The slurm.conf is written to /etc/slurm/slurm.conf (where Debian's slurm looks), so plain
# `sbatch`, `sinfo` and submitit work without SLURM_CONF. See docs/SLURM.md.
set -euo pipefail

STATE_DIR="${SSLOBJ_SLURM_DIR:-/var/tmp/sslobj-slurm}"
CONF_DIR="/etc/slurm"
CONF="$CONF_DIR/slurm.conf"
CGROUP_CONF="$CONF_DIR/cgroup.conf"
MARKER="# managed by sslobjectives scripts/slurm-local.sh"
MUNGE_KEY="/etc/munge/munge.key"
MUNGE_SOCKET_DIR="/run/munge"
WAIT_S="${SSLOBJ_SLURM_WAIT_S:-60}"

PID_DIR="$STATE_DIR/run"
LOG_DIR="$STATE_DIR/log"
MUNGE_DIR="$STATE_DIR/munge"         # owned by the munge user (munged runs as munge)
CTLD_STATE="$STATE_DIR/slurmctld"    # StateSaveLocation
SLURMD_SPOOL="$STATE_DIR/slurmd"     # SlurmdSpoolDir

MUNGED_PID="$MUNGE_DIR/munged.pid"
CTLD_PID="$PID_DIR/slurmctld.pid"
SLURMD_PID="$PID_DIR/slurmd.pid"

NODE="$(hostname -s)"

log() { printf '[slurm-local] %s\n' "$*" >&2; }
die() { printf '[slurm-local] ERROR: %s\n' "$*" >&2; exit 1; }

# --- pid-file helpers --------------------------------------------------------------------------

# is_live PID: process exists and is not a zombie (PID 1 in containers may reap late).
is_live() {
    local st
    st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
    [[ -n "$st" && "$st" != Z && "$st" != X ]]
}

# live_pids NAME: non-zombie processes whose command name is exactly NAME.
live_pids() {
    local pid
    for pid in $(pgrep -x "$1" 2>/dev/null || true); do
        is_live "$pid" && printf '%s ' "$pid"
    done
    return 0
}

# pid_alive PIDFILE NAME -> prints pid and returns 0 if the pid file names a live process
# whose command name is NAME.
pid_alive() {
    local pidfile="$1" name="$2" pid comm
    [[ -r "$pidfile" ]] || return 1
    pid="$(tr -dc '0-9' <"$pidfile" 2>/dev/null || true)"
    [[ -n "$pid" ]] || return 1
    is_live "$pid" || return 1
    comm="$(cat "/proc/$pid/comm" 2>/dev/null || true)"
    [[ "$comm" == "$name" ]] || return 1
    printf '%s\n' "$pid"
}

# stop_by_pidfile PIDFILE NAME: SIGTERM, wait up to 20 s, then SIGKILL. Idempotent.
stop_by_pidfile() {
    local pidfile="$1" name="$2" pid i
    if ! pid="$(pid_alive "$pidfile" "$name")"; then
        log "$name: not running (no live pid in $pidfile)"
        rm -f "$pidfile"
        return 0
    fi
    log "$name: stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do
        is_live "$pid" || break
        sleep 0.5
    done
    if is_live "$pid"; then
        log "$name: still alive after 20 s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$pidfile"
}

# --- install -----------------------------------------------------------------------------------

ensure_root() {
    [[ "$(id -u)" -eq 0 ]] || die "must run as root (it installs packages, writes /etc/slurm and starts daemons)"
}

ensure_packages() {
    local missing=0 b
    for b in sbatch sinfo squeue scontrol slurmctld slurmd munged; do
        command -v "$b" >/dev/null 2>&1 || missing=1
    done
    if [[ "$missing" -eq 1 ]]; then
        log "installing slurm-wlm and munge (apt-get)"
        command -v apt-get >/dev/null 2>&1 || die "slurm binaries missing and apt-get not available"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update </dev/null
        apt-get install -y slurm-wlm munge </dev/null
        # Debian's postinst may start daemons through init scripts; we run our own instances.
        local svc
        for svc in slurmd:slurmd slurmctld:slurmctld munged:munge; do
            if [[ -n "$(live_pids "${svc%%:*}")" ]] && command -v service >/dev/null 2>&1; then
                log "stopping ${svc%%:*} started by the package install"
                service "${svc#*:}" stop </dev/null >/dev/null 2>&1 || true
            fi
        done
    fi
    for b in sbatch slurmctld slurmd munged; do
        command -v "$b" >/dev/null 2>&1 || die "$b still not found after install"
    done
}

# --- munge -------------------------------------------------------------------------------------

munge_works() {
    command -v munge >/dev/null 2>&1 && command -v unmunge >/dev/null 2>&1 || return 1
    munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1
}

ensure_munge() {
    id munge >/dev/null 2>&1 || die "user 'munge' does not exist (is the munge package installed?)"
    install -d -o munge -g munge -m 0700 /etc/munge
    if [[ ! -s "$MUNGE_KEY" ]]; then
        log "creating munge key $MUNGE_KEY"
        if command -v mungekey >/dev/null 2>&1; then
            mungekey --create --keyfile="$MUNGE_KEY" --force
        else
            dd if=/dev/urandom of="$MUNGE_KEY" bs=1 count=1024 status=none
        fi
    fi
    chown munge:munge "$MUNGE_KEY"
    chmod 0400 "$MUNGE_KEY"

    if munge_works; then
        if pid_alive "$MUNGED_PID" munged >/dev/null; then
            log "munged: already running (ours, pid $(cat "$MUNGED_PID"))"
        else
            log "munged: a munged not started by this script is already serving; using it"
        fi
        return 0
    fi
    if pid_alive "$MUNGED_PID" munged >/dev/null; then
        log "munged: our munged is alive but credentials fail; restarting it"
        stop_by_pidfile "$MUNGED_PID" munged
    fi
    install -d -o munge -g munge -m 0755 "$MUNGE_SOCKET_DIR"
    install -d -o munge -g munge -m 0700 "$MUNGE_DIR"
    install -d -o munge -g munge -m 0711 /var/lib/munge
    rm -f "$MUNGE_SOCKET_DIR/munge.socket.2" "$MUNGE_SOCKET_DIR/munge.socket.2.lock"
    log "munged: starting (as user munge)"
    runuser -u munge -- munged \
        --key-file="$MUNGE_KEY" \
        --pid-file="$MUNGED_PID" \
        --log-file="$MUNGE_DIR/munged.log" \
        --socket="$MUNGE_SOCKET_DIR/munge.socket.2" </dev/null \
        || { tail -n 20 "$MUNGE_DIR/munged.log" >&2 2>/dev/null || true; die "munged failed to start"; }
    local i
    for ((i = 0; i < 20; i++)); do
        munge_works && { log "munged: up (pid $(cat "$MUNGED_PID" 2>/dev/null || echo '?'))"; return 0; }
        sleep 0.5
    done
    tail -n 20 "$MUNGE_DIR/munged.log" >&2 2>/dev/null || true
    die "munged started but 'munge -n | unmunge' does not work"
}

# --- config ------------------------------------------------------------------------------------

render_slurm_conf() {
    local cpus mem_total_mb headroom_mb real_mb def_mem_per_cpu
    cpus="$(nproc)"
    mem_total_mb="$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)"
    # Leave headroom for the OS and the daemons: 10 % of RAM, at least 256 MiB, at most 2 GiB.
    headroom_mb=$((mem_total_mb / 10))
    ((headroom_mb < 256)) && headroom_mb=256
    ((headroom_mb > 2048)) && headroom_mb=2048
    real_mb=$((mem_total_mb - headroom_mb))
    ((real_mb < 256)) && real_mb=256
    # Without a default per-CPU memory, a job that does not ask for --mem is given the whole
    # node's memory under CR_*_Memory and jobs run one at a time.
    def_mem_per_cpu=$((real_mb / cpus))

    cat <<EOF
$MARKER
# Regenerated on every 'up'; edit the script, not this file.
ClusterName=sslobj
SlurmctldHost=${NODE}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job may start again only once its credential expired (default 120 s); 30 s
# makes submitit's timeout->requeue round trip quicker.
AuthInfo=cred_expire=30
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
# Test cluster: schedule often (defaults are 60 s / 30 s), so a requeued job restarts soon after
# its BeginTime instead of waiting for the next main scheduling pass.
SchedulerParameters=sched_interval=5,bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
# Trust this file's CPUs/RealMemory instead of draining on a hardware mismatch.
SlurmdParameters=config_overrides
ReturnToService=2

# Requeue / timeouts: submitit's timeout path needs --signal=USR2@N and 'scontrol requeue'.
JobRequeue=1
KillWait=5
OverTimeLimit=0
InactiveLimit=30
# There is no accounting database (sacct fails), so squeue/scontrol are the only live record of
# finished jobs' states (jobcomp.log below keeps a flat log): keep them for 10 minutes.
MinJobAge=600
# With preemption (partition 'high' preempts 'debug'), also deliver the job's --signal
# (submitit: USR2) at preemption time so submitit checkpoints and requeues.
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SlurmctldParameters=preempt_send_user_signal

# No accounting; finished-job records go to a flat file instead.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log

# State, pid files and logs under one directory.
StateSaveLocation=$CTLD_STATE
SlurmdSpoolDir=$SLURMD_SPOOL
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info

NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$cpus RealMemory=$real_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP DefMemPerCPU=$def_mem_per_cpu PriorityTier=1 PreemptMode=REQUEUE GraceTime=30
PartitionName=high Nodes=$NODE Default=NO MaxTime=INFINITE State=UP DefMemPerCPU=$def_mem_per_cpu PriorityTier=10 PreemptMode=OFF
EOF
}

render_cgroup_conf() {
    # Slurm 22.05 has no 'CgroupPlugin=disabled' (23.02+ does). With proctrack/linuxproc +
    # task/none slurmd 22.05 runs fine without a cgroup.conf; this one only makes sure a leftover
    # file asking for constraints cannot interfere.
    cat <<EOF
$MARKER
CgroupPlugin=autodetect
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainSwapSpace=no
ConstrainDevices=no
EOF
}

# install_conf PATH CONTENT -> returns 0 if the file changed.
install_conf() {
    local path="$1" content="$2"
    if [[ -f "$path" ]] && [[ "$(cat "$path")" == "$content" ]]; then
        return 1
    fi
    if [[ -f "$path" ]] && ! grep -qF "$MARKER" "$path"; then
        local bak
        bak="$path.bak-$(date +%Y%m%d%H%M%S)"
        log "backing up existing $path (not written by this script) to $bak"
        cp -p "$path" "$bak"
    fi
    printf '%s\n' "$content" >"$path.tmp.$$"
    chmod 0644 "$path.tmp.$$"
    mv -f "$path.tmp.$$" "$path"
    log "wrote $path"
    return 0
}

# --- slurm daemons -----------------------------------------------------------------------------

node_state() {
    # Prints e.g. idle, mixed, allocated, down*, drained, ... ('' if sinfo does not answer).
    timeout 10 sinfo -h -N -n "$NODE" -o '%T' </dev/null 2>/dev/null | head -n 1 || true
}

slurmd_registered_at() {
    # Epoch seconds of the SlurmdStartTime slurmctld has for the node (0 if unknown).
    local t
    t="$(timeout 10 scontrol show node "$NODE" </dev/null 2>/dev/null |
        grep -o 'SlurmdStartTime=[^ ]*' | cut -d= -f2 || true)"
    date -d "$t" +%s 2>/dev/null || echo 0
}

fail_with_logs() {
    log "$1"
    local f
    for f in "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log"; do
        if [[ -f "$f" ]]; then
            printf '%s\n' "----- last 30 lines of $f -----" >&2
            tail -n 30 "$f" >&2 || true
        fi
    done
    exit 1
}

start_daemon() {
    local name="$1" pidfile="$2"; shift 2
    if pid_alive "$pidfile" "$name" >/dev/null; then
        log "$name: already running (pid $(cat "$pidfile"))"
        return 0
    fi
    # Another instance may still be shutting down (e.g. right after a kill); give it 10 s.
    local j
    for ((j = 0; j < 20; j++)); do
        [[ -z "$(live_pids "$name")" ]] && break
        sleep 0.5
    done
    if [[ -n "$(live_pids "$name")" ]]; then
        die "a $name not started by this script is running (pids: $(live_pids "$name")); stop it first"
    fi
    log "$name: starting"
    "$@" </dev/null >>"$LOG_DIR/$name.stdout" 2>&1 || fail_with_logs "$name exited with status $?"
    local i
    for ((i = 0; i < 40; i++)); do
        pid_alive "$pidfile" "$name" >/dev/null && { log "$name: up (pid $(cat "$pidfile"))"; return 0; }
        sleep 0.25
    done
    fail_with_logs "$name did not write a live pid to $pidfile"
}

cmd_up() {
    ensure_root
    ensure_packages
    log "slurm: $(slurmctld -V 2>/dev/null || echo unknown version); node $NODE; state dir $STATE_DIR"
    install -d -m 0755 "$STATE_DIR" "$PID_DIR" "$LOG_DIR" "$CTLD_STATE" "$SLURMD_SPOOL" "$CONF_DIR"
    ensure_munge

    local changed=0
    install_conf "$CONF" "$(render_slurm_conf)" && changed=1
    install_conf "$CGROUP_CONF" "$(render_cgroup_conf)" && changed=1
    if [[ "$changed" -eq 1 ]]; then
        # Config changed: restart whatever we had running so it is picked up.
        log "configuration changed; (re)starting slurmctld and slurmd"
        stop_by_pidfile "$CTLD_PID" slurmctld >/dev/null 2>&1 || true
        stop_by_pidfile "$SLURMD_PID" slurmd >/dev/null 2>&1 || true
    fi

    start_daemon slurmctld "$CTLD_PID" slurmctld
    # Wait for the controller to answer before starting slurmd.
    local i
    for ((i = 0; i < WAIT_S * 2; i++)); do
        timeout 10 scontrol ping </dev/null 2>/dev/null | grep -q 'is UP' && break
        sleep 0.5
    done
    timeout 10 scontrol ping </dev/null 2>/dev/null | grep -q 'is UP' || fail_with_logs "slurmctld does not answer 'scontrol ping'"
    local slurmd_started_at
    slurmd_started_at="$(date +%s)"
    pid_alive "$SLURMD_PID" slurmd >/dev/null && slurmd_started_at=0  # already running
    start_daemon slurmd "$SLURMD_PID" slurmd -N "$NODE"

    local state="" resumed=0 deadline=$((SECONDS + WAIT_S))
    while ((SECONDS < deadline)); do
        # A restarted slurmctld shows the node state it saved (e.g. idle) before slurmd has
        # registered again; wait for this slurmd's registration first.
        if ((slurmd_started_at > 0)) && (($(slurmd_registered_at) < slurmd_started_at - 2)); then
            sleep 0.5
            continue
        fi
        state="$(node_state)"
        case "$state" in
            idle | mixed | allocated | completing)
                log "node $NODE is $state; cluster is up"
                timeout 10 sinfo </dev/null || true
                return 0
                ;;
            down* | drain* | fail* | "unknown*" | "idle*")
                # Came up down/drained (e.g. state recovered from a previous run): resume once
                # slurmd has registered (no trailing '*' = responding).
                if [[ "$state" != *'*' && "$resumed" -eq 0 ]]; then
                    log "node $NODE is $state; resuming it"
                    scontrol update nodename="$NODE" state=resume </dev/null || true
                    resumed=1
                fi
                ;;
        esac
        sleep 1
    done
    timeout 10 sinfo -N -l </dev/null >&2 || true
    fail_with_logs "node $NODE not idle after ${WAIT_S}s (last state: '${state:-no answer from sinfo}')"
}

cmd_down() {
    ensure_root
    # Controller first, so it cannot hand a job to a slurmd that is shutting down (such a job
    # is left RUNNING with no process behind it).
    stop_by_pidfile "$CTLD_PID" slurmctld
    stop_by_pidfile "$SLURMD_PID" slurmd
    stop_by_pidfile "$MUNGED_PID" munged
    log "down"
}

cmd_status() {
    local ok=0 name pidfile pid
    for name in munged slurmctld slurmd; do
        case "$name" in
            munged) pidfile="$MUNGED_PID" ;;
            slurmctld) pidfile="$CTLD_PID" ;;
            slurmd) pidfile="$SLURMD_PID" ;;
        esac
        if pid="$(pid_alive "$pidfile" "$name")"; then
            echo "$name: running (pid $pid)"
        elif [[ "$name" == munged ]] && munge_works; then
            echo "munged: running (not started by this script)"
        else
            echo "$name: not running"
            ok=1
        fi
    done
    if [[ "$ok" -ne 0 ]] || ! timeout 10 sinfo </dev/null >/dev/null 2>&1; then
        echo "SLURM cluster is not running (start it with: $0 up)"
        return 1
    fi
    timeout 10 sinfo </dev/null
    echo
    timeout 10 squeue </dev/null
    case "$(node_state)" in
        idle | mixed | allocated | completing) return 0 ;;
        *) echo "node $NODE is not usable (state '$(node_state)')"; return 1 ;;
    esac
}

usage() {
    cat <<EOF
usage: $0 {up|down|status}
  up      install slurm-wlm+munge if missing, write $CONF, start munged/slurmctld/slurmd,
          wait until node '$NODE' is idle (idempotent)
  down    stop the daemons started by 'up' (pid files in $STATE_DIR)
  status  print sinfo/squeue; exit 1 if the cluster is not up
state dir: \$SSLOBJ_SLURM_DIR (default /var/tmp/sslobj-slurm)
EOF
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
esac
