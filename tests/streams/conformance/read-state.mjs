// Read a State-Protocol stream with the official TypeScript client and materialize it with
// @durable-streams/state's MaterializedState, once per read mode; print the result as JSON.
//
//   node read-state.mjs STREAM_URL
//
// Output: {"catch-up": {type: {key: value}}, "long-poll": {...}, "sse": {...}}
import { stream } from "@durable-streams/client"
import { MaterializedState } from "@durable-streams/state"

const url = process.argv[2]
if (!url) {
  console.error("usage: node read-state.mjs STREAM_URL")
  process.exit(2)
}

const modes = { "catch-up": false, "long-poll": "long-poll", sse: "sse" }
const out = {}
for (const [name, live] of Object.entries(modes)) {
  const response = await stream({ url, offset: "-1", live })
  const items = await response.json()
  const state = new MaterializedState()
  state.applyBatch(items)
  const types = {}
  for (const item of items) {
    types[item.type] ??= Object.fromEntries(state.getType(item.type))
  }
  out[name] = types
}
console.log(JSON.stringify(out))
