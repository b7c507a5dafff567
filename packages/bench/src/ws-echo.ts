// fiberbot:edge a benchmark process entry point
/**
 * ws-echo: echo throughput and latency of the fiberbot WebSocket server against an idiomatic bare
 * `ws` echo server. The same load generator (a separate process: 100 connections, one 64-byte
 * message in flight each) runs against each side in alternating rounds. Prints each round, then
 * the medians and ratios; the last line is one JSON object.
 * Goals: throughput >= 0.9 x bare ws, p99 <= 1.2 x bare ws.
 *
 * Options: --connections N (default 100), --seconds N per round (default 5), --rounds N (default 3), --size N (default 64).
 */
import { Effect, Layer } from "effect"
import { BotManager, Logging } from "@fiberbot/core"
import { Server } from "@fiberbot/adapters/websocket"
import { LoadGen } from "@fiberbot/testkit/websocket"
import { arg, bareEcho, echoBot, median, round } from "./ws/common.ts"

const connections = arg("connections", 100)
const seconds = arg("seconds", 5)
const rounds = arg("rounds", 3)
const size = arg("size", 64)

interface Figures {
  readonly perSecond: number
  readonly p50Ms: number
  readonly p99Ms: number
}

const drive = (url: string) =>
  Effect.scoped(Effect.gen(function*() {
    const load = yield* LoadGen.spawn({ url, mode: "echo", connections, seconds, size })
    const r = yield* load.result
    return { perSecond: Number(r["perSecond"]), p50Ms: Number(r["p50Ms"]), p99Ms: Number(r["p99Ms"]) } satisfies Figures
  }))

const fiberbotRound = Effect.gen(function*() {
  const manager = yield* BotManager
  const ws = Server.make({ outbound: { capacity: 1024 } })
  yield* manager.start(echoBot(ws))
  const figures = yield* drive(ws.url()!)
  yield* manager.stop("ws-echo", { deadline: "5 seconds" })
  return figures
}).pipe(Effect.provide(Layer.fresh(BotManager.layer)))

const bareRound = Effect.scoped(Effect.flatMap(bareEcho, ({ url }) => drive(url)))

const main = Effect.gen(function*() {
  console.log(`ws-echo: ${connections} connections, ${size}-byte messages, ${seconds}s per round, ${rounds} rounds per side (alternating)`)
  const sides = { fiberbot: [] as Array<Figures>, bare: [] as Array<Figures> }
  for (let r = 0; r < rounds; r++) {
    const order: Array<"fiberbot" | "bare"> = r % 2 === 0 ? ["fiberbot", "bare"] : ["bare", "fiberbot"]
    for (const side of order) {
      globalThis.gc?.()
      const f = yield* (side === "fiberbot" ? fiberbotRound : bareRound)
      sides[side].push(f)
      console.log(`  round ${r + 1} ${side.padEnd(8)} ${Math.round(f.perSecond).toLocaleString("en")} msg/s  p50 ${f.p50Ms.toFixed(3)} ms  p99 ${f.p99Ms.toFixed(3)} ms`)
    }
  }
  const summary = (xs: Array<Figures>) => ({
    perSecond: Math.round(median(xs.map((x) => x.perSecond))),
    p50Ms: round(median(xs.map((x) => x.p50Ms))),
    p99Ms: round(median(xs.map((x) => x.p99Ms)))
  })
  const fb = summary(sides.fiberbot)
  const bare = summary(sides.bare)
  const result = {
    bench: "ws-echo",
    connections,
    size,
    seconds,
    rounds,
    fiberbot: fb,
    bare,
    throughputRatio: round(fb.perSecond / bare.perSecond),
    p50Ratio: round(fb.p50Ms / bare.p50Ms),
    p99Ratio: round(fb.p99Ms / bare.p99Ms),
    goals: { throughputRatio: 0.9, p99Ratio: 1.2 },
    node: process.version
  }
  console.log(`throughput fiberbot/bare: ${result.throughputRatio} (goal >= 0.9); p99 fiberbot/bare: ${result.p99Ratio} (goal <= 1.2)`)
  console.log(JSON.stringify(result))
})

Effect.runPromise(main.pipe(Effect.provide(Logging.layer({ level: "warn" })))).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
