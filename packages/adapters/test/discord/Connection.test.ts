import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { TestClock } from "effect/testing"
import { BotManager } from "@fiberbot/core"
import { DiscordEmulator } from "@fiberbot/testkit/discord"
import { adapterFor, echoBot, pump, pumped, realSleep, startBot, stopBot, withManager } from "./helpers.ts"

const clientOps = (emu: DiscordEmulator.DiscordEmulator, op: number) =>
  emu.frames().filter((f) => f.direction === "in" && f.op === op)

describe("Discord shard connection", () => {
  it.effect("heartbeats: the first within one interval, then one per interval", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make({ heartbeatInterval: 10_000 })
      const discord = adapterFor(emu)
      yield* startBot(echoBot(discord), "100 millis")
      const base = clientOps(emu, 1).length
      const t0 = clientOps(emu, 2)[0]!.at
      // move to exactly 10 s after HELLO, then one interval at a time
      yield* TestClock.adjust(Math.max(0, t0 + 10_000 - (emu.frames().at(-1)?.at ?? t0)))
      yield* pump(() => clientOps(emu, 1).length >= 1, { what: "first beat" })
      for (let k = 1; k <= 4; k++) {
        yield* TestClock.adjust("10 seconds")
        yield* pump(() => clientOps(emu, 1).length === base + 1 + k || clientOps(emu, 1).length === 1 + k, { what: `beat ${k + 1}` })
        // let the ACK reach the shard before the clock jumps a whole interval again
        const acks = emu.frames().filter((f) => f.direction === "out" && f.op === 11).length
        yield* pump(() => acks >= clientOps(emu, 1).length)
        yield* realSleep(10)
      }
      const beats = clientOps(emu, 1).map((f) => f.at)
      for (let i = 1; i < beats.length; i++) assert.strictEqual(beats[i]! - beats[i - 1]!, 10_000)
      assert.isBelow(beats[0]! - t0, 10_000)
      assert.strictEqual(emu.gateway.live(0).length, 1, "ACKed beats never look like a zombie")
      assert.isNumber(discord.shards()[0]!.latency)
      yield* stopBot("echo")
    })))

  it.effect("no HELLO before the deadline -> reconnect", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const discord = adapterFor(emu, { timing: { openTimeoutMs: 1000, helloTimeoutMs: 4000 } })
      yield* startBot(echoBot(discord))
      emu.gateway.hello = false
      emu.close(4000, 0)
      yield* pump(() => emu.gateway.live().length === 1 && emu.gateway.live()[0]!.session === undefined, { step: "250 millis", what: "silent connection" })
      emu.gateway.hello = true
      yield* pump(() => clientOps(emu, 6).length === 1 && discord.shards()[0]!.state === "ready", { step: "1 second", what: "resumed after the HELLO deadline" })
      yield* stopBot("echo")
    })))

  it.effect("reconnect backoff grows with jitter during an outage and resets after a stable period", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const discord = adapterFor(emu, { timing: { backoffBaseMs: 1000, backoffMaxMs: 16_000, stableAfterMs: 30_000 } })
      yield* startBot(echoBot(discord))
      const refusals = () => emu.frames().filter((f) => f.direction === "out" && (f.d as { reason?: string } | undefined)?.reason === "refused").map((f) => f.at)
      emu.gateway.refuseWith = 4000
      emu.close(4000, 0)
      yield* pump(() => refusals().length === 6, { step: "250 millis", rounds: 2000, what: "six refused attempts" })
      const r = refusals()
      const gaps = r.slice(1).map((t, i) => t - r[i]!)
      // attempt n waits base * 2^n scaled by a jitter in [0.5, 1], capped at 16 s (arrival times at the
      // emulator can lag a few clock steps behind the client's attempt, hence the 1 s allowance)
      gaps.forEach((gap, i) => {
        const full = Math.min(16_000, 1000 * 2 ** (i + 1))
        assert.isAtLeast(gap, full * 0.5 - 1000, `gap ${i}: ${gaps.join(",")}`)
        assert.isAtMost(gap, full + 1000, `gap ${i}: ${gaps.join(",")}`)
      })
      assert.isAtLeast(gaps.at(-1)!, 4 * Math.min(...gaps.slice(0, 2)) - 2000, `growing: ${gaps.join(",")}`)
      emu.gateway.refuseWith = undefined
      yield* pump(() => discord.shards()[0]!.state === "ready", { step: "500 millis", rounds: 2000, what: "back" })
      yield* TestClock.adjust("31 seconds") // stable: the next drop starts from the base delay again
      yield* pump(() => true)
      const before = clientOps(emu, 6).length
      emu.close(4000, 0)
      const dropped = emu.frames().at(-1)!.at
      yield* pump(() => clientOps(emu, 6).length === before + 1, { step: "100 millis", rounds: 2000, what: "quick resume" })
      assert.isAtMost(clientOps(emu, 6).at(-1)!.at - dropped, 1600)
      yield* stopBot("echo")
    })))

  it.effect("start refuses when session_start_limit.remaining is below the shard count", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make({ shards: 2, sessionStartRemaining: 1 })
      const manager = yield* BotManager
      const exit = yield* pumped(Effect.exit(manager.start(echoBot(adapterFor(emu)))))
      assert.isTrue(Exit.isFailure(exit))
      assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), "session starts left")
      assert.strictEqual(emu.gateway.connections.size, 0)
    })))

  it.effect("re-identifies count against session_start_limit: when it runs out the shard stops with a typed error", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make({ sessionStartRemaining: 2 })
      const discord = adapterFor(emu)
      yield* startBot(echoBot(discord))
      emu.invalidSession(false, 0)
      yield* pump(() => clientOps(emu, 2).length === 2 && discord.shards()[0]!.state === "ready", { step: "1 second", what: "second identify" })
      emu.invalidSession(false, 0)
      yield* pump(() => discord.shards()[0]!.state === "failed", { step: "1 second", what: "exhausted" })
      assert.include(discord.shards()[0]!.error!, "session_start_limit")
      for (let i = 0; i < 30; i++) yield* pumped(Effect.void, "2 seconds")
      assert.strictEqual(clientOps(emu, 2).length, 2)
      yield* stopBot("echo")
    })))

  it.effect("shardIds: a process runs only its shards of the total", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make({ shards: 4, maxConcurrency: 4 })
      const discord = adapterFor(emu, { shardIds: [1, 3] })
      yield* startBot(echoBot(discord))
      assert.deepStrictEqual(discord.shards().map((s) => [s.id, s.count, s.state]), [[1, 4, "ready"], [3, 4, "ready"]])
      assert.deepStrictEqual(clientOps(emu, 2).map((f) => (f.d as { shard: Array<number> }).shard).sort(), [[1, 4], [3, 4]])
      emu.messageCreate({ channelId: "7", content: "to shard 3", shard: 3 })
      yield* pump(() => emu.rest.messages.size === 1, { what: "reply" })
      yield* stopBot("echo")
    })))
})

describe("Discord shard: hostile input", () => {
  for (const [what, compress, data] of [
    ["a frame that is not JSON", false, "{this is not json"],
    ["a corrupt zlib-stream frame", true, Buffer.from([0x78, 0x9c, 1, 2, 3, 4, 5, 0, 0, 0xff, 0xff])]
  ] as const) {
    it.effect(`${what} ends that connection only; the shard resumes and loses nothing`, () =>
      withManager(Effect.gen(function*() {
        const emu = yield* DiscordEmulator.make()
        const discord = adapterFor(emu, { compress })
        yield* startBot(echoBot(discord))
        emu.gateway.sendRaw(data, 0)
        emu.messageCreate({ channelId: "5", content: "after the garbage" })
        yield* pump(() => clientOps(emu, 6).length === 1 && discord.shards()[0]!.state === "ready", { step: "1 second", what: "resume" })
        yield* pump(() => [...emu.rest.messages.values()].some((m) => m.content === "echo: after the garbage"), { what: "message after garbage" })
        assert.strictEqual(clientOps(emu, 2).length, 1)
        yield* stopBot("echo")
      })))
  }
})
