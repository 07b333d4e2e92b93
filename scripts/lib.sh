#!/usr/bin/env bash
# shellcheck shell=bash
# Several helpers take optional arguments:
# shellcheck disable=SC2119,SC2120
#
# Shared helpers for scripts/test and scripts/quickstart. Source it, don't run it:
#
#   source "$(dirname "$0")/lib.sh"
#
# It expects `set -euo pipefail` in the caller. Every function that talks to the user
# prefixes its messages with "gpulut:" and writes them to stderr, so stdout stays clean.

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    echo "gpulut: scripts/lib.sh is a library; source it from another script" >&2
    exit 2
fi

# ---------------------------------------------------------------------------------------
# Messages, small predicates
# ---------------------------------------------------------------------------------------

info() { printf 'gpulut: %s\n' "$*" >&2; }
warn() { printf 'gpulut: warning: %s\n' "$*" >&2; }
die() {
    printf 'gpulut: error: %s\n' "$*" >&2
    exit 1
}

is_root() { [[ "$(id -u)" == 0 ]]; }

# cd_repo_root: cd to the repository root (the parent of scripts/), export GPULUT_ROOT.
cd_repo_root() {
    local here
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
    GPULUT_ROOT="$(cd "$here/.." && pwd -P)"
    export GPULUT_ROOT
    cd "$GPULUT_ROOT" || die "cannot cd to $GPULUT_ROOT"
}

# ---------------------------------------------------------------------------------------
# Cleanup: a stack of functions run on EXIT (also after Ctrl-C / SIGTERM), last first.
# The script's exit status is preserved.
# ---------------------------------------------------------------------------------------

GPULUT_CLEANUPS=()

# add_cleanup FUNC: run FUNC when the script exits (functions run in reverse order).
add_cleanup() { GPULUT_CLEANUPS+=("$1"); }

run_cleanups() {
    local i
    for ((i = ${#GPULUT_CLEANUPS[@]} - 1; i >= 0; i--)); do
        "${GPULUT_CLEANUPS[i]}" || true
    done
    GPULUT_CLEANUPS=()
}

_gpulut_on_exit() {
    local rc=$?
    trap - EXIT
    trap '' INT TERM # a second Ctrl-C must not interrupt the cleanup half-way
    run_cleanups
    exit "$rc"
}

# on_interrupt: what SIGINT does; callers may override it (quickstart treats Ctrl-C while
# serving as a normal stop). The EXIT trap does the cleanup either way.
on_interrupt() {
    echo >&2
    info "interrupted"
    exit 130
}

# install_traps: clean up on EXIT, INT and TERM. Call once, early.
install_traps() {
    trap _gpulut_on_exit EXIT
    trap on_interrupt INT
    trap 'exit 143' TERM
}

# ---------------------------------------------------------------------------------------
# Prerequisites
# ---------------------------------------------------------------------------------------

GPULUT_APT_UPDATED=0

# apt_install PKG...: install Debian/Ubuntu packages when root; otherwise exit with the
# exact command to run.
apt_install() {
    (($# > 0)) || return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        die "missing packages: $*; this is not a Debian/Ubuntu system (no apt-get): install the equivalents with your package manager and rerun"
    fi
    if ! is_root; then
        die "missing packages: $*; install them with:
    sudo apt-get update && sudo apt-get install -y $*
then rerun this script"
    fi
    if [[ "$GPULUT_APT_UPDATED" == 0 ]]; then
        info "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || die "apt-get update failed"
        GPULUT_APT_UPDATED=1
    fi
    info "installing: $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2 ||
        die "apt-get install -y $* failed"
}

# ensure_cargo: make sure cargo is on PATH (picks up ~/.cargo/bin); never installs Rust.
ensure_cargo() {
    if ! command -v cargo >/dev/null 2>&1 && [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]]; then
        export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo (Rust) is not installed. Install it with rustup:
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y
    . \"\$HOME/.cargo/env\"
then rerun this script"
}

# _pg_bindir_major DIR: print the major version of the Postgres server in DIR.
_pg_bindir_major() {
    local v
    v="$("$1/postgres" --version 2>/dev/null)" || return 1 # "postgres (PostgreSQL) 15.8 (Debian ...)"
    [[ "$v" =~ \)\ ([0-9]+) ]] || return 1
    printf '%s\n' "${BASH_REMATCH[1]}"
}

_pg_bindir_ok() { [[ -x "$1/initdb" && -x "$1/pg_ctl" && -x "$1/postgres" ]]; }

# find_pg_bindir [MAJOR]: set PG_BINDIR to a directory holding initdb, pg_ctl and postgres.
# Without MAJOR, the highest installed version wins; with MAJOR, only that version.
# Returns 1 (PG_BINDIR unset) when no server is installed.
find_pg_bindir() {
    local want="${1:-}" d best="" best_v=-1 v cands=()
    PG_BINDIR=""
    for d in /usr/lib/postgresql/*/bin /usr/pgsql-*/bin /usr/local/pgsql/bin; do
        [[ -d "$d" ]] && cands+=("$d")
    done
    if command -v pg_config >/dev/null 2>&1; then
        d="$(pg_config --bindir 2>/dev/null || true)"
        [[ -n "$d" ]] && cands+=("$d")
    fi
    if command -v initdb >/dev/null 2>&1; then
        d="$(dirname "$(readlink -f "$(command -v initdb)")")"
        cands+=("$d")
    fi
    for d in "${cands[@]}"; do
        _pg_bindir_ok "$d" || continue
        v="$(_pg_bindir_major "$d")" || continue
        [[ "$v" =~ ^[0-9]+$ ]] || continue
        if [[ -n "$want" ]]; then
            [[ "$v" == "$want" ]] || continue
        fi
        if ((v > best_v)); then
            best="$d"
            best_v="$v"
        fi
    done
    [[ -n "$best" ]] || return 1
    PG_BINDIR="$best"
    PG_MAJOR="$best_v"
    export PG_BINDIR PG_MAJOR
}

# pg_tool NAME: path of a Postgres client/server program (PG_BINDIR first, then PATH).
pg_tool() {
    if [[ -n "${PG_BINDIR:-}" && -x "$PG_BINDIR/$1" ]]; then
        printf '%s\n' "$PG_BINDIR/$1"
    elif command -v "$1" >/dev/null 2>&1; then
        command -v "$1"
    else
        die "$1 not found (looked in ${PG_BINDIR:-<no Postgres bindir>} and PATH)"
    fi
}

_ldconfig_bin() {
    if command -v ldconfig >/dev/null 2>&1; then
        command -v ldconfig
    elif [[ -x /sbin/ldconfig ]]; then
        echo /sbin/ldconfig
    elif [[ -x /usr/sbin/ldconfig ]]; then
        echo /usr/sbin/ldconfig
    fi
}

# have_vulkan_loader: libvulkan.so.1 is known to the dynamic linker.
have_vulkan_loader() {
    local ldc out
    ldc="$(_ldconfig_bin)"
    [[ -n "$ldc" ]] || return 1
    out="$("$ldc" -p 2>/dev/null || true)" # captured, not piped: `grep -q` + pipefail = SIGPIPE
    [[ "$out" == *"libvulkan.so.1 "* ]]
}

# vulkan_icds: print the installed Vulkan driver manifests (ICD json files), one a line.
vulkan_icds() {
    local d f
    for d in /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d; do
        for f in "$d"/*.json; do
            [[ -e "$f" ]] && printf '%s\n' "$f"
        done
    done
    return 0
}

# ensure_postgres_user: when root, make sure the `postgres` OS user exists (to run the server).
ensure_postgres_user() {
    is_root || return 0
    id -u postgres >/dev/null 2>&1 && return 0
    info "creating the system user 'postgres' (Postgres refuses to run as root)"
    useradd --system --user-group --no-create-home --home-dir /var/lib/postgresql \
        --shell /usr/sbin/nologin postgres || die "could not create the 'postgres' user"
}

# ensure_prereqs [curl]: check cargo, the Postgres server binaries, the Vulkan loader and a
# Vulkan driver (and curl when asked); install what is missing when root (apt-get), or exit
# with the exact command to run. Sets PG_BINDIR/PG_MAJOR.
ensure_prereqs() {
    local want_curl="${1:-}" missing=() icds
    ensure_cargo
    find_pg_bindir || missing+=(postgresql)
    have_vulkan_loader || missing+=(libvulkan1)
    icds="$(vulkan_icds)"
    [[ -n "$icds" ]] || missing+=(mesa-vulkan-drivers)
    if [[ "$want_curl" == curl ]] && ! command -v curl >/dev/null 2>&1 && is_root; then
        missing+=(curl)
    fi
    if ((${#missing[@]} > 0)); then
        apt_install "${missing[@]}"
        find_pg_bindir || die "the Postgres server binaries (initdb, pg_ctl, postgres) are still not found after installing postgresql"
        have_vulkan_loader || die "libvulkan.so.1 is still not found after installing libvulkan1"
        [[ -n "$(vulkan_icds)" ]] || die "no Vulkan driver (ICD json in /usr/share/vulkan/icd.d or /etc/vulkan/icd.d) after installing mesa-vulkan-drivers"
    fi
    ensure_postgres_user
    info "Postgres $PG_MAJOR in $PG_BINDIR; Vulkan drivers: $(vulkan_icds | xargs -r -n1 basename | tr '\n' ' ')"
}

# prereq_packages_missing: print the Debian packages ensure_prereqs would install
# (postgresql, libvulkan1, mesa-vulkan-drivers), one a line; installs nothing.
prereq_packages_missing() {
    (find_pg_bindir) || echo postgresql
    have_vulkan_loader || echo libvulkan1
    [[ -n "$(vulkan_icds)" ]] || echo mesa-vulkan-drivers
    return 0
}

# ensure_tools TOOL...: make sure each command exists (its Debian package has the same name,
# e.g. curl, jq). Installs what is missing when root; otherwise exits with one apt-get line
# that also lists what ensure_prereqs would need, so one command fixes everything.
ensure_tools() {
    local t missing=() extra
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 || missing+=("$t")
    done
    ((${#missing[@]} > 0)) || return 0
    if ! is_root; then
        mapfile -t extra < <(prereq_packages_missing)
        missing+=("${extra[@]}")
    fi
    apt_install "${missing[@]}"
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 || die "$t is still not found after installing it"
    done
}

# npm_ci_if_stale DIR: `npm ci` in DIR (from its package-lock.json) when DIR/node_modules is
# missing or older than the lockfile. npm stamps node_modules/.package-lock.json on every
# install, so that file's age is the install's.
npm_ci_if_stale() {
    local dir="$1" stamp="$1/node_modules/.package-lock.json"
    if [[ -f "$stamp" && ! "$dir/package-lock.json" -nt "$stamp" ]]; then
        return 0
    fi
    info "npm ci in $dir (from its package-lock.json)"
    (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund >&2) ||
        die "npm ci in $dir failed (it needs the npm registry); rerun, or run it yourself: (cd $dir && npm ci)"
}

# ensure_browser_test_deps: what the dashboard's browser test (server/tests/it/dashboard.rs)
# needs: a system Chromium (Debian's `chromium`; GPULUT_CHROMIUM points at another binary),
# Node.js and npm, and server/tests/browser/node_modules (playwright-core, which downloads no
# browser). Installs the packages when root, otherwise exits with the command to run; installs
# node_modules with npm ci when missing or older than the lockfile.
ensure_browser_test_deps() {
    local missing=() chromium="${GPULUT_CHROMIUM:-/usr/bin/chromium}"
    if [[ -n "${GPULUT_CHROMIUM:-}" && ! -x "$GPULUT_CHROMIUM" ]]; then
        die "GPULUT_CHROMIUM=$GPULUT_CHROMIUM is not an executable Chromium"
    fi
    [[ -x "$chromium" ]] || missing+=(chromium)
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    if ((${#missing[@]} > 0)); then
        apt_install "${missing[@]}"
        [[ -x "$chromium" ]] || die "$chromium is still missing after installing chromium (on Ubuntu, whose chromium is a snap, set GPULUT_CHROMIUM to a Chromium binary)"
        command -v node >/dev/null 2>&1 || die "node is still missing after installing nodejs"
        command -v npm >/dev/null 2>&1 || die "npm is still missing after installing npm"
    fi
    npm_ci_if_stale "$GPULUT_ROOT/server/tests/browser"
    info "browser tests: $("$chromium" --version 2>/dev/null | head -n1 || echo "$chromium"), node $(node --version)"
}

# ---------------------------------------------------------------------------------------
# Ports
# ---------------------------------------------------------------------------------------

# port_is_free PORT: nothing accepts connections on 127.0.0.1:PORT.
port_is_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# pick_free_port [PREFERRED]: print PREFERRED when free, else a free port in 20000-60000.
pick_free_port() {
    local p i
    if [[ -n "${1:-}" ]] && port_is_free "$1"; then
        printf '%s\n' "$1"
        return 0
    fi
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 40001))
        if port_is_free "$p"; then
            printf '%s\n' "$p"
            return 0
        fi
    done
    die "could not find a free TCP port on 127.0.0.1"
}

# ---------------------------------------------------------------------------------------
# Postgres
# ---------------------------------------------------------------------------------------

# as_pg_user CMD...: run CMD as the `postgres` OS user when root (Postgres refuses to run as
# root), as the current user otherwise. Runs from / so an unreadable cwd does not matter;
# pass absolute paths.
as_pg_user() {
    if is_root; then
        if command -v runuser >/dev/null 2>&1; then
            (cd / && runuser -u postgres -- "$@")
        else
            local cmd
            cmd="$(printf '%q ' "$@")"
            (cd / && su -s /bin/bash postgres -c "$cmd")
        fi
    else
        (cd / && "$@")
    fi
}

# pg_user_can_use DIR: the user Postgres runs as can reach and write DIR.
pg_user_can_use() {
    as_pg_user test -d "$1" -a -w "$1" -a -x "$1" 2>/dev/null
}

# pg_own PATH...: hand PATHs to the postgres user when root (no-op otherwise).
pg_own() {
    is_root || return 0
    chown postgres:postgres "$@"
}

# pg_initdb DATADIR: create a cluster (superuser `postgres`, trust auth, UTF8, C locale).
# DATADIR must be absolute and must not exist or be empty.
pg_initdb() {
    local dir="$1" out
    mkdir -p "$dir"
    chmod 700 "$dir"
    pg_own "$dir"
    if ! out="$(as_pg_user "$(pg_tool initdb)" -D "$dir" -U postgres --auth=trust \
        --encoding=UTF8 --no-locale 2>&1)"; then
        printf '%s\n' "$out" >&2
        die "initdb failed for $dir"
    fi
}

# pg_configure DATADIR SOCKDIR [fast]: listen on 127.0.0.1 only; Unix socket in SOCKDIR
# (empty: no Unix socket, TCP only); max_connections=200; with "fast", durability off
# (fsync, synchronous_commit, full_page_writes) for throwaway test clusters.
pg_configure() {
    local dir="$1" sock="$2" fast="${3:-}"
    {
        echo
        echo "# --- added by gpulut scripts/lib.sh ---"
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = '$sock'"
        echo "max_connections = 200"
        if [[ "$fast" == fast ]]; then
            echo "fsync = off"
            echo "synchronous_commit = off"
            echo "full_page_writes = off"
        fi
    } | as_pg_user tee -a "$dir/postgresql.conf" >/dev/null
}

# pg_start DATADIR PORT LOGFILE: start the server on PORT and wait (up to 30 s) until it
# accepts connections. LOGFILE must be writable by the Postgres user. Non-zero on failure.
pg_start() {
    local dir="$1" port="$2" log="$3"
    as_pg_user "$(pg_tool pg_ctl)" -D "$dir" -l "$log" -o "-p $port" -w -t 30 start >/dev/null 2>&1 ||
        return 1
    pg_wait_ready "$port" 30
}

# pg_wait_ready PORT [TIMEOUT_S]: poll pg_isready on 127.0.0.1:PORT.
pg_wait_ready() {
    local port="$1" timeout="${2:-30}" isready deadline
    isready="$(pg_tool pg_isready)"
    deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        "$isready" -q -h 127.0.0.1 -p "$port" -U postgres -t 2 && return 0
        sleep 0.2
    done
    return 1
}

# pg_is_running DATADIR: a postmaster is running on DATADIR.
pg_is_running() {
    [[ -f "$1/postmaster.pid" ]] || return 1
    as_pg_user "$(pg_tool pg_ctl)" -D "$1" status >/dev/null 2>&1
}

# pg_stop DATADIR [MODE]: stop the server (MODE: immediate (default) or fast); if pg_ctl
# cannot, kill the postmaster by the PID in postmaster.pid.
pg_stop() {
    local dir="$1" mode="${2:-immediate}" pid
    [[ -f "$dir/postmaster.pid" ]] || return 0
    if as_pg_user "$(pg_tool pg_ctl)" -D "$dir" -m "$mode" -w -t 30 stop >/dev/null 2>&1; then
        return 0
    fi
    pid="$(head -n1 "$dir/postmaster.pid" 2>/dev/null || true)"
    if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
        warn "pg_ctl stop failed; killing postmaster $pid"
        kill -KILL "$pid" 2>/dev/null || true
    fi
}

# start_throwaway_postgres: a fresh cluster in a temp dir on a free port, removed on exit.
# Exports DATABASE_URL=postgres://postgres@127.0.0.1:PORT/postgres (also PGTEST_DIR/PGTEST_PORT).
start_throwaway_postgres() {
    local base attempt port
    # Under /tmp when root, so the postgres user can traverse the parents; keep the path short
    # (a Unix socket path must stay under ~100 bytes).
    base=/tmp
    if ! is_root && [[ -n "${TMPDIR:-}" && -d "$TMPDIR" && ${#TMPDIR} -lt 60 ]]; then
        base="${TMPDIR%/}"
    fi
    PGTEST_DIR="$(mktemp -d "$base/gpulut-pg.XXXXXX")"
    add_cleanup stop_throwaway_postgres
    pg_own "$PGTEST_DIR"
    chmod 700 "$PGTEST_DIR"
    : >"$PGTEST_DIR/postgres.log"
    pg_own "$PGTEST_DIR/postgres.log"

    info "initdb a throwaway cluster in $PGTEST_DIR"
    pg_initdb "$PGTEST_DIR/data"
    pg_configure "$PGTEST_DIR/data" "$PGTEST_DIR" fast

    for attempt in 1 2 3 4 5; do
        port="$(pick_free_port)"
        if pg_start "$PGTEST_DIR/data" "$port" "$PGTEST_DIR/postgres.log"; then
            PGTEST_PORT="$port"
            DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
            export PGTEST_DIR PGTEST_PORT DATABASE_URL
            info "Postgres $PG_MAJOR ready on 127.0.0.1:$port (DATABASE_URL=$DATABASE_URL)"
            return 0
        fi
        pg_stop "$PGTEST_DIR/data" immediate
        if grep -qiE 'could not bind|address already in use' "$PGTEST_DIR/postgres.log" && ((attempt < 5)); then
            warn "port $port was taken meanwhile; trying another"
            continue
        fi
        break
    done
    warn "Postgres did not start; its log ($PGTEST_DIR/postgres.log):"
    sed 's/^/    /' "$PGTEST_DIR/postgres.log" >&2 || true
    die "could not start the throwaway Postgres"
}

# stop_throwaway_postgres: stop the throwaway cluster (immediate) and delete its temp dir.
stop_throwaway_postgres() {
    local dir="${PGTEST_DIR:-}"
    [[ -n "$dir" && -d "$dir" ]] || return 0
    pg_stop "$dir/data" immediate
    case "$dir" in
    */gpulut-pg.*) rm -rf -- "$dir" ;;
    esac
    PGTEST_DIR=""
}

# ---------------------------------------------------------------------------------------
# The agent's external framework adapters (device-agent/adapters): a Python venv
# ---------------------------------------------------------------------------------------

# ensure_adapters_venv [DIR]: a venv in DIR (default target/adapters-venv) with
# device-agent/adapters/requirements.txt installed; (re)installs when the venv is missing or
# older than the requirements file. Exports GPULUT_PYTHON (the venv's interpreter) for the
# agent and its tests. Dies with a clear message when Python or PyPI is out of reach.
ensure_adapters_venv() {
    local venv="${1:-target/adapters-venv}"
    local req="device-agent/adapters/requirements.txt"
    local stamp="$venv/.gpulut-requirements"
    [[ -f "$req" ]] || die "$req not found (run from the repository root)"
    if [[ ! -x "$venv/bin/python" || ! -f "$stamp" || "$req" -nt "$stamp" ]] ||
        ! cmp -s "$req" "$stamp"; then
        command -v python3 >/dev/null 2>&1 || die "python3 is needed for the agent's framework adapters (ncnn, onnxruntime); install Python 3.10+ with its venv module"
        info "creating the adapters' Python venv in $venv (pip install -r $req)"
        rm -rf "$venv"
        python3 -m venv "$venv" >&2 || die "python3 -m venv $venv failed (on Debian/Ubuntu: apt-get install python3-venv)"
        if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" >&2; then
            rm -rf "$venv"
            die "pip could not install $req (is PyPI reachable? behind a proxy, set HTTPS_PROXY; offline, point PIP_INDEX_URL or PIP_FIND_LINKS at a mirror)"
        fi
        cp "$req" "$stamp"
    fi
    GPULUT_PYTHON="$(cd "$venv" && pwd -P)/bin/python"
    export GPULUT_PYTHON
    info "framework adapters use $GPULUT_PYTHON"
}

# ---------------------------------------------------------------------------------------
# The API fuzzer (scripts/fuzz-api): schemathesis in a Python venv
# ---------------------------------------------------------------------------------------

# The exact schemathesis release fuzz-api runs: its checks and case generation change between
# releases, so figures are only comparable under one pin. Bump it on purpose.
GPULUT_SCHEMATHESIS_PIN="schemathesis==4.32.5"

# ensure_fuzz_venv [DIR]: a venv in DIR (default target/fuzz-venv) with schemathesis at
# GPULUT_SCHEMATHESIS_PIN; (re)installs when the venv is missing or was made for another pin.
# Exports FUZZ_PYTHON and FUZZ_ST (the venv's interpreter and `st`). Dies with a clear message
# when Python or PyPI is out of reach.
ensure_fuzz_venv() {
    local venv="${1:-target/fuzz-venv}"
    local stamp="$venv/.gpulut-pin"
    if [[ ! -x "$venv/bin/python" || ! -x "$venv/bin/st" || ! -f "$stamp" ]] ||
        [[ "$(cat "$stamp")" != "$GPULUT_SCHEMATHESIS_PIN" ]]; then
        command -v python3 >/dev/null 2>&1 || die "python3 is needed for the API fuzzer (schemathesis); install Python 3.10+ with its venv module"
        info "creating the fuzzer's Python venv in $venv (pip install $GPULUT_SCHEMATHESIS_PIN)"
        rm -rf "$venv"
        python3 -m venv "$venv" >&2 || die "python3 -m venv $venv failed (on Debian/Ubuntu: apt-get install python3-venv)"
        if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check "$GPULUT_SCHEMATHESIS_PIN" >&2; then
            rm -rf "$venv"
            die "pip could not install $GPULUT_SCHEMATHESIS_PIN (is PyPI reachable? behind a proxy, set HTTPS_PROXY; offline, point PIP_INDEX_URL or PIP_FIND_LINKS at a mirror)"
        fi
        printf '%s\n' "$GPULUT_SCHEMATHESIS_PIN" >"$stamp"
    fi
    FUZZ_PYTHON="$(cd "$venv" && pwd -P)/bin/python"
    FUZZ_ST="$(cd "$venv" && pwd -P)/bin/st"
    export FUZZ_PYTHON FUZZ_ST
    info "API fuzzer: $("$FUZZ_ST" --version 2>/dev/null || echo "$GPULUT_SCHEMATHESIS_PIN") in $venv"
}
