import { defineConfig } from "vitest/config"

const int = (name, fallback) => {
  const value = Number.parseInt(process.env[name] ?? ``, 10)
  return Number.isFinite(value) && value > 0 ? value : fallback
}

export default defineConfig({
  test: {
    include: [`conformance.test.mjs`],
    // The suite talks to an external server over HTTP; nothing to isolate.
    fileParallelism: false,
    // Per-test default (vitest's own default is 5000). Long-poll tests set
    // their own timeout (DS_LONG_POLL_TIMEOUT_MS + 1000) and override this.
    testTimeout: int(`DS_TEST_TIMEOUT_MS`, 10_000),
    hookTimeout: int(`DS_HOOK_TIMEOUT_MS`, 30_000),
    // Retries hide flakiness; keep at 0 unless explicitly asked for.
    retry: int(`DS_TEST_RETRY`, 0),
    passWithNoTests: false,
  },
})
