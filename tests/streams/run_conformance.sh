#!/usr/bin/env bash
# Run the Durable Streams conformance suite against a running server.
#
#   tests/streams/run_conformance.sh BASE_URL [RESULTS_JSON]
#
#   BASE_URL      server origin without a path, e.g. http://127.0.0.1:4437
#                 (the suite requests /v1/stream/... itself)
#   RESULTS_JSON  where vitest writes its JSON report
#                 (default: $DS_RESULTS_JSON or ${TMPDIR:-/tmp}/ds-conformance-results.json)
#
# Environment:
#   DS_LONG_POLL_TIMEOUT_MS  server long-poll timeout in ms (default 3000)
#   DS_SUBSCRIPTIONS         0/false to skip subscription tests (default on)
#   DS_TEST_TIMEOUT_MS       per-test timeout (default 10000)
#   DS_TEST_NAME_PATTERN     optional vitest -t filter (regex on test names)
#
# Runs `npm ci` first if node_modules is missing. Exits non-zero if vitest
# fails, if any test failed, or if no tests ran. Prints a one-line summary:
#   CONFORMANCE total=N passed=N failed=N skipped=N results=PATH
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 || "$1" == "-h" || "$1" == "--help" ]]; then
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
  exit 2
fi

BASE_URL="$1"
RESULTS_JSON="${2:-${DS_RESULTS_JSON:-${TMPDIR:-/tmp}/ds-conformance-results.json}}"
case "$RESULTS_JSON" in /*) ;; *) RESULTS_JSON="$PWD/$RESULTS_JSON" ;; esac
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="$HERE/conformance"

command -v node >/dev/null || { echo "run_conformance.sh: node not found" >&2; exit 127; }
command -v npm >/dev/null || { echo "run_conformance.sh: npm not found" >&2; exit 127; }

cd "$DIR"
if [[ ! -d node_modules/@durable-streams/server-conformance-tests || ! -x node_modules/.bin/vitest ]]; then
  echo "run_conformance.sh: installing node dependencies (npm ci)" >&2
  npm ci --no-audit --no-fund >&2
fi

mkdir -p "$(dirname "$RESULTS_JSON")"
rm -f "$RESULTS_JSON"

export DS_BASE_URL="$BASE_URL"
export DS_LONG_POLL_TIMEOUT_MS="${DS_LONG_POLL_TIMEOUT_MS:-3000}"
export DS_SUBSCRIPTIONS="${DS_SUBSCRIPTIONS:-1}"

args=(run --config vitest.config.mjs --reporter=default --reporter=json
      "--outputFile.json=$RESULTS_JSON")
if [[ -n "${DS_TEST_NAME_PATTERN:-}" ]]; then
  args+=(-t "$DS_TEST_NAME_PATTERN")
fi

set +e
./node_modules/.bin/vitest "${args[@]}"
status=$?
set -e

if [[ ! -s "$RESULTS_JSON" ]]; then
  echo "run_conformance.sh: no JSON report at $RESULTS_JSON (vitest exit $status)" >&2
  exit $(( status == 0 ? 1 : status ))
fi

node --input-type=module - "$RESULTS_JSON" <<'JS' || status=$(( status == 0 ? 1 : status ))
import { readFileSync } from "node:fs"
const r = JSON.parse(readFileSync(process.argv[2], "utf8"))
const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0)
console.log(
  `CONFORMANCE total=${r.numTotalTests} passed=${r.numPassedTests} ` +
    `failed=${r.numFailedTests} skipped=${skipped} results=${process.argv[2]}`
)
for (const file of r.testResults ?? []) {
  for (const t of file.assertionResults ?? []) {
    if (t.status === "failed") console.log(`FAILED: ${[...(t.ancestorTitles ?? []), t.title].join(" > ")}`)
  }
}
if (r.numFailedTests > 0 || r.numPassedTests === 0 || !r.success) process.exit(1)
JS
exit $status
