// fiberbot:edge a benchmark process entry point
/**
 * discord-callback: what one gateway dispatch costs each client without the network and the
 * emulator, to find where discord-dispatch's cost is. A diagnostic, not a goal: each client (the
 * fiberbot bot, fiberbot's shard alone, @discordjs/ws) connects to the emulator and becomes ready,
 * then its own `ws` object is driven directly: `message` is emitted with the same 850-byte
 * MESSAGE_CREATE text frames discord-dispatch sends, in bursts of 40 (34 KB; one read of a socket
 * brings up to 64 KB), the event loop turning between bursts. Measured per dispatch, until the
 * handler has seen them all: wall time, and CPU time (the GC's helper threads included).
 *
 * Options: --events N per round (default 100000), --rounds N (default 3), alternating sides after
 * a warm-up.
 */
import { Effect } from "effect"
import { WebSocket } from "ws"
import { Logging } from "@fiberbot/core"
import { DiscordEmulator } from "@fiberbot/testkit/discord"
import { arg, median, round } from "./args.ts"
import { messagePayloads } from "./discord/payloads.ts"
import { discordjs, fiberbot, shardOnly } from "./discord/sides.ts"

const events = arg("events", 100_000)
const rounds = arg("rounds", 3)
const BURST = 40

// The client side's `ws` object of each connection, taken as `ws` wires its socket (`setSocket`
// is `ws`'s own, not public API: this diagnostic pins `ws` 8.23).
const clients: Array<WebSocket> = []
const proto = WebSocket.prototype as unknown as { setSocket: (...args: Array<unknown>) => unknown }
const setSocket = proto.setSocket
proto.setSocket = function(this: WebSocket & { _isServer: boolean }, ...args: Array<unknown>) {
  if (!this._isServer) clients.push(this)
  return setSocket.apply(this, args)
}

const frames = messagePayloads(100).map((d, i) => Buffer.from(JSON.stringify({ t: "MESSAGE_CREATE", s: i + 1, op: 0, d })))
let cpu0 = process.cpuUsage()
let cpu = { user: 0, system: 0 }
/** The CPU time from the first frame until the handler has seen the last. */
const handled = () => {
  cpu = process.cpuUsage(cpu0)
}

/**
 * Emits the frames on the newest client's socket. (Its `pause()` does not hold `emit` back: a
 * client that falls behind queues the rest, and works it off before its handler has seen all.)
 */
const feed = Effect.promise(async () => {
  const ws = clients[clients.length - 1]!
  cpu0 = process.cpuUsage()
  for (let i = 0; i < events; i += BURST) {
    for (let j = 0; j < BURST && i + j < events; j++) ws.emit("message", frames[(i + j) % frames.length], false)
    await new Promise((resolve) => setImmediate(resolve))
  }
})

const sides = {
  fiberbot: (emu: DiscordEmulator.DiscordEmulator) => fiberbot(emu, false, events, feed, handled),
  shard: (emu: DiscordEmulator.DiscordEmulator) => shardOnly(emu, false, events, feed, handled),
  discordjs: (emu: DiscordEmulator.DiscordEmulator) => discordjs(emu, false, events, feed, handled)
}
type Side = keyof typeof sides

const main = Effect.gen(function*() {
  // the emulator only brings each client to READY: no dispatch goes through it
  const emu = yield* DiscordEmulator.make({ identifySpacing: 0, heartbeatInterval: 41_250 })
  console.log(`discord-callback: ${events} MESSAGE_CREATE dispatches per round, ${rounds} rounds, no network`)
  const figures: Record<Side, Array<{ wall: number; cpu: number }>> = { fiberbot: [], shard: [], discordjs: [] }
  for (const side of Object.keys(sides) as Array<Side>) yield* sides[side](emu) // warm-up
  for (let r = 0; r < rounds; r++) {
    const order: Array<Side> = r % 2 === 0 ? ["fiberbot", "shard", "discordjs"] : ["discordjs", "shard", "fiberbot"]
    for (const side of order) {
      globalThis.gc?.()
      const perSecond = yield* sides[side](emu)
      figures[side].push({ wall: 1e6 / perSecond, cpu: (cpu.user + cpu.system) / events })
    }
  }
  const summary = Object.fromEntries((Object.keys(figures) as Array<Side>).map((side) => [side, {
    wallMicros: round(median(figures[side].map((f) => f.wall))),
    cpuMicros: round(median(figures[side].map((f) => f.cpu)))
  }]))
  for (const [side, f] of Object.entries(summary)) console.log(`  ${side.padEnd(9)} ${f.wallMicros} µs wall, ${f.cpuMicros} µs CPU per dispatch`)
  console.log(JSON.stringify({ bench: "discord-callback", events, rounds, ...summary, node: process.version }))
})

Effect.runPromise(main.pipe(Effect.scoped, Effect.provide(Logging.layer({ level: "warn" })))).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
