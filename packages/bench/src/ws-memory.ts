// fiberbot:edge a benchmark process entry point
/**
 * ws-memory: memory per idle connection, fiberbot WebSocket server against a bare `ws` server.
 * A load-generator process opens 5,000 connections and holds them idle; we take the heap (after
 * forced GC) with none and with all of them open, per side, in alternating rounds. The fiberbot
 * side runs with its defaults (a heartbeat fiber per connection included). The last line is one
 * JSON object. Goal: fiberbot bytes/connection <= 1.3 x bare ws.
 *
 * Options: --connections N (default 5000), --rounds N (default 2), --no-heartbeat, --no-registry.
 */
import { Effect, Layer } from "effect"
import { BotManager, Logging } from "@fiberbot/core"
import { Server } from "@fiberbot/adapters/websocket"
import { LoadGen } from "@fiberbot/testkit/websocket"
import { arg, bareEcho, echoBot, heapAfterGc, median, round } from "./ws/common.ts"

const connections = arg("connections", 5000)
const rounds = arg("rounds", 2)
// attribution switches: --no-heartbeat (no heartbeat fiber per connection), --no-registry (fiber registry off)
const heartbeat = !process.argv.includes("--no-heartbeat")
const registry = !process.argv.includes("--no-registry")

const waitFor = (predicate: () => boolean, ms: number) =>
  Effect.gen(function*() {
    const started = performance.now()
    while (!predicate() && performance.now() - started < ms) yield* Effect.sleep("50 millis")
  })

/** Bytes per connection: heap (and external buffers) with all connections idle, minus before. */
const measure = (url: string, open: () => number) =>
  Effect.scoped(Effect.gen(function*() {
    const before = heapAfterGc()
    const externalBefore = process.memoryUsage().external
    const load = yield* LoadGen.spawn({ url, mode: "idle", connections, seconds: 120 })
    const ready = yield* load.ready
    yield* waitFor(() => open() >= connections, 10_000)
    // idle for real: fiberbot parks a connection's reader 1 s after its last frame
    yield* Effect.sleep("2500 millis")
    const after = heapAfterGc()
    const externalAfter = process.memoryUsage().external
    const held = open()
    yield* load.stop
    yield* load.result
    yield* waitFor(() => open() === 0, 10_000)
    return {
      opened: Number(ready["opened"]),
      held,
      heapPerConn: (after - before) / held,
      externalPerConn: (externalAfter - externalBefore) / held
    }
  }))

const fiberbotRound = Effect.gen(function*() {
  const manager = yield* BotManager
  const ws = Server.make({ maxConnections: connections + 100, ...(heartbeat ? {} : { heartbeat: false as const }) })
  yield* manager.start(echoBot(ws))
  const figures = yield* measure(ws.url()!, () => ws.stats().open)
  yield* manager.stop("ws-echo", { deadline: "10 seconds" })
  return figures
}).pipe(Effect.provide(Layer.fresh(BotManager.layerWith({ fiberRegistry: registry }))))

const bareRound = Effect.scoped(Effect.flatMap(bareEcho, ({ url, wss }) => measure(url, () => wss.clients.size)))

const main = Effect.gen(function*() {
  console.log(`ws-memory: ${connections} idle connections, ${rounds} rounds per side (alternating)`)
  const sides = { fiberbot: [] as Array<{ heapPerConn: number; externalPerConn: number }>, bare: [] as Array<{ heapPerConn: number; externalPerConn: number }> }
  for (let r = 0; r < rounds; r++) {
    const order: Array<"fiberbot" | "bare"> = r % 2 === 0 ? ["fiberbot", "bare"] : ["bare", "fiberbot"]
    for (const side of order) {
      const f = yield* (side === "fiberbot" ? fiberbotRound : bareRound)
      sides[side].push(f)
      console.log(`  round ${r + 1} ${side.padEnd(8)} held ${f.held}: heap ${Math.round(f.heapPerConn)} B/conn, external ${Math.round(f.externalPerConn)} B/conn`)
    }
  }
  const fb = Math.round(median(sides.fiberbot.map((x) => x.heapPerConn)))
  const bare = Math.round(median(sides.bare.map((x) => x.heapPerConn)))
  const result = {
    bench: "ws-memory",
    connections,
    rounds,
    fiberbotHeapBytesPerConn: fb,
    bareHeapBytesPerConn: bare,
    fiberbotExternalBytesPerConn: Math.round(median(sides.fiberbot.map((x) => x.externalPerConn))),
    bareExternalBytesPerConn: Math.round(median(sides.bare.map((x) => x.externalPerConn))),
    ratio: round(fb / bare),
    heartbeat,
    registry,
    goal: 1.3,
    node: process.version
  }
  console.log(`heap per idle connection: fiberbot ${fb} B, bare ws ${bare} B, ratio ${result.ratio} (goal <= 1.3)`)
  console.log(JSON.stringify(result))
})

Effect.runPromise(main.pipe(Effect.provide(Logging.layer({ level: "warn" })))).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
