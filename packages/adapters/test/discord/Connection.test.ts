import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Redacted } from "effect"
import { TestClock } from "effect/testing"
import { BotManager } from "@fiberbot/core"
import { DiscordEmulator } from "@fiberbot/testkit/discord"
import { DiscordShard, IdentifyThrottler, SessionStore } from "@fiberbot/adapters/discord"
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

  it.effect("start refuses a /gateway/bot answer it cannot use, with a typed error and no connection", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const manager = yield* BotManager
      const limit = { total: 1000, remaining: 1000, reset_after: 0, max_concurrency: 1 }
      for (const [body, why] of [
        [{ url: "not a url", shards: 1, session_start_limit: limit }, "url"],
        [{ url: emu.gatewayUrl, shards: 1e9, session_start_limit: limit }, "shards"],
        [{ url: emu.gatewayUrl, shards: 1.5, session_start_limit: limit }, "shards"],
        [{ url: emu.gatewayUrl, shards: 1 }, "session_start_limit"],
        [{ url: emu.gatewayUrl, shards: 1, session_start_limit: { ...limit, max_concurrency: 0 } }, "max_concurrency"],
        [{ url: emu.gatewayUrl, shards: 1, session_start_limit: { ...limit, remaining: "many" } }, "remaining"],
        [[], "not an object"]
      ] as const) {
        emu.script({ path: /gateway\/bot$/, status: 200, body })
        const exit = yield* pumped(Effect.exit(manager.start(echoBot(adapterFor(emu)))))
        assert.isTrue(Exit.isFailure(exit))
        const cause = String(Exit.isFailure(exit) ? exit.cause : "")
        assert.include(cause, "answered something unusable")
        assert.include(cause, why)
      }
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
    ["a corrupt zlib-stream frame", true, Buffer.from([0x78, 0x9c, 1, 2, 3, 4, 5, 0, 0, 0xff, 0xff])],
    // JSON, but not a gateway payload: nothing may read a field of these before they are checked
    ["a JSON null", false, "null"],
    ["a JSON array", false, "[0, 1]"],
    ["a payload without op", false, "{\"d\":{}}"],
    ["an op that is a string", false, "{\"op\":\"0\",\"t\":\"MESSAGE_CREATE\",\"d\":{}}"],
    ["a dispatch without t", false, "{\"op\":0,\"s\":1,\"d\":{}}"],
    ["a dispatch whose t is a number", false, "{\"op\":0,\"t\":5,\"d\":{}}"],
    ["a sequence number that is a string", false, "{\"op\":0,\"t\":\"MESSAGE_CREATE\",\"s\":\"7\",\"d\":{}}"]
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

  it.effect("dispatches whose data is not what their event needs: the process, the connection and later messages go on", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const discord = adapterFor(emu)
      yield* startBot(echoBot(discord))
      // well-formed payloads (op, s and t are right) with hostile `d`: once these crashed the
      // process from the socket's callback or stopped the shard's reader
      const hostile: Array<[string, unknown]> = [
        ["MESSAGE_CREATE", null],
        ["MESSAGE_CREATE", {}],
        ["MESSAGE_CREATE", { id: {}, channel_id: [1], content: 5 }],
        ["MESSAGE_CREATE", "text"],
        ["INTERACTION_CREATE", null],
        ["INTERACTION_CREATE", { id: "1" }],
        ["INTERACTION_CREATE", { id: "2", token: "t", application_id: "3", type: 2, data: { name: "x", options: [null, 5] } }],
        ["GUILD_CREATE", 42],
        ["TYPING_START", [null]]
      ]
      for (const [t, d] of hostile) emu.gateway.dispatch(t, d)
      emu.messageCreate({ channelId: "5", content: "still here" })
      yield* pump(() => [...emu.rest.messages.values()].some((m) => m.content === "echo: still here"), { what: "message after the hostile dispatches" })
      assert.strictEqual(clientOps(emu, 6).length, 0, "no resume was needed")
      assert.strictEqual(clientOps(emu, 2).length, 1)
      assert.strictEqual(discord.shards()[0]!.state, "ready")
      yield* stopBot("echo")
    })))

  it.effect("a payload the shard's callback cannot take is logged and skipped; the reader goes on", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const seen: Array<string> = []
      const throttler = yield* IdentifyThrottler.make({ maxConcurrency: 1, remaining: 10 })
      const shard = yield* DiscordShard.make({
        id: 0,
        count: 1,
        token: Redacted.make(emu.token),
        intents: 513,
        gatewayUrl: emu.gatewayUrl,
        compress: false,
        openTimeoutMs: 5_000,
        helloTimeoutMs: 5_000,
        readyTimeoutMs: 5_000,
        closeTimeoutMs: 1_000,
        backoffBaseMs: 1_000,
        backoffMaxMs: 10_000,
        stableAfterMs: 60_000,
        maxResumeFailures: 2,
        inboxHighWater: 64,
        store: SessionStore.memory(),
        throttler,
        // no fast path: every dispatch goes through the reader fiber
        onDispatch: (p) =>
          (p.d as { content?: string } | null)?.content === "poison"
            ? Effect.die(new Error("handler bug"))
            : Effect.sync(() => {
              if (p.t === "MESSAGE_CREATE") seen.push((p.d as { content: string }).content)
            })
      })
      const run = yield* Effect.forkScoped(shard.run)
      yield* pumped(shard.ready, "1 second")
      emu.messageCreate({ channelId: "1", content: "before" })
      emu.messageCreate({ channelId: "1", content: "poison" })
      emu.messageCreate({ channelId: "1", content: "after" })
      yield* pump(() => seen.length === 2, { what: "both good messages" })
      assert.deepStrictEqual(seen, ["before", "after"])
      assert.strictEqual(shard.status().state, "ready")
      assert.strictEqual(clientOps(emu, 6).length + clientOps(emu, 2).length, 1, "no new connection")
      yield* Fiber.interrupt(run)
    })))

  it.effect("READY with a broken resume_gateway_url: the resume goes to the gateway URL instead", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make({ resumeUrl: "not a url" })
      const discord = adapterFor(emu)
      yield* startBot(echoBot(discord))
      emu.gateway.sendOp(7, null)
      yield* pump(() => clientOps(emu, 6).length === 1 && discord.shards()[0]!.state === "ready", { step: "1 second", what: "resumed" })
      assert.strictEqual(clientOps(emu, 2).length, 1, "resumed, not identified again")
      emu.messageCreate({ channelId: "5", content: "after the resume" })
      yield* pump(() => [...emu.rest.messages.values()].some((m) => m.content === "echo: after the resume"), { what: "echo" })
      yield* stopBot("echo")
    })))

  for (const [what, interval, check] of [
    ["a huge heartbeat_interval still beats within 5 minutes", 1e12, (beats: number) => beats >= 1],
    ["a tiny heartbeat_interval beats at most once a second", 0.5, (beats: number) => beats <= 12]
  ] as const) {
    it.effect(what, () =>
      withManager(Effect.gen(function*() {
        const emu = yield* DiscordEmulator.make({ heartbeatInterval: interval })
        const discord = adapterFor(emu)
        yield* startBot(echoBot(discord), "100 millis")
        const before = clientOps(emu, 1).length
        const acks = () => emu.frames().filter((f) => f.direction === "out" && f.op === 11).length
        for (let i = 0; i < 10; i++) {
          yield* TestClock.adjust(interval > 1000 ? "31 seconds" : "1 second")
          // each ACK reaches the shard before the clock moves on: no beat may look like a zombie's
          yield* pump(() => acks() >= clientOps(emu, 1).length, { what: "ACKs" })
          yield* realSleep(2)
        }
        assert.isTrue(check(clientOps(emu, 1).length - before), `${clientOps(emu, 1).length - before} beats`)
        assert.strictEqual(clientOps(emu, 6).length, 0, "no zombie closes and resumes")
        yield* stopBot("echo")
      })))
  }
})
