/**
 * Durable Streams protocol conformance suite, run against an already-running
 * server.
 *
 * The published `server-conformance-tests` CLI cannot find its own test file
 * when installed under node_modules, so we call the exported
 * `runConformanceTests()` ourselves (the same way the upstream repo does in
 * packages/server/test/conformance.test.ts).
 *
 * Environment:
 *   DS_BASE_URL              Origin of the server under test, WITHOUT a path
 *                            (the suite itself requests `/v1/stream/...` and
 *                            `/v1/stream/__ds/subscriptions/...`),
 *                            e.g. http://127.0.0.1:4437            (required)
 *   DS_LONG_POLL_TIMEOUT_MS  The server's long-poll timeout in ms. The suite
 *                            gives long-poll tests this + 1000 ms. (default 3000)
 *   DS_SUBSCRIPTIONS         "0"/"false" disables the subscription/webhook
 *                            tests (default: enabled)
 */
import { runConformanceTests } from "@durable-streams/server-conformance-tests"

const rawBaseUrl = process.env.DS_BASE_URL
if (!rawBaseUrl) {
  throw new Error(
    `DS_BASE_URL is required (e.g. DS_BASE_URL=http://127.0.0.1:4437). ` +
      `Use tests/streams/run_conformance.sh BASE_URL.`
  )
}

const parsed = new URL(rawBaseUrl)
if (parsed.pathname !== `/` && parsed.pathname !== ``) {
  // The suite builds URLs as `${baseUrl}/v1/stream/<name>`; a path prefix here
  // would be silently doubled up, so refuse it early.
  throw new Error(
    `DS_BASE_URL must be an origin without a path (got ${rawBaseUrl}); ` +
      `the suite appends /v1/stream/... itself.`
  )
}
const baseUrl = parsed.origin

const longPollTimeoutMs = Number.parseInt(
  process.env.DS_LONG_POLL_TIMEOUT_MS ?? `3000`,
  10
)
if (!Number.isFinite(longPollTimeoutMs) || longPollTimeoutMs <= 0) {
  throw new Error(
    `DS_LONG_POLL_TIMEOUT_MS must be a positive integer ` +
      `(got ${process.env.DS_LONG_POLL_TIMEOUT_MS})`
  )
}

const subscriptions = ![`0`, `false`, `no`, `off`].includes(
  (process.env.DS_SUBSCRIPTIONS ?? `1`).toLowerCase()
)

runConformanceTests({ baseUrl, longPollTimeoutMs, subscriptions })
