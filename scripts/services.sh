#!/usr/bin/env bash
# Throw-away PostgreSQL and Redis servers for the test suite.
#
# Sourced by scripts/test (functions svc_start / svc_cleanup), or run on its own:
#   bash scripts/services.sh                 # start both, open a shell with the URLs exported
#   bash scripts/services.sh CMD [ARGS...]   # start both, run CMD, stop both
#
# Each server gets a free port on 127.0.0.1 and a fresh temp dir that is removed
# on exit. A URL the caller already exported (SUBLEDGER_TEST_POSTGRES_URL,
# SUBLEDGER_TEST_REDIS_URL) is used as is and its server is not started.
#
# PostgreSQL refuses to run as root: as root it runs as the `postgres` user if
# there is one, else as a system user `subledger-ci` created on first use; as
# anybody else it runs as that user. Missing server binaries are installed
# with apt-get (root, or passwordless sudo).
#
# Tunables: SUBLEDGER_TEST_START_TIMEOUT (seconds, default 60).

SVC_DB_NAME=subledger_test
SVC_TIMEOUT=${SUBLEDGER_TEST_START_TIMEOUT:-60}
SVC_WORK=""          # temp dir holding the data of both servers
SVC_PG_BIN=""        # dir with initdb, pg_ctl, postgres
SVC_PG_USER=""       # OS user (and database superuser) that runs postgres
SVC_PG_DATA=""
SVC_PG_STARTED=0
SVC_PG_PID=""        # our child that runs the postmaster
SVC_PG_ISREADY=""
SVC_REDIS_PID=""
SVC_POLICY_RC_CREATED=0

svc_log() { printf 'services: %s\n' "$*" >&2; }
svc_die() { printf 'services: error: %s\n' "$*" >&2; exit 1; }

svc_is_root() { [ "$(id -u)" -eq 0 ]; }

# --- finding and installing the binaries ----------------------------------

svc_find_pg_bin() {
    local cand dir
    if cand=$(command -v initdb 2>/dev/null); then
        dir=$(dirname "$(readlink -f "$cand")")
        if [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
            printf '%s\n' "$dir"
            return 0
        fi
    fi
    # Debian/Ubuntu keep the server binaries off PATH; take the newest version.
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
            printf '%s\n' "$dir"
            return 0
        fi
    done
    return 1
}

svc_apt_install() {
    local sudo=""
    if ! svc_is_root; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo="sudo -n"
        else
            svc_die "missing $*; install them (Debian: apt-get install $*) or export SUBLEDGER_TEST_POSTGRES_URL / SUBLEDGER_TEST_REDIS_URL"
        fi
    fi
    command -v apt-get >/dev/null 2>&1 || svc_die "missing $* and no apt-get to install them"
    # Keep the packages' own services (a cluster on 5432, redis on 6379) from
    # starting: the tests use their own servers, and nothing should linger.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        $sudo sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d' \
            && SVC_POLICY_RC_CREATED=1
    fi
    svc_log "installing $* with apt-get (once)"
    local log rc
    log=$(mktemp)
    {
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q -o DPkg::Lock::Timeout=300 \
            && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 \
                -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
    } >"$log" 2>&1 </dev/null
    rc=$?
    if [ "$SVC_POLICY_RC_CREATED" = 1 ]; then
        $sudo rm -f /usr/sbin/policy-rc.d
        SVC_POLICY_RC_CREATED=0
    fi
    if [ "$rc" -ne 0 ]; then
        tail -n 30 "$log" >&2
        rm -f "$log"
        svc_die "apt-get install $* failed (exit $rc)"
    fi
    rm -f "$log"
}

svc_ensure_binaries() {
    local need_pg=$1 need_redis=$2 pkgs=()
    if [ "$need_pg" = 1 ] && ! svc_find_pg_bin >/dev/null; then
        pkgs+=(postgresql)
    fi
    if [ "$need_redis" = 1 ] && ! command -v redis-server >/dev/null 2>&1; then
        pkgs+=(redis-server)
    fi
    # sqlite3: the operations guide's SQLite backup and restore blocks run it
    # (tests/integration/test_operations_guide.py); optional like nginx (that test skips, saying so).
    if ! command -v sqlite3 >/dev/null 2>&1; then
        ( svc_apt_install sqlite3 ) || svc_log "sqlite3 not installed: the SQLite backup blocks are not run"
    fi
    # nginx: tests/integration/test_compose_layout.py runs the compose file's proxy with it;
    # optional (that part is skipped, saying so, where it is missing). Its own service does not start.
    if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
        ( svc_apt_install nginx ) || svc_log "nginx not installed: the compose layout test runs without its proxy"
    fi
    # docker-compose validates docker-compose.yml without a daemon where the docker CLI's compose
    # plugin is missing (the same test); optional too.
    if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
        ( svc_apt_install docker-compose ) || svc_log "docker-compose not installed: the compose file is not validated"
    fi
    if [ ${#pkgs[@]} -gt 0 ]; then
        svc_apt_install "${pkgs[@]}"
    fi
    if [ "$need_pg" = 1 ]; then
        SVC_PG_BIN=$(svc_find_pg_bin) || svc_die "PostgreSQL server binaries (initdb, pg_ctl) not found"
    fi
    if [ "$need_redis" = 1 ]; then
        command -v redis-server >/dev/null 2>&1 || svc_die "redis-server not found"
    fi
}

# --- helpers ---------------------------------------------------------------

svc_free_port() {
    local py
    for py in python3 python; do
        if command -v "$py" >/dev/null 2>&1; then
            "$py" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
            return
        fi
    done
    svc_die "python3 is needed to pick a free port"
}

# Run a command as the postgres OS user, from a directory that user can read.
# setpriv execs in place (no extra process, no PAM session); runuser is the
# fallback. Run in the background, `(svc_exec_as_pg CMD) &` makes $! the
# command itself (or runuser around it), so it can be waited for and reaped.
svc_exec_as_pg() {
    cd "$SVC_WORK" || exit 1
    if ! svc_is_root; then
        exec "$@"
    elif command -v setpriv >/dev/null 2>&1; then
        exec setpriv --reuid="$SVC_PG_USER" --regid="$(id -g "$SVC_PG_USER")" --init-groups -- "$@"
    else
        exec runuser -u "$SVC_PG_USER" -- "$@"
    fi
}

svc_as_pg() { (svc_exec_as_pg "$@"); }

svc_pick_pg_user() {
    if ! svc_is_root; then
        SVC_PG_USER=$(id -un)
    elif id -u postgres >/dev/null 2>&1; then
        SVC_PG_USER=postgres
    else
        SVC_PG_USER=subledger-ci
        if ! id -u "$SVC_PG_USER" >/dev/null 2>&1; then
            useradd --system --no-create-home --home-dir /nonexistent \
                --shell /usr/sbin/nologin "$SVC_PG_USER" 2>/dev/null \
                || id -u "$SVC_PG_USER" >/dev/null 2>&1 \
                || svc_die "could not create the system user $SVC_PG_USER to run PostgreSQL"
        fi
    fi
    if svc_is_root && ! command -v setpriv >/dev/null 2>&1 && ! command -v runuser >/dev/null 2>&1; then
        svc_die "setpriv or runuser (util-linux) is needed to run PostgreSQL as $SVC_PG_USER"
    fi
}

svc_make_workdir() {
    [ -n "$SVC_WORK" ] && return
    # Unix socket paths are limited to ~107 bytes; as root, postgres must also
    # be able to reach the dir, so stay in /tmp then.
    local base=/tmp
    if ! svc_is_root && [ -n "${TMPDIR:-}" ] && [ ${#TMPDIR} -le 60 ]; then
        base=$TMPDIR
    fi
    SVC_WORK=$(mktemp -d "$base/subledger-test.XXXXXX") || svc_die "mktemp failed"
    chmod 711 "$SVC_WORK"
}

# --- PostgreSQL ------------------------------------------------------------

svc_pg_try_start() {
    local port=$1 sock=$SVC_WORK/pg deadline
    cat >>"$SVC_PG_DATA/postgresql.conf" <<EOF

# subledger tests (throw-away cluster)
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sock'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
EOF
    # The postmaster stays our child rather than a daemon re-parented to
    # init, so it is reaped here and nothing is left behind, not even a zombie.
    (svc_exec_as_pg "$SVC_PG_BIN/postgres" -D "$SVC_PG_DATA") \
        >>"$SVC_WORK/pg/postgres.log" 2>&1 </dev/null &
    SVC_PG_PID=$!
    SVC_PG_STARTED=1
    deadline=$((SECONDS + SVC_TIMEOUT))
    while kill -0 "$SVC_PG_PID" 2>/dev/null; do
        if "$SVC_PG_ISREADY" -q -h 127.0.0.1 -p "$port" -U "$SVC_PG_USER" -d postgres; then
            return 0
        fi
        [ "$SECONDS" -lt "$deadline" ] || break
        sleep 0.2
    done
    svc_stop_postgres
    return 1
}

svc_start_postgres() {
    svc_pick_pg_user
    svc_make_workdir
    mkdir -p "$SVC_WORK/pg"
    SVC_PG_DATA=$SVC_WORK/pg/data
    if svc_is_root; then chown "$SVC_PG_USER" "$SVC_WORK/pg"; fi
    chmod 700 "$SVC_WORK/pg"

    svc_as_pg "$SVC_PG_BIN/initdb" -D "$SVC_PG_DATA" -U "$SVC_PG_USER" -A trust \
        -E UTF8 --locale=C --no-sync >"$SVC_WORK/initdb.log" 2>&1 \
        || { cat "$SVC_WORK/initdb.log" >&2; svc_die "initdb failed (as $SVC_PG_USER, $SVC_PG_BIN)"; }
    cp "$SVC_PG_DATA/postgresql.conf" "$SVC_WORK/postgresql.conf.orig"

    SVC_PG_ISREADY=$SVC_PG_BIN/pg_isready
    [ -x "$SVC_PG_ISREADY" ] || SVC_PG_ISREADY=$(command -v pg_isready) \
        || svc_die "pg_isready not found"

    # A free port can be taken between choosing and binding it: retry a few times.
    local port attempt ok=0
    for attempt in 1 2 3; do
        port=$(svc_free_port)
        if svc_pg_try_start "$port"; then
            ok=1
            break
        fi
        svc_as_pg cp "$SVC_WORK/postgresql.conf.orig" "$SVC_PG_DATA/postgresql.conf"
    done
    if [ "$ok" != 1 ]; then
        tail -n 30 "$SVC_WORK/pg/postgres.log" >&2 2>/dev/null
        svc_die "PostgreSQL on 127.0.0.1 did not accept connections within ${SVC_TIMEOUT}s (pg_isready; log above)"
    fi

    "$SVC_PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U "$SVC_PG_USER" "$SVC_DB_NAME" \
        || svc_die "createdb $SVC_DB_NAME failed"
    export SUBLEDGER_TEST_POSTGRES_URL="postgresql://$SVC_PG_USER@127.0.0.1:$port/$SVC_DB_NAME"
}

svc_stop_postgres() {
    [ "$SVC_PG_STARTED" = 1 ] || return 0
    SVC_PG_STARTED=0
    svc_as_pg "$SVC_PG_BIN/pg_ctl" -D "$SVC_PG_DATA" -m immediate -w -t 20 stop >/dev/null 2>&1
    # Belt and braces: if the postmaster is still there, kill it.
    local pid
    if [ -f "$SVC_PG_DATA/postmaster.pid" ]; then
        pid=$(head -n 1 "$SVC_PG_DATA/postmaster.pid" 2>/dev/null)
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null
        fi
    fi
    # Our child is the postmaster itself (or runuser around it): reap it.
    if [ -n "$SVC_PG_PID" ]; then
        local i
        for i in $(seq 1 50); do
            kill -0 "$SVC_PG_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SVC_PG_PID" 2>/dev/null
        wait "$SVC_PG_PID" 2>/dev/null
        SVC_PG_PID=""
    fi
    return 0
}

# --- Redis -----------------------------------------------------------------

svc_redis_ping() {
    local port=$1 reply
    if command -v redis-cli >/dev/null 2>&1; then
        [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]
        return
    fi
    # No redis-cli: speak the protocol over bash's /dev/tcp.
    (
        exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
        printf 'PING\r\n' >&3
        IFS= read -r -t 2 reply <&3 || exit 1
        [ "${reply%$'\r'}" = "+PONG" ]
    ) 2>/dev/null
}

svc_start_redis() {
    svc_make_workdir
    mkdir -p "$SVC_WORK/redis"
    local port attempt deadline
    for attempt in 1 2 3; do
        port=$(svc_free_port)
        redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
            --daemonize no --dir "$SVC_WORK/redis" --databases 16 \
            --loglevel warning >"$SVC_WORK/redis/redis.log" 2>&1 </dev/null &
        SVC_REDIS_PID=$!
        deadline=$((SECONDS + SVC_TIMEOUT))
        while kill -0 "$SVC_REDIS_PID" 2>/dev/null; do
            if svc_redis_ping "$port"; then
                export SUBLEDGER_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
                return 0
            fi
            [ "$SECONDS" -lt "$deadline" ] || break
            sleep 0.1
        done
        svc_stop_redis
    done
    tail -n 20 "$SVC_WORK/redis/redis.log" >&2 2>/dev/null
    svc_die "redis-server did not answer PING within ${SVC_TIMEOUT}s (log above)"
}

svc_stop_redis() {
    [ -n "$SVC_REDIS_PID" ] || return 0
    local pid=$SVC_REDIS_PID i
    SVC_REDIS_PID=""
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

# --- entry points ----------------------------------------------------------

# Start whatever the caller has not provided a URL for; export the URLs.
svc_start() {
    local need_pg=0 need_redis=0
    [ -n "${SUBLEDGER_TEST_POSTGRES_URL:-}" ] || need_pg=1
    [ -n "${SUBLEDGER_TEST_REDIS_URL:-}" ] || need_redis=1
    [ "$need_pg$need_redis" != 00 ] || return 0
    svc_ensure_binaries "$need_pg" "$need_redis"
    if [ "$need_pg" = 1 ]; then svc_start_postgres; fi
    if [ "$need_redis" = 1 ]; then svc_start_redis; fi
}

# Idempotent; safe to call from an EXIT trap at any point of svc_start.
svc_cleanup() {
    svc_stop_redis
    svc_stop_postgres
    if [ "$SVC_POLICY_RC_CREATED" = 1 ]; then
        rm -f /usr/sbin/policy-rc.d 2>/dev/null || sudo -n rm -f /usr/sbin/policy-rc.d 2>/dev/null
        SVC_POLICY_RC_CREATED=0
    fi
    if [ -n "$SVC_WORK" ] && [ -d "$SVC_WORK" ]; then
        rm -rf "$SVC_WORK"
    fi
    SVC_WORK=""
}

# Trap handlers: the EXIT trap cleans up and keeps the exit status.
svc_install_traps() {
    trap 'svc__rc=$?; trap - EXIT; svc_cleanup; exit $svc__rc' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -u
    svc_install_traps
    svc_start
    printf 'SUBLEDGER_TEST_POSTGRES_URL=%s\nSUBLEDGER_TEST_REDIS_URL=%s\n' \
        "$SUBLEDGER_TEST_POSTGRES_URL" "$SUBLEDGER_TEST_REDIS_URL" >&2
    if [ $# -eq 0 ]; then
        svc_log "servers are up; exit the shell to stop them"
        "${SHELL:-bash}" -i
    else
        "$@"
    fi
fi
