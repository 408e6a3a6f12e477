#!/usr/bin/env bash
# A single-node SLURM cluster on this (Debian, root, no systemd) machine, and the smoke pipeline
# run through it with `--profile profiles/slurm`: every claim becomes a SLURM job.
#
#   bash profiles/slurm/local-cluster.sh up      # install (apt) and start munge, MariaDB, slurmdbd,
#                                                # slurmctld, slurmd; idempotent
#   bash profiles/slurm/local-cluster.sh smoke   # smoke pipeline via sbatch, then verdicts checked
#   bash profiles/slurm/local-cluster.sh down    # stop only the daemons that `up` started
#   bash profiles/slurm/local-cluster.sh all     # up + smoke + down (down also on failure): `make slurm-check`
#
# `smoke` runs the workflow in its own work folder ($SLURM_CHECK_DIR, default
# /tmp/gan-claims-slurm-check: results/, figures/, .snakemake/ and SLURM logs live there, never in
# the repo's results/) and passes when every claim has a summary, none is `error`, every smoke
# verdict is `inconclusive`, and (unless SLURM_CHECK_LOCAL=0) each verdict equals the one of the
# same smoke pipeline run locally without SLURM.
# Settings (environment): VENV (default .venv), SLURM_CHECK_DIR, SLURM_CHECK_LOCAL (1),
# SLURM_CHECK_CLAIMS (a Snakemake list such as "[saturation,d-perfect]"; default every claim),
# SLURM_PARTITION (the partition's name in slurm.conf, main), SLURM_CHECK_POLL (seconds before
# the first job status query, 5).
# The daemons' logs: /var/log/slurm/, /var/log/gan-claims-slurm/ (munged, mysqld).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
VENV=${VENV:-$REPO/.venv}
[[ $VENV = /* ]] || VENV=$REPO/$VENV
WORK=${SLURM_CHECK_DIR:-/tmp/gan-claims-slurm-check}
PARTITION=${SLURM_PARTITION:-main}
STATE=/run/gan-claims-slurm        # names of the daemons this script started (for `down`)
LOGS=/var/log/gan-claims-slurm
MARK="# written by gan-claims profiles/slurm/local-cluster.sh"
HOST=$(hostname -s)

say() { printf '[slurm %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { say "ERROR: $*" >&2; exit 1; }
need_root() { [[ $(id -u) = 0 ]] || die "run as root (it installs packages and starts daemons)"; }
# wait_for SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds
wait_for() {
    local t=$1 what=$2; shift 2
    for ((i = 0; i < t * 2; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
    die "$what did not come up within ${t}s"
}
started() { mkdir -p "$STATE"; touch "$STATE/$1"; }
pid_alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# ------------------------------------------------------------------------------------------- up
install_packages() {
    local missing=()
    command -v slurmctld >/dev/null || missing+=(slurm-wlm)
    command -v slurmdbd >/dev/null || missing+=(slurmdbd)
    command -v munged >/dev/null || missing+=(munge)
    command -v mysqld_safe >/dev/null || missing+=(mariadb-server)
    if ((${#missing[@]})); then
        say "apt-get install ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if ! "$VENV/bin/python" -c "import snakemake_executor_plugin_slurm" 2>/dev/null; then
        # the requirement strings of pyproject's optional extra `slurm`
        local reqs
        mapfile -t reqs < <("$VENV/bin/python" - "$REPO/pyproject.toml" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print(*tomllib.load(f)["project"]["optional-dependencies"]["slurm"], sep="\n")
PY
        )
        say "pip install ${reqs[*]} (the 'slurm' extra) into $VENV"
        "$VENV/bin/pip" install -q "${reqs[@]}"
    fi
}

start_munge() {
    if pgrep -x munged >/dev/null; then say "munged already running"; return; fi
    [[ -s /etc/munge/munge.key ]] || /usr/sbin/mungekey --create --force
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    install -d -o munge -g munge -m 755 /run/munge
    say "start munged"
    # munged warns that root runs it with a log owned by munge; it works
    munged --force >>"$LOGS/munged.out" 2>&1
    started munged
    wait_for 10 munge munge -n
}

start_mariadb() {
    if [[ -S /run/mysqld/mysqld.sock ]] && mysqladmin ping >/dev/null 2>&1; then
        say "MariaDB already running"
    else
        install -d -o mysql -g mysql /run/mysqld
        say "start MariaDB"
        setsid mysqld_safe >>"$LOGS/mysqld_safe.out" 2>&1 </dev/null &
        started mariadb
        wait_for 60 MariaDB mysqladmin ping
    fi
    # a local password, kept only in slurmdbd.conf (mode 600) and reused by later runs
    local pass
    pass=$(sed -n 's/^StoragePass=//p' /etc/slurm/slurmdbd.conf 2>/dev/null || true)
    [[ -n $pass ]] || pass=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
    mysql -u root <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$pass';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$pass';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL
    DBPASS=$pass
}

write_configs() {
    # never overwrite a slurm.conf that this script did not write (a real cluster's)
    local f
    for f in /etc/slurm/slurm.conf /etc/slurm/slurmdbd.conf; do
        if [[ -e $f ]] && ! grep -qxF "$MARK" "$f"; then
            die "$f exists and was not written by this script: refusing to replace it"
        fi
    done
    local cpus mem
    cpus=$(nproc)
    # leave a quarter of the memory to the daemons and the submitting Snakemake
    mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.75)}' /proc/meminfo)
    install -d -m 755 /etc/slurm /var/log/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd
    cat >/etc/slurm/slurm.conf.new <<EOF
$MARK
ClusterName=local
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
NodeName=$HOST CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
    mv /etc/slurm/slurm.conf.new /etc/slurm/slurm.conf
    (
        umask 077
        cat >/etc/slurm/slurmdbd.conf.new <<EOF
$MARK
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=/run/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=$DBPASS
EOF
    )
    mv /etc/slurm/slurmdbd.conf.new /etc/slurm/slurmdbd.conf
    chmod 600 /etc/slurm/slurmdbd.conf
}

start_slurm() {
    if pid_alive /run/slurmdbd.pid; then say "slurmdbd already running"; else
        say "start slurmdbd"
        slurmdbd
        started slurmdbd
        wait_for 60 slurmdbd sacctmgr -n show cluster
    fi
    if ! sacctmgr -n -P show cluster format=cluster | grep -qx local; then
        sacctmgr -i add cluster local >/dev/null
    fi
    if pid_alive /run/slurmctld.pid; then say "slurmctld already running"; else
        say "start slurmctld"
        slurmctld
        started slurmctld
        wait_for 60 slurmctld scontrol ping
    fi
    if pid_alive /run/slurmd.pid; then say "slurmd already running"; else
        say "start slurmd"
        slurmd
        started slurmd
    fi
    node_idle() { sinfo -h -n "$HOST" -o %T | grep -Eq '^(idle|mixed|allocated)'; }
    if ! wait_for_quiet 60 node_idle; then
        # a node left DOWN/DRAINED by an earlier run comes back
        scontrol update nodename="$HOST" state=resume 2>/dev/null || true
        wait_for 30 "node $HOST (state: $(sinfo -h -n "$HOST" -o %T))" node_idle
    fi
}

wait_for_quiet() {
    local t=$1; shift
    for ((i = 0; i < t * 2; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
    return 1
}

up() {
    need_root
    install -d -m 755 "$LOGS"
    install_packages
    start_munge
    start_mariadb
    write_configs
    start_slurm
    say "cluster up: $(sinfo -h -o '%P %a %D %T %c cpus %m MB')"
    srun -N1 -n1 -t 1 hostname >/dev/null || die "srun hostname failed"
}

# ---------------------------------------------------------------------------------------- smoke
verdicts() { # verdicts RESULTS_DIR: "claim verdict" lines, sorted
    "$VENV/bin/python" - "$1" <<'PY'
import json, pathlib, sys
for p in sorted(pathlib.Path(sys.argv[1], "smoke").glob("*/summary.json")):
    try:
        v = json.loads(p.read_text()).get("verdict", "?")
    except ValueError:
        v = "unreadable"
    print(p.parent.name, v if isinstance(v, str) else v.get("verdict", "?"))
PY
}

smoke() {
    command -v sbatch >/dev/null || die "no sbatch: run '$0 up' first"
    sinfo -h >/dev/null 2>&1 || die "slurmctld does not answer: run '$0 up' first"
    export PATH="$VENV/bin:$PATH" PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
    rm -rf "$WORK" && mkdir -p "$WORK/slurm" "$WORK/local"
    local cfg=(scale=smoke)
    [[ -z ${SLURM_CHECK_CLAIMS:-} ]] || cfg+=("claims=$SLURM_CHECK_CLAIMS")
    # --workflow-profile none: the local profile (profiles/default) asks every claim job for
    # gpu=1, which the SLURM executor turns into --gpus=1 (fails on a cluster without GPU gres)
    local sm=(snakemake -s "$REPO/Snakefile" --workflow-profile none)
    # the claims the run must cover: every spec in claims/, or SLURM_CHECK_CLAIMS
    "$VENV/bin/python" - "$REPO/claims" "${SLURM_CHECK_CLAIMS:-all}" >"$WORK/expected.txt" <<'PY'
import sys
from repro.claims import load_all
ids = sorted(load_all(sys.argv[1]))
if sys.argv[2] != "all":
    ids = sorted(c.strip() for c in sys.argv[2].strip("[]").split(","))
print(*ids, sep="\n")
PY
    local expected start t0=$SECONDS
    expected=$(wc -l <"$WORK/expected.txt")
    start=$(date +%FT%T)
    say "smoke pipeline on SLURM ($expected claims) in $WORK/slurm"
    # account and partition: the executor takes the user's default account and the default
    # partition (this cluster's only one)
    # (first status query after 5 s, not the executor's polite 40 s: a cluster of our own)
    "${sm[@]}" -d "$WORK/slurm" --profile "$REPO/profiles/slurm" --config "${cfg[@]}" \
        --slurm-init-seconds-before-status-checks "${SLURM_CHECK_POLL:-5}" \
        >"$WORK/slurm.log" 2>&1 ||
        { tail -40 "$WORK/slurm.log"; die "snakemake on SLURM failed (log: $WORK/slurm.log)"; }
    say "SLURM run done in $((SECONDS - t0)) s"
    local jobs
    jobs=$(sacct -n -X -P -S "$start" -o state | sort | uniq -c | xargs)
    say "sacct, SLURM jobs since $start: ${jobs:-none}"
    verdicts "$WORK/slurm/results" >"$WORK/verdicts-slurm.txt"
    if [[ ${SLURM_CHECK_LOCAL:-1} = 1 ]]; then
        say "same smoke pipeline locally (no SLURM) in $WORK/local"
        t0=$SECONDS
        "${sm[@]}" -d "$WORK/local" --cores 2 --config "${cfg[@]}" >"$WORK/local.log" 2>&1 ||
            { tail -40 "$WORK/local.log"; die "local snakemake failed (log: $WORK/local.log)"; }
        say "local run done in $((SECONDS - t0)) s"
        verdicts "$WORK/local/results" >"$WORK/verdicts-local.txt"
    fi
    check_verdicts
}

check_verdicts() {
    local n bad=0
    n=$(wc -l <"$WORK/verdicts-slurm.txt")
    say "verdicts on SLURM:"; sed 's/^/    /' "$WORK/verdicts-slurm.txt"
    if ! diff <(cut -d' ' -f1 "$WORK/verdicts-slurm.txt") "$WORK/expected.txt" >/dev/null; then
        say "FAIL: summaries for $n claims, expected: $(xargs <"$WORK/expected.txt")"; bad=1
    fi
    if grep -v ' inconclusive$' "$WORK/verdicts-slurm.txt" >/dev/null; then
        say "FAIL: a smoke verdict other than inconclusive"; bad=1
    fi
    if [[ -e $WORK/verdicts-local.txt ]]; then
        if diff -u "$WORK/verdicts-local.txt" "$WORK/verdicts-slurm.txt" >"$WORK/verdicts.diff"; then
            say "verdicts equal the local run's for all $n claims"
        else
            say "FAIL: verdicts differ from the local run's:"; cat "$WORK/verdicts.diff"; bad=1
        fi
    fi
    local errors
    errors=$(grep -c ' error$' "$WORK/verdicts-slurm.txt" || true)
    say "slurm smoke: $n claims, $((n - errors)) without error, $errors error"
    ((bad == 0)) || die "SLURM smoke check failed"
}

# ----------------------------------------------------------------------------------------- down
down() {
    need_root
    [[ -d $STATE ]] || { say "nothing started by this script"; return 0; }
    if [[ -e $STATE/slurmctld ]]; then scancel --quiet --user=root 2>/dev/null || true; fi
    local d
    for d in slurmd slurmctld slurmdbd; do
        [[ -e $STATE/$d ]] || continue
        if pid_alive "/run/$d.pid"; then
            say "stop $d"
            kill "$(cat "/run/$d.pid")"
            wait_gone "/run/$d.pid"
        fi
        rm -f "$STATE/$d"
    done
    if [[ -e $STATE/mariadb ]]; then
        say "stop MariaDB"
        mysqladmin shutdown 2>/dev/null || true
        rm -f "$STATE/mariadb"
    fi
    if [[ -e $STATE/munged ]]; then
        say "stop munged"
        local pidf=/run/munge/munged.pid
        if pid_alive $pidf; then kill "$(cat $pidf)"; fi
        rm -f "$STATE/munged"
    fi
    rmdir "$STATE" 2>/dev/null || true
    say "down (packages and /etc/slurm configs stay; '$0 up' reuses them)"
}

wait_gone() {
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 0
    for ((i = 0; i < 40; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
    say "$1 ($pid) still alive after 20 s"
}

case ${1:-all} in
    up) up ;;
    smoke) smoke ;;
    down) down ;;
    all)
        T0=$SECONDS
        trap 'down' EXIT
        up
        say "up took $((SECONDS - T0)) s"
        smoke
        say "up + smoke took $((SECONDS - T0)) s"
        ;;
    *) die "usage: $0 [up|smoke|down|all]" ;;
esac
