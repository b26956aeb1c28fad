#!/usr/bin/env bash
# Build librdkafka's own regression suite (from Debian's source package) and
# run its broker tests against a Kafka-compatible broker: ours by default, or
# any broker given with --bootstrap. See tests/librdkafka/README.md.
#
# Exit codes: 0 the suite ran to completion (failures or not, unless --strict),
#             1 --strict and at least one test failed,
#             2 usage / setup / build / broker start-up error,
#             3 the suite did not run to completion (runner crashed or hung).
# cleanup() and its helpers run only from traps, which shellcheck cannot see.
# shellcheck disable=SC2317
set -euo pipefail

LIBRDKAFKA_VERSION=2.8.0
LIBRDKAFKA_DEB_VERSION=2.8.0-1 # trixie's package; bookworm only has 2.0.2

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)

# ---------------------------------------------------------------- defaults --
BOOTSTRAP=${NETSCRIPT_BOOTSTRAP:-}
BUILD_DIR=${NETSCRIPT_LIBRDKAFKA_DIR:-$HOME/.cache/netscript/librdkafka}
NETSCRIPT_BIN=${NETSCRIPT_BIN:-$REPO_ROOT/.venv/bin/netscript}
KAFKA_VERSION=${TEST_KAFKA_VERSION:-3.7.0}
# These six drive the JVM Kafka tools (kafka-configs.sh, kafka-acls.sh, ...)
# through KAFKA_PATH / ZK_ADDRESS, which we do not have.
SKIP_TESTS=${TESTS_SKIP:-0052,0077,0098,0109,0115,0119}
ONLY_TESTS=${TESTS:-}
PARALLEL=${NETSCRIPT_LIBRDKAFKA_PARALLEL:-2}
BROKER_START_TIMEOUT=${NETSCRIPT_BROKER_START_TIMEOUT:-60}
# Hard cap for one test-runner invocation. The runner has per-test timeouts
# of its own; this only guards against the runner itself wedging.
RUN_TIMEOUT=${NETSCRIPT_LIBRDKAFKA_RUN_TIMEOUT:-3600}
MAX_RESUMES=${NETSCRIPT_LIBRDKAFKA_MAX_RESUMES:-10}
STRICT=0
QUICK=0
SOCKEM=0
VERBOSE=0
EXTRA_CONF=()

usage() {
    cat <<EOF
Usage: $0 [options]

Builds librdkafka $LIBRDKAFKA_VERSION's test suite (cached in
\$NETSCRIPT_LIBRDKAFKA_DIR, default ~/.cache/netscript/librdkafka) and runs
its broker tests against a Kafka-compatible broker.

Options:
  --bootstrap HOST:PORT  Broker to test (env NETSCRIPT_BOOTSTRAP). Without it
                         the script starts '.venv/bin/netscript log serve' on a
                         free 127.0.0.1 port with a temporary data dir.
  --strict               Exit 1 if any test failed (default: exit 0 whenever
                         the suite ran to completion).
  --quick                Pass -Q: fewer iterations / less data; also skips
                         0082 and the later parts of 0081 and 0113.
  --sockem               Also run the sockem tests (client-side network fault
                         injection; upstream CI always skips them with -E).
  --tests LIST           Only these test numbers, e.g. 0001,0012 (env TESTS).
  --skip LIST            Test numbers to skip (env TESTS_SKIP; default
                         $SKIP_TESTS, the tests needing JVM Kafka tools).
  --kafka-version V      Broker version the suite assumes (env
                         TEST_KAFKA_VERSION, default $KAFKA_VERSION); tests
                         needing a newer broker are skipped.
  --parallel N           Tests run concurrently (default $PARALLEL).
  --conf KEY=VALUE       Extra line for the suite's test.conf (repeatable),
                         e.g. --conf debug=protocol,broker.
  --verbose              Stream the full suite output (always in the log).
  -h, --help             This help.
EOF
}

die() { echo "run_suite: error: $*" >&2; exit 2; }
say() { echo "run_suite: $*" >&2; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --bootstrap) [[ $# -ge 2 ]] || die "--bootstrap needs HOST:PORT"; BOOTSTRAP=$2; shift 2 ;;
        --bootstrap=*) BOOTSTRAP=${1#*=}; shift ;;
        --strict) STRICT=1; shift ;;
        --quick) QUICK=1; shift ;;
        --sockem) SOCKEM=1; shift ;;
        --tests) [[ $# -ge 2 ]] || die "--tests needs a list"; ONLY_TESTS=$2; shift 2 ;;
        --skip) [[ $# -ge 2 ]] || die "--skip needs a list"; SKIP_TESTS=$2; shift 2 ;;
        --kafka-version) [[ $# -ge 2 ]] || die "--kafka-version needs a version"; KAFKA_VERSION=$2; shift 2 ;;
        --parallel) [[ $# -ge 2 ]] || die "--parallel needs N"; PARALLEL=$2; shift 2 ;;
        --conf) [[ $# -ge 2 ]] || die "--conf needs KEY=VALUE"; EXTRA_CONF+=("$2"); shift 2 ;;
        --verbose) VERBOSE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
[[ $PARALLEL =~ ^[1-9][0-9]*$ ]] || die "--parallel must be a positive integer"

SRC_DIR=$BUILD_DIR/librdkafka-$LIBRDKAFKA_VERSION
TESTS_DIR=$SRC_DIR/tests
RUNNER=$TESTS_DIR/test-runner

T_START=$SECONDS

# ------------------------------------------------------------------ build --
# Root is needed only for apt; use sudo when we are not root.
as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root (or sudo) to run: $*"
    fi
}

ensure_deb_src() {
    # bookworm ships librdkafka 2.0.2; the suite we want is trixie's 2.8.0.
    # Only deb-src lines are added, so apt fetches trixie's *source* index
    # and never offers trixie *binary* packages for installation.
    local f=/etc/apt/sources.list.d/netscript-src.sources
    if [[ ! -e $f ]]; then
        say "adding deb-src entries for bookworm and trixie in $f"
        as_root tee "$f" >/dev/null <<'EOF'
# Added by NetScript tests/librdkafka/run_suite.sh: source packages only
# (deb-src), so trixie's binaries never become install candidates.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    fi
    if ! apt-cache showsrc librdkafka 2>/dev/null | grep -qx "Version: $LIBRDKAFKA_DEB_VERSION"; then
        say "apt-get update (to see source package librdkafka $LIBRDKAFKA_DEB_VERSION)"
        as_root apt-get update -q >/dev/null
        apt-cache showsrc librdkafka 2>/dev/null | grep -qx "Version: $LIBRDKAFKA_DEB_VERSION" \
            || die "apt does not know source package librdkafka=$LIBRDKAFKA_DEB_VERSION (is $f right?)"
    fi
}

ensure_build_deps() {
    # dpkg-dev: apt-get source unpacks with dpkg-source. python3: 'make libs'
    # generates the linker script with lds-gen.py. No libsasl2/libcurl: we
    # configure with --disable-gssapi --disable-curl.
    local pkgs=(build-essential dpkg-dev pkg-config python3 rapidjson-dev
                zlib1g-dev libssl-dev libzstd-dev liblz4-dev)
    local missing=() p
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        say "installing build dependencies: ${missing[*]}"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

build_suite() {
    mkdir -p "$BUILD_DIR"
    local log=$BUILD_DIR/build.log
    ensure_build_deps
    if [[ ! -f $SRC_DIR/configure ]]; then
        ensure_deb_src
        say "fetching source: apt-get source librdkafka=$LIBRDKAFKA_DEB_VERSION into $BUILD_DIR"
        # As root apt warns that _apt cannot write here and downloads
        # unsandboxed; that is harmless.
        (cd "$BUILD_DIR" && apt-get source -q "librdkafka=$LIBRDKAFKA_DEB_VERSION") >"$log" 2>&1 \
            || { tail -n 20 "$log" >&2; die "apt-get source failed (full log: $log)"; }
    fi
    local jobs
    jobs=$(nproc 2>/dev/null || echo 2)
    say "building librdkafka and tests/test-runner in $SRC_DIR (a few minutes; log: $log)"
    # --no-download: use Debian's system libraries, never fetch deps.
    # --disable-curl/--disable-gssapi: OIDC and Kerberos are not under test.
    if ! (cd "$SRC_DIR" &&
          ./configure --no-download --disable-curl --disable-gssapi &&
          make -j"$jobs" libs &&
          make -j"$jobs" -C tests test-runner) >>"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "build failed (full log: $log)"
    fi
    [[ -x $RUNNER ]] || die "build finished but $RUNNER is missing (log: $log)"
}

if [[ -x $RUNNER ]]; then
    say "using existing build: $RUNNER"
else
    build_suite
    say "build done in $((SECONDS - T_START))s"
fi

# ----------------------------------------------------------------- broker --
BROKER_PID=""
BROKER_DATA=""
BROKER_LOG=""
RUN_DIR=""

# Is this pid running? A zombie (exited, not yet reaped) does not count.
alive() {
    local st
    st=$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $st && $st != Z ]]
}

# Send TERM to a process group we started, then KILL after $2 seconds.
# No 'wait' here: a 'wait' inside a trap that interrupted another 'wait'
# can block on every child, i.e. on the broker we are about to stop.
stop_group() {
    local pid=$1 grace=$2 i
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 5; i++)); do
        alive "$pid" || return 0
        sleep 0.2
    done
    say "pid $pid ignored SIGTERM for ${grace}s; sending SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? rpid
    trap - INT TERM
    rpid=$(cat "$RUN_DIR/runner.pid" 2>/dev/null || true)
    if [[ -n $rpid ]] && alive "$rpid"; then
        say "stopping test-runner (process group $rpid)"
        stop_group "$rpid" 5
    fi
    if [[ -n $BROKER_PID ]] && alive "$BROKER_PID"; then
        say "stopping broker (pid $BROKER_PID)"
        # The broker runs in its own session (setsid), so its process group
        # holds it and any workers it spawned, and nothing else.
        stop_group "$BROKER_PID" 10
    fi
    [[ -n $BROKER_DATA && -d $BROKER_DATA ]] && rm -rf "$BROKER_DATA"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_open() { # host port -> 0 if a TCP connect succeeds within 1s
    local host=${1#[}; host=${host%]}
    timeout 1 bash -c "exec 3<>/dev/tcp/$host/$2" 2>/dev/null
}

split_hostport() { # "host:port" or "[v6]:port" -> sets BHOST BPORT
    BPORT=${1##*:}
    BHOST=${1%:*}
    [[ -n $BHOST && $BPORT =~ ^[0-9]+$ ]] || die "bad broker address '$1' (want HOST:PORT)"
}

wait_for_port() { # host port deadline_s [pid]
    local deadline=$((SECONDS + $3))
    until port_open "$1" "$2"; do
        if [[ -n ${4:-} ]] && ! alive "$4"; then
            [[ -n $BROKER_LOG ]] && tail -n 30 "$BROKER_LOG" >&2
            die "broker exited before accepting connections (log: $BROKER_LOG)"
        fi
        if ((SECONDS >= deadline)); then
            [[ -n $BROKER_LOG ]] && tail -n 30 "$BROKER_LOG" >&2
            die "nothing accepts connections on $1:$2 after $3s"
        fi
        sleep 0.2
    done
}

RUN_DIR=$BUILD_DIR/runs/$(date +%Y%m%d-%H%M%S)-$$
mkdir -p "$RUN_DIR"

if [[ -n $BOOTSTRAP ]]; then
    split_hostport "$BOOTSTRAP"
    say "using broker at $BOOTSTRAP"
    wait_for_port "$BHOST" "$BPORT" 10
else
    [[ -x $NETSCRIPT_BIN ]] || die "$NETSCRIPT_BIN not found: install the project (.venv) or pass --bootstrap HOST:PORT"
    BPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    BHOST=127.0.0.1
    BOOTSTRAP=$BHOST:$BPORT
    BROKER_DATA=$(mktemp -d "${TMPDIR:-/tmp}/netscript-librdkafka-data.XXXXXX")
    BROKER_LOG=$RUN_DIR/broker.log
    # --default-partitions 4: the suite's default scenario
    # (tests/scenarios/default.json) is a broker whose auto-created topics
    # get 4 partitions; tests such as 0012 produce to partitions 0..3 of
    # topics they never create. NETSCRIPT_BROKER_ARGS adds more options.
    # shellcheck disable=SC2206 # word splitting of the extra args is wanted
    BROKER_CMD=("$NETSCRIPT_BIN" log serve --host "$BHOST" --port "$BPORT" --data-dir "$BROKER_DATA"
                --default-partitions 4 ${NETSCRIPT_BROKER_ARGS:-})
    say "starting broker: ${BROKER_CMD[*]} (log: $BROKER_LOG)"
    # setsid: own process group, so cleanup can stop the broker and its
    # children without touching anything else.
    setsid "${BROKER_CMD[@]}" >"$BROKER_LOG" 2>&1 </dev/null &
    BROKER_PID=$!
    wait_for_port "$BHOST" "$BPORT" "$BROKER_START_TIMEOUT" "$BROKER_PID"
    say "broker up on $BOOTSTRAP (pid $BROKER_PID)"
fi

# ------------------------------------------------------------------- run --
# The suite reads its broker list and settings from test.conf; we write our
# own per run and point RDKAFKA_TEST_CONF at it, leaving the cached tree clean.
TEST_CONF=$RUN_DIR/test.conf
{
    echo "metadata.broker.list=$BOOTSTRAP"
    # Like upstream's trivup-generated test.conf: the broker listens on IPv4
    # loopback, so do not let 'localhost' resolve to ::1 first.
    [[ $BHOST == \[* ]] || echo "broker.address.family=v4"
    for kv in "${EXTRA_CONF[@]}"; do echo "$kv"; done
} >"$TEST_CONF"

# test-runner flags (tests/test.c):
#   -L  skip TEST_F_LOCAL tests: those use librdkafka's built-in mock cluster
#       or no broker at all, so they say nothing about the broker under test.
#   -K  skip tests flagged as known-flaky upstream (also the runner's default).
#   -E  skip sockem tests (client-side socket fault injection); upstream's
#       own CI always passes -E. --sockem re-enables them.
#   -Q  only with --quick: it shortens tests and skips parts of broker tests.
#   -pN run N tests concurrently.
# Instead of -r (report in the cwd with a date in its name) we set
# TEST_REPORT to a fixed path per segment.
FLAGS=(-L -K "-p$PARALLEL")
((SOCKEM)) || FLAGS+=(-E)
((QUICK)) && FLAGS+=(-Q)

PARSE_PY=$(cat <<'PYEOF'
# Merge the runner's per-segment reports into one result.
#   argv: state.json segment_report.json segment_log manual_test_numbers
# A test's first definitive state (PASSED/FAILED/SKIPPED) wins; tests still
# NOT STARTED ("DNS") or RUNNING when a segment died stay pending. Prints the
# test numbers still pending (comma-separated) on stdout.
import json, os, re, sys
state_path, report_path, log_path, manual = sys.argv[1:5]
manual = set(filter(None, manual.split(",")))
state = json.load(open(state_path)) if os.path.exists(state_path) else {"tests": {}}
tests = state["tests"]
seg = {}
try:
    with open(report_path) as f:
        seg = {k: v["state"] for k, v in json.load(f)["tests"].items()}
except Exception as e:  # runner died before writing a report
    if os.path.exists(report_path):
        print(f"run_suite: could not read {report_path}: {e}", file=sys.stderr)
# Whatever the report says, the log's per-test lines are authoritative for
# tests that finished (and the only source if there is no report).
ansi = re.compile(r"\x1b\[[0-9;]*m")
done_re = re.compile(r"={5,} Test (\S+) (PASSED|FAILED|SKIPPED) ={5,}")
fail_re = re.compile(r'### Test "([^" ]+)[^"]*" failed at (\S+) at .*###')
reasons = state.setdefault("reasons", {})
lines = [ansi.sub("", l) for l in open(log_path, errors="replace").read().splitlines()]
for i, line in enumerate(lines):
    m = done_re.search(line)
    if m:
        seg[m.group(1)] = m.group(2)
    m = fail_re.search(line)
    if m and m.group(1) not in reasons:
        msg = lines[i + 1].strip() if i + 1 < len(lines) else ""
        reasons[m.group(1)] = f"{m.group(2)}: {msg}"[:200]
for line in lines:  # per-test timeouts are reported as a plain failure line
    m = re.search(r"Test (\S+?)(?: \([^)]*\))? timed out \(timeout set to (\d+) seconds\)", line)
    if m:
        seg[m.group(1)] = "FAILED"
        reasons.setdefault(m.group(1), f"timed out after {m.group(2)}s")
seg.pop("<MAIN>", None)
for name, st in seg.items():
    if tests.get(name) in (None, "DNS", "RUNNING"):
        tests[name] = st
json.dump(state, open(state_path, "w"), indent=1, sort_keys=True)
for name in list(tests):  # never started on purpose: not pending
    if name.split("_")[0] in manual and tests[name] == "DNS":
        tests[name] = "SKIPPED"
pending = sorted({n.split("_")[0] for n, st in tests.items() if st in ("DNS", "RUNNING")})
print(",".join(pending))
PYEOF
)

# One line per finished test on the terminal unless --verbose; the full
# output always goes to the segment's log.
progress() {
    if ((VERBOSE)); then cat; return; fi
    sed -u -E 's/\x1b\[[0-9;]*m//g' |
        grep --line-buffered -E '={5,} Test \S+ (PASSED|FAILED) ={5,}|### Test ".*" failed at |timed out \(timeout set to' |
        sed -u -E -e 's/^.*={5,} (Test \S+ \S+) ={5,}.*$/  \1/' \
            -e 's/^.*### Test "([^"]+)" failed at (\S+) at .*$/  Test \1 FAILED at \2/' |
        awk '!/<MAIN>/ && !seen[$0]++ { print; fflush() }' || true
}

# Manual tests (TEST_F_MANUAL, e.g. 8000_idle) are skipped only when TESTS is
# unset; a resumed segment sets TESTS, so keep them out of its list.
MANUAL_TESTS=""
if [[ -z $ONLY_TESTS ]]; then
    MANUAL_TESTS=$(python3 - "$TESTS_DIR/test.c" <<'PYEOF'
import re, sys
src = open(sys.argv[1]).read()
print(",".join(sorted({m.group(1) for m in re.finditer(r"_TEST\((\d{4})_\w+,\s*([^,)]*)", src)
                       if "TEST_F_MANUAL" in m.group(2)})))
PYEOF
)
fi

STATE=$RUN_DIR/results.json
rm -f "$STATE"
SEG_TESTS=$ONLY_TESTS
COMPLETE=0
T_RUN=$SECONDS
say "running suite (flags: ${FLAGS[*]}; TEST_KAFKA_VERSION=$KAFKA_VERSION; TESTS_SKIP=$SKIP_TESTS${ONLY_TESTS:+; TESTS=$ONLY_TESTS}); logs in $RUN_DIR"
for seg in $(seq 0 "$MAX_RESUMES"); do
    LOG=$RUN_DIR/suite-$seg.log
    REPORT=$RUN_DIR/report-$seg.json
    rm -f "$RUN_DIR/runner.pid" "$RUN_DIR/runner.rc"
    # The runner goes in the background under 'timeout' (which gives it its
    # own process group) and we 'wait' for it, so that Ctrl-C / TERM reach
    # our trap at once and cleanup can stop the runner's group by its id.
    (
        cd "$TESTS_DIR"
        export RDKAFKA_TEST_CONF=$TEST_CONF TEST_REPORT=$REPORT \
               TEST_KAFKA_VERSION=$KAFKA_VERSION TESTS_SKIP=$SKIP_TESTS \
               RDKAFKA_GITVER="librdkafka-$LIBRDKAFKA_DEB_VERSION"
        if [[ -n $SEG_TESTS ]]; then export TESTS=$SEG_TESTS; else unset TESTS; fi
        unset TESTS_SKIP_BEFORE SUBTESTS
        # run-test.sh runs 'git rev-parse' for a version string; outside a
        # git checkout that only prints a harmless error into the log.
        timeout --kill-after=30 "$RUN_TIMEOUT" ./run-test.sh "${FLAGS[@]}" bare &
        echo $! >"$RUN_DIR/runner.pid"
        rc=0; wait $! || rc=$?
        echo "$rc" >"$RUN_DIR/runner.rc"
    ) 2>&1 | tee "$LOG" | progress &
    wait $! || true
    RC=$(cat "$RUN_DIR/runner.rc" 2>/dev/null || echo 255)
    PENDING=$(python3 -c "$PARSE_PY" "$STATE" "$REPORT" "$LOG" "$MANUAL_TESTS")
    if [[ -n $ONLY_TESTS && -n $PENDING ]]; then
        # Resume only within the tests that were asked for.
        PENDING=$(python3 -c 'import sys; only = set(sys.argv[1].split(",")); print(",".join(t for t in sys.argv[2].split(",") if t[:4] in only))' "$ONLY_TESTS" "$PENDING")
    fi
    if grep -q "ALL-TESTS: duration" "$LOG"; then
        COMPLETE=1
        break
    fi
    if [[ $RC -eq 124 || $RC -eq 137 ]] && ! grep -q "timed out (timeout set to" "$LOG"; then
        say "the runner hit the ${RUN_TIMEOUT}s cap (exit $RC); not resuming"
        break
    fi
    if [[ ! -s $REPORT ]]; then
        say "the runner died (exit $RC) without writing a report; not resuming (log: $LOG)"
        break
    fi
    if [[ -z $PENDING ]]; then
        COMPLETE=1
        break
    fi
    # A per-test timeout makes test-runner SIGKILL itself, taking every other
    # test down with it. Resume with the tests that had not finished, so one
    # hanging test does not hide the rest of the suite.
    say "runner stopped early (a test timed out); resuming with: $PENDING"
    SEG_TESTS=$PENDING
done
T_RUN=$((SECONDS - T_RUN))

if [[ -n $BROKER_PID ]] && ! alive "$BROKER_PID"; then
    say "WARNING: the broker exited during the run; results are suspect (log: $BROKER_LOG)"
    tail -n 20 "$BROKER_LOG" >&2 || true
fi

# ---------------------------------------------------------------- summary --
[[ -f $STATE ]] || { say "no results (see $RUN_DIR)"; exit 3; }
SUMMARY=$(python3 - "$STATE" "$COMPLETE" <<'PYEOF'
import json, sys
s = json.load(open(sys.argv[1]))
t, reasons = s["tests"], s.get("reasons", {})
by = lambda st: sorted(n for n, v in t.items() if v == st)
passed, failed, pending = by("PASSED"), by("FAILED"), by("DNS") + by("RUNNING")
print(f"PASSED={len(passed)} FAILED={len(failed)}")
for n in failed:
    print(f"  FAILED {n}" + (f"  -- {reasons[n]}" if n in reasons else ""))
if pending and sys.argv[2] == "0":  # after a full run, DNS = not built here
    print("  not finished: " + " ".join(pending))
PYEOF
)
PASSED=$(sed -n '1s/.*PASSED=\([0-9]*\).*/\1/p' <<<"$SUMMARY")
FAILED=$(sed -n '1s/.*FAILED=\([0-9]*\).*/\1/p' <<<"$SUMMARY")

echo
echo "librdkafka $LIBRDKAFKA_DEB_VERSION suite against $BOOTSTRAP: ${FLAGS[*]}, TEST_KAFKA_VERSION=$KAFKA_VERSION, TESTS_SKIP=$SKIP_TESTS"
echo "run time: ${T_RUN}s (total $((SECONDS - T_START))s); logs and results.json: $RUN_DIR"
if [[ $FAILED -gt 0 ]]; then
    echo "failing tests:"
    sed -n '/^  FAILED /p' <<<"$SUMMARY"
fi
sed -n '/^  not finished:/p' <<<"$SUMMARY"
((COMPLETE)) || echo "WARNING: the suite did not run to completion"
echo "librdkafka: $PASSED passed, $FAILED failed"

((COMPLETE)) || exit 3
if ((STRICT)) && [[ $FAILED -gt 0 ]]; then exit 1; fi
exit 0
