#!/usr/bin/env node
/**
 * Start the Node reference Durable Streams server (@durable-streams/server)
 * so the conformance suite / benchmarks can be pointed at it.
 *
 * Usage:
 *   node reference-server.mjs [--port 4473] [--host 127.0.0.1]
 *                             [--long-poll-timeout-ms 3000]
 *                             [--file | --data-dir DIR] [--no-webhooks]
 *
 *   --port N                 port to listen on (0 = pick a free one; default 4473)
 *   --host H                 bind address (default 127.0.0.1)
 *   --long-poll-timeout-ms N server long-poll timeout (default 3000; keep it
 *                            below ~4 s and pass the same value to the suite
 *                            via DS_LONG_POLL_TIMEOUT_MS)
 *   --file                   file-backed store in a fresh temp dir (removed on exit)
 *   --data-dir DIR           file-backed store in DIR (kept on exit)
 *   --no-webhooks            reject type=webhook subscriptions
 *
 * The first line printed on stdout is the server's base URL (origin, no path),
 * e.g. "http://127.0.0.1:4473". The process runs until SIGINT/SIGTERM.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { parseArgs } from "node:util"
import { DurableStreamTestServer } from "@durable-streams/server"

const { values } = parseArgs({
  options: {
    port: { type: `string`, default: `4473` },
    host: { type: `string`, default: `127.0.0.1` },
    "long-poll-timeout-ms": { type: `string`, default: `3000` },
    file: { type: `boolean`, default: false },
    "data-dir": { type: `string` },
    "no-webhooks": { type: `boolean`, default: false },
    help: { type: `boolean`, short: `h`, default: false },
  },
  strict: true,
})

if (values.help) {
  console.log(
    `usage: node reference-server.mjs [--port N] [--host H] ` +
      `[--long-poll-timeout-ms N] [--file | --data-dir DIR] [--no-webhooks]`
  )
  process.exit(0)
}

const port = Number.parseInt(values.port, 10)
const longPollTimeout = Number.parseInt(values[`long-poll-timeout-ms`], 10)
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`invalid --port ${values.port}`)
  process.exit(2)
}
if (!Number.isInteger(longPollTimeout) || longPollTimeout <= 0) {
  console.error(`invalid --long-poll-timeout-ms ${values[`long-poll-timeout-ms`]}`)
  process.exit(2)
}

let dataDir = values[`data-dir`]
let removeDataDir = false
if (!dataDir && values.file) {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `ds-reference-`))
  removeDataDir = true
}

const server = new DurableStreamTestServer({
  port,
  host: values.host,
  longPollTimeout,
  webhooks: !values[`no-webhooks`],
  ...(dataDir ? { dataDir } : {}),
})

const url = await server.start()
console.log(url)
console.error(
  `[reference-server] ${dataDir ? `file-backed (${dataDir})` : `in-memory`}, ` +
    `longPollTimeout=${longPollTimeout}ms, webhooks=${!values[`no-webhooks`]}`
)

let stopping = false
const shutdown = async (signal) => {
  if (stopping) return
  stopping = true
  console.error(`[reference-server] ${signal}: stopping`)
  try {
    await server.stop()
  } finally {
    if (removeDataDir) fs.rmSync(dataDir, { recursive: true, force: true })
    process.exit(0)
  }
}
process.on(`SIGINT`, () => void shutdown(`SIGINT`))
process.on(`SIGTERM`, () => void shutdown(`SIGTERM`))
