#!/usr/bin/env node
/**
 * Load generator for tests/benchmarks/streams.py: one phase against one Durable Streams server.
 *
 * Plain HTTP through undici's connection pool (keep-alive, one connection per concurrent
 * writer, no pipelining) rather than a client library, so the client adds as little as it can:
 * on a 2-core machine every microsecond it spends is taken from the server. undici comes from
 * tests/streams/conformance/node_modules (`npm ci` there), like the reference server.
 *
 *   node streams_load.mjs --url URL --phase append --count N [--writers W] [--batch B]
 *   node streams_load.mjs --url URL --phase read --count N [--writers W] [--passes P]
 *   node streams_load.mjs --url URL --phase sse --count N
 *
 *   --url URL         the stream's full URL, e.g. http://127.0.0.1:4437/v1/stream/bench/seq
 *   --phase           append: create the JSON stream (PUT); W writers each POST their share of
 *                     N messages, one request at a time, B messages per POST (B=1: the body is
 *                     one JSON object; B>1: a JSON array of B objects).
 *                     read: catch-up GETs from offset -1, following Stream-Next-Offset until
 *                     Stream-Up-To-Date; checks that exactly N messages come back, each writer's
 *                     in order (W as in the append run). --passes P reads it P times over
 *                     in the timed part (reported messages: N x P).
 *                     sse: create the stream, open `?offset=now&live=sse`, then append N
 *                     messages one at a time; a latency runs from just before the POST to the
 *                     arrival of the SSE data event holding that message, and the next POST
 *                     waits for both the response and the event.
 *   --warmup R        untimed requests first (default 400): append and sse POST to a separate
 *                     stream URL + "-warmup" (same writers and batch size); read reads the whole
 *                     stream once untimed. Warms the client's JIT, its connections and the server.
 *   --size BYTES      serialized size of one message (default 100)
 *   --wait-for-go     print {"ready":true} once set up and wait for a line on stdin before the
 *                     timed part (streams.py samples the servers' CPU in between)
 *
 * Messages are JSON objects {"w":WRITER,"i":INDEX,"p":"xxx…"} padded to --size bytes. Prints
 * one JSON object with the phase's result on stdout and exits 0; on any error (a non-2xx
 * answer, a wrong count, a stall) prints it on stderr and exits 1.
 */
import { createRequire } from "node:module"
import { performance } from "node:perf_hooks"
import * as readline from "node:readline"
import { parseArgs } from "node:util"

function fail(message) {
  process.stderr.write(`streams_load: ${message}\n`)
  process.exit(1)
}

const requireFromConformance = createRequire(
  new URL(`../streams/conformance/package.json`, import.meta.url)
)
let undici
try {
  undici = requireFromConformance(`undici`)
} catch {
  fail(`undici is not installed: run \`npm ci\` in tests/streams/conformance`)
}

const { values: args } = parseArgs({
  options: {
    url: { type: `string` },
    phase: { type: `string` },
    count: { type: `string` },
    writers: { type: `string`, default: `1` },
    batch: { type: `string`, default: `1` },
    size: { type: `string`, default: `100` },
    warmup: { type: `string`, default: `400` },
    passes: { type: `string`, default: `1` },
    "wait-for-go": { type: `boolean`, default: false },
  },
  strict: true,
})

if (!args.url || !args.phase || !args.count) fail(`--url, --phase and --count are required`)
const streamUrl = new URL(args.url)
const count = Number.parseInt(args.count, 10)
const writers = Number.parseInt(args.writers, 10)
const batch = Number.parseInt(args.batch, 10)
const size = Number.parseInt(args.size, 10)
const warmup = Number.parseInt(args.warmup, 10)
const passes = Number.parseInt(args.passes, 10)
for (const [name, value] of Object.entries({ count, writers, batch, size, passes })) {
  if (!Number.isInteger(value) || value <= 0) fail(`--${name} must be a positive integer`)
}
if (!Number.isInteger(warmup) || warmup < 0) fail(`--warmup must be a non-negative integer`)

const pool = new undici.Pool(streamUrl.origin, {
  connections: writers + 1,
  pipelining: 1,
  keepAliveTimeout: 60_000,
  headersTimeout: 60_000,
  bodyTimeout: 60_000,
})
const JSON_HEADERS = { "content-type": `application/json` }

/** One request; resolves {status, headers, body: Buffer | null} (body only if `read`). */
async function request(method, url, { headers, body, read = false } = {}) {
  const response = await pool.request({
    path: url.pathname + url.search,
    method,
    headers,
    body,
  })
  const ok = response.statusCode >= 200 && response.statusCode <= 299
  if (!ok) {
    const text = await response.body.text()
    fail(`${method} ${url} answered ${response.statusCode}: ${text.slice(0, 300)}`)
  }
  let data = null
  if (read) data = Buffer.from(await response.body.arrayBuffer())
  else await response.body.dump()
  return { status: response.statusCode, headers: response.headers, body: data }
}

async function waitForGo() {
  if (!args[`wait-for-go`]) return
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`)
  const lines = readline.createInterface({ input: process.stdin })
  for await (const _line of lines) break
  lines.close()
}

const padCache = new Map()
function message(w, i) {
  const head = `{"w":${w},"i":${i},"p":"`
  const padLength = Math.max(0, size - head.length - 2)
  let pad = padCache.get(padLength)
  if (pad === undefined) padCache.set(padLength, (pad = `x`.repeat(padLength)))
  return `${head}${pad}"}`
}

function body(w, i) {
  if (batch === 1) return message(w, i)
  const parts = new Array(batch)
  for (let k = 0; k < batch; k++) parts[k] = message(w, i + k)
  return `[${parts.join(`,`)}]`
}

async function createStream(url) {
  await request(`PUT`, url, { headers: JSON_HEADERS })
}

function cpuSeconds(start) {
  const used = process.cpuUsage(start)
  return (used.user + used.system) / 1e6
}

// ------------------------------------------------------------------ append

/** W sequential writers, each POSTing `perWriter` messages in bodies of `batch`. */
async function writeAll(url, perWriter) {
  let requests = 0
  async function writer(w) {
    for (let i = 0; i < perWriter; i += batch) {
      const response = await request(`POST`, url, { headers: JSON_HEADERS, body: body(w, i) })
      if (!response.headers[`stream-next-offset`]) fail(`POST answered without Stream-Next-Offset`)
      requests++
    }
  }
  await Promise.all(Array.from({ length: writers }, (_, w) => writer(w)))
  return requests
}

async function appendPhase() {
  const perWriter = count / writers
  if (!Number.isInteger(perWriter) || perWriter % batch !== 0) {
    fail(`--count ${count} must split evenly into ${writers} writers and batches of ${batch}`)
  }
  if (warmup > 0) {
    const warmUrl = new URL(`${streamUrl.href}-warmup`)
    await createStream(warmUrl)
    await writeAll(warmUrl, Math.max(1, Math.round(warmup / writers)) * batch)
  }
  await createStream(streamUrl)
  await waitForGo()
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const requests = await writeAll(streamUrl, perWriter)
  const seconds = (performance.now() - t0) / 1000
  return { messages: count, requests, seconds, client_cpu_s: cpuSeconds(cpu0) }
}

// ------------------------------------------------------------------ read

async function readAll() {
  const expectedNext = new Array(writers).fill(0)
  let messages = 0
  let requests = 0
  let bytes = 0
  let offset = `-1`
  for (;;) {
    const url = new URL(streamUrl)
    url.searchParams.set(`offset`, offset)
    const response = await request(`GET`, url, { read: true })
    requests++
    bytes += response.body.length
    const items = JSON.parse(response.body.toString(`utf8`) || `[]`)
    if (!Array.isArray(items)) fail(`GET ${url}: the body is not a JSON array`)
    for (const item of items) {
      if (item.i !== expectedNext[item.w]) {
        fail(`message w=${item.w} i=${item.i} out of order (expected i=${expectedNext[item.w]})`)
      }
      expectedNext[item.w]++
    }
    messages += items.length
    const next = response.headers[`stream-next-offset`]
    if (!next) fail(`GET ${url} answered without Stream-Next-Offset`)
    if (response.headers[`stream-up-to-date`] === `true`) break
    if (next === offset) fail(`GET ${url} made no progress`)
    offset = next
  }
  if (messages !== count) fail(`read ${messages} messages, expected ${count}`)
  return { messages, requests, bytes }
}

async function readPhase() {
  if (warmup > 0) await readAll()
  await waitForGo()
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const total = { messages: 0, requests: 0, bytes: 0 }
  for (let pass = 0; pass < passes; pass++) {
    const result = await readAll()
    total.messages += result.messages
    total.requests += result.requests
    total.bytes += result.bytes
  }
  const seconds = (performance.now() - t0) / 1000
  return { ...total, passes, seconds, client_cpu_s: cpuSeconds(cpu0) }
}

// ------------------------------------------------------------------ SSE latency

/** An SSE subscription that reports when each message arrives; resumes if the server ends it. */
class SseReader {
  constructor(url) {
    this.url = url
    this.waiters = new Map() // message index -> resolve(arrival time)
    this.arrived = new Map() // message index -> arrival time, for events that beat their waiter
    this.offset = `now`
    this.closing = false
    this.error = null
    this.client = new undici.Client(url.origin, { bodyTimeout: 0, headersTimeout: 30_000 })
  }

  /** Resolves once the response headers are in; events are read in the background. */
  async connect() {
    const url = new URL(this.url)
    url.searchParams.set(`offset`, this.offset)
    url.searchParams.set(`live`, `sse`)
    const response = await this.client.request({
      path: url.pathname + url.search,
      method: `GET`,
      headers: { accept: `text/event-stream` },
    })
    if (response.statusCode !== 200) {
      fail(`SSE ${url} answered ${response.statusCode}: ${(await response.body.text()).slice(0, 300)}`)
    }
    this.body = response.body
    this.pump(response.body).catch((err) => {
      if (!this.closing) this.error = err
    })
  }

  async pump(stream) {
    stream.setEncoding(`utf8`)
    let buffer = ``
    for await (const text of stream) {
      const now = performance.now()
      buffer += text
      for (;;) {
        const match = /\r\n\r\n|\n\n|\r\r/.exec(buffer)
        if (!match) break
        this.onEvent(buffer.slice(0, match.index), now)
        buffer = buffer.slice(match.index + match[0].length)
      }
    }
    // The server ended the event stream (its SSE lifetime): resume where we were.
    if (!this.closing) await this.connect()
  }

  onEvent(raw, now) {
    let type = `message`
    const data = []
    for (const line of raw.split(/\r\n|\r|\n/)) {
      if (line === `` || line.startsWith(`:`)) continue
      const colon = line.indexOf(`:`)
      const field = colon < 0 ? line : line.slice(0, colon)
      let value = colon < 0 ? `` : line.slice(colon + 1)
      if (value.startsWith(` `)) value = value.slice(1)
      if (field === `event`) type = value
      else if (field === `data`) data.push(value)
    }
    const text = data.join(`\n`)
    if (type === `control`) {
      const control = JSON.parse(text)
      if (control.streamNextOffset) this.offset = control.streamNextOffset
      return
    }
    if (type !== `data`) return
    const items = JSON.parse(text)
    for (const item of Array.isArray(items) ? items : [items]) {
      const resolve = this.waiters.get(item.i)
      if (resolve) {
        this.waiters.delete(item.i)
        resolve(now)
      } else this.arrived.set(item.i, now)
    }
  }

  /** When message `i` arrived (or will). */
  arrival(i) {
    const early = this.arrived.get(i)
    if (early !== undefined) {
      this.arrived.delete(i)
      return Promise.resolve(early)
    }
    return new Promise((resolve) => this.waiters.set(i, resolve))
  }

  async close() {
    this.closing = true
    this.body?.destroy()
    await this.client.destroy()
  }
}

function percentile(sorted, p) {
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[index]
}

function stallAfter(what, ms = 30_000) {
  let timer
  const promise = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no SSE event for ${what} after ${ms} ms`)), ms)
  })
  return { promise, cancel: () => clearTimeout(timer) }
}

async function ssePhase() {
  await createStream(streamUrl)
  const reader = new SseReader(streamUrl)
  await reader.connect()
  const post = (i) => request(`POST`, streamUrl, { headers: JSON_HEADERS, body: message(0, i) })
  async function roundTrip(i) {
    const arrived = reader.arrival(i)
    const start = performance.now()
    await post(i)
    const appended = performance.now()
    const stall = stallAfter(`message ${i}`)
    try {
      const at = await Promise.race([arrived, stall.promise])
      if (reader.error) throw reader.error
      return [at - start, appended - start]
    } finally {
      stall.cancel()
    }
  }
  // Negative indices: untimed messages that also prove the subscription is live.
  for (let i = -Math.max(1, warmup); i < 0; i++) await roundTrip(i)
  await waitForGo()
  const latencies = new Array(count)
  const appendLatencies = new Array(count)
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  for (let i = 0; i < count; i++) [latencies[i], appendLatencies[i]] = await roundTrip(i)
  const seconds = (performance.now() - t0) / 1000
  const cpu = cpuSeconds(cpu0)
  await reader.close()
  latencies.sort((a, b) => a - b)
  appendLatencies.sort((a, b) => a - b)
  return {
    messages: count,
    seconds,
    client_cpu_s: cpu,
    p50_ms: percentile(latencies, 50),
    p90_ms: percentile(latencies, 90),
    p99_ms: percentile(latencies, 99),
    max_ms: latencies[count - 1],
    mean_ms: latencies.reduce((a, b) => a + b, 0) / count,
    append_p50_ms: percentile(appendLatencies, 50),
    append_p99_ms: percentile(appendLatencies, 99),
  }
}

const phases = { append: appendPhase, read: readPhase, sse: ssePhase }
const run = phases[args.phase]
if (!run) fail(`unknown --phase ${args.phase} (append, read or sse)`)
try {
  const result = await run()
  process.stdout.write(`${JSON.stringify({ phase: args.phase, ...result })}\n`)
  await pool.close()
  process.exit(0)
} catch (err) {
  fail(err?.stack ?? String(err))
}
