// fiberbot:edge a benchmark process entry point
/**
 * discord-dispatch: gateway dispatches per second, from the emulator to a no-op handler.
 *
 * One in-process Discord emulator; each run connects a fresh client (one shard), the emulator
 * sends N MESSAGE_CREATE dispatches over 100 channels, and the run ends when the client's handler
 * has seen all N. The emulator writes each chunk of 1,000 in one go (`GatewayEmulator.corked`) and
 * waits until its socket has handed that chunk to the OS before the next (`whenDrained`).
 * Three clients, in alternating rounds after a warm-up, with and without zlib-stream:
 * - fiberbot as a bot: shard -> Update -> intake -> dispatcher -> handler fiber;
 * - fiberbot's gateway layer alone: one shard -> a no-op dispatch callback, on the shard's fast
 *   path as the adapter uses it;
 * - @discordjs/ws's WebSocketManager: socket -> `dispatch` event listener, its nearest equivalent.
 * The emulator's sending cost is in every figure alike. Prints each run, the medians and ratios;
 * the last line is one JSON object.
 *
 * Options: --events N (default 50000), --rounds N (default 5); for profiling one side:
 * --only fiberbot|shard|discordjs, --plain or --zlib (these skip the summary).
 */
import { Effect } from "effect"
import { Logging } from "@fiberbot/core"
import { DiscordEmulator } from "@fiberbot/testkit/discord"
import { messagePayloads } from "./discord/payloads.ts"
import { discordjs, fiberbot, shardOnly } from "./discord/sides.ts"
import { arg, median } from "./args.ts"

const events = arg("events", 50_000)
const rounds = arg("rounds", 5)
const CHUNK = 1000
const onlyIndex = process.argv.indexOf("--only")
const only = onlyIndex >= 0 ? process.argv[onlyIndex + 1] : undefined
const compressions = process.argv.includes("--plain") ? [false] : process.argv.includes("--zlib") ? [true] : [false, true]

const nextTick = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/** Sends `events` dispatches in chunks, letting the client read between chunks. */
const pour = (emu: DiscordEmulator.DiscordEmulator) =>
  Effect.gen(function*() {
    const payloads = messagePayloads(100)
    for (let i = 0; i < events; i += CHUNK) {
      const n = Math.min(CHUNK, events - i)
      // corked: one write per chunk, so the emulator's sending costs the same whichever client reads
      emu.gateway.corked(() => {
        for (let j = 0; j < n; j++) emu.gateway.dispatch("MESSAGE_CREATE", payloads[(i + j) % payloads.length]!)
      })
      yield* nextTick
      // and, as a real gateway's bounded send buffer would, waits until its socket has handed what
      // it buffered to the OS: an emulator that writes on regardless piles tens of MB of frames up
      // for a client that reads a little slower, and this process pays for collecting them
      yield* Effect.promise(() => emu.gateway.whenDrained())
    }
  })

const main = Effect.gen(function*() {
  const emu = yield* DiscordEmulator.make({ identifySpacing: 0, heartbeatInterval: 41_250 })
  console.log(`discord-dispatch: ${events} MESSAGE_CREATE dispatches per run, ${rounds} rounds, fiberbot vs @discordjs/ws (alternating), zlib-stream off and on`)
  const results: Record<string, { fiberbot: Array<number>; shard: Array<number>; discordjs: Array<number> }> = {}
  for (const compress of compressions) {
    const label = compress ? "zlib" : "plain"
    results[label] = { fiberbot: [], shard: [], discordjs: [] }
    const feed = pour(emu)
    yield* fiberbot(emu, compress, events, feed)
    yield* shardOnly(emu, compress, events, feed)
    yield* discordjs(emu, compress, events, feed)
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? ["fiberbot", "shard", "discordjs"] as const : ["discordjs", "shard", "fiberbot"] as const
      for (const side of order) {
        if (only !== undefined && side !== only) continue
        globalThis.gc?.()
        const rate = side === "fiberbot" ? yield* fiberbot(emu, compress, events, feed) : side === "shard" ? yield* shardOnly(emu, compress, events, feed) : yield* discordjs(emu, compress, events, feed)
        results[label]![side].push(rate)
        console.log(`  ${label.padEnd(5)} round ${r + 1} ${side.padEnd(9)} ${Math.round(rate).toLocaleString("en")} dispatches/s`)
      }
    }
  }
  const summary = (label: string) => {
    const f = median(results[label]!.fiberbot)
    const g = median(results[label]!.shard)
    const d = median(results[label]!.discordjs)
    return {
      fiberbotPerSec: Math.round(f),
      gatewayOnlyPerSec: Math.round(g),
      discordjsPerSec: Math.round(d),
      ratio: Number((f / d).toFixed(3)),
      gatewayOnlyRatio: Number((g / d).toFixed(3))
    }
  }
  if (compressions.length < 2 || only !== undefined) return
  const plain = summary("plain")
  const zlib = summary("zlib")
  for (const [label, s] of [["plain", plain], ["zlib ", zlib]] as const) {
    console.log(`${label}: fiberbot bot ${s.fiberbotPerSec.toLocaleString("en")}/s (ratio ${s.ratio}), fiberbot shard only ${s.gatewayOnlyPerSec.toLocaleString("en")}/s (ratio ${s.gatewayOnlyRatio}), @discordjs/ws ${s.discordjsPerSec.toLocaleString("en")}/s; goal >= 1.0`)
  }
  console.log(JSON.stringify({ bench: "discord-dispatch", events, rounds, plain, zlib, goal: 1.0, node: process.version }))
})

Effect.runPromise(main.pipe(Effect.scoped, Effect.provide(Logging.layer({ level: "warn" })))).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
