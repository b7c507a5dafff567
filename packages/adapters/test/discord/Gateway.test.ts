import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import { Bot, BotManager, Router } from "@fiberbot/core"
import { PayloadTooLarge, SessionStore } from "@fiberbot/adapters/discord"
import { DiscordEmulator } from "@fiberbot/testkit/discord"
import { adapterFor, echoBot, pump, pumped, startBot, stopBot, withManager } from "./helpers.ts"

/** A bot that records the text of every message it handles, in order. */
const recorder = (discord: ReturnType<typeof adapterFor>, seen: Array<string>, name = "rec") =>
  Bot.make({
    name,
    adapters: [discord.adapter],
    router: Router.empty.on("message", (ctx) => Effect.sync(() => void seen.push(ctx.text ?? ""))),
    options: { handlerTimeout: "10 seconds", startTimeout: "10 minutes", concurrency: 1 }
  })

const clientOps = (emu: DiscordEmulator.DiscordEmulator, op: number) =>
  emu.frames().filter((f) => f.direction === "in" && f.op === op)

type Action = "resume" | "identify" | "fatal"
const POLICY: ReadonlyArray<[number, Action]> = [
  [1000, "resume"],
  [4000, "resume"],
  [4001, "resume"],
  [4002, "resume"],
  [4003, "identify"],
  [4004, "fatal"],
  [4005, "identify"],
  [4007, "identify"],
  [4008, "resume"],
  [4009, "identify"],
  [4010, "fatal"],
  [4011, "fatal"],
  [4012, "fatal"],
  [4013, "fatal"],
  [4014, "fatal"]
]

describe("Discord gateway", () => {
  it.effect("identifies, turns MESSAGE_CREATE into a message update and replies through REST", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const discord = adapterFor(emu)
      yield* startBot(echoBot(discord))
      assert.strictEqual(discord.shards()[0]!.state, "ready")
      emu.messageCreate({ channelId: "42", content: "hello" })
      yield* pump(() => emu.rest.messages.size === 1, { what: "reply" })
      const sent = [...emu.rest.messages.values()][0]!
      assert.strictEqual(sent.channel_id, "42")
      assert.strictEqual(sent.content, "echo: hello")
      const post = emu.requests().find((r) => r.method === "POST")!
      assert.match(post.headers["user-agent"]!, /^DiscordBot \(https?:\/\/\S+, [\d.]+\)$/)
      assert.strictEqual(post.headers.authorization, "<redacted>")
      yield* stopBot("echo")
    })))

  for (const [code, action] of POLICY) {
    it.effect(`close ${code} from Discord -> ${action}`, () =>
      withManager(Effect.gen(function*() {
        const emu = yield* DiscordEmulator.make()
        const discord = adapterFor(emu)
        yield* startBot(echoBot(discord))
        const before = { identify: clientOps(emu, 2).length, resume: clientOps(emu, 6).length }
        emu.close(code, 0)
        if (action === "fatal") {
          yield* pump(() => discord.shards()[0]!.state === "failed", { step: "1 second", what: "shard failed" })
          assert.include(discord.shards()[0]!.error!, String(code))
          // never loops: a minute later there was no new connection
          for (let i = 0; i < 60; i++) yield* pumped(Effect.void, "1 second")
          assert.strictEqual(clientOps(emu, 2).length, before.identify)
          assert.strictEqual(clientOps(emu, 6).length, before.resume)
          assert.strictEqual(emu.gateway.live().length, 0)
        } else {
          const op = action === "resume" ? 6 : 2
          const key = action === "resume" ? "resume" : "identify"
          yield* pump(() => clientOps(emu, op).length > before[key] && discord.shards()[0]!.state === "ready", { step: "1 second", what: `${action} after ${code}` })
          assert.strictEqual(clientOps(emu, action === "resume" ? 2 : 6).length, before[action === "resume" ? "identify" : "resume"])
          const conn = emu.gateway.live(0)[0]!
          assert.strictEqual(conn.path, action === "resume" ? "/resume" : "/gateway")
        }
        assert.strictEqual(discord.shards()[0]!.lastClose?.code, code)
        yield* stopBot("echo")
      })))
  }

  it.effect("no close frame at all (1006) -> resume", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const discord = adapterFor(emu)
      yield* startBot(echoBot(discord))
      emu.terminate(0)
      yield* pump(() => clientOps(emu, 6).length === 1 && discord.shards()[0]!.state === "ready", { step: "1 second", what: "resume" })
      assert.strictEqual(clientOps(emu, 2).length, 1)
      yield* stopBot("echo")
    })))

  it.effect("a bad token fails start with the typed 4004 error and never retries", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const discord = adapterFor(emu, { gatewayUrl: emu.gatewayUrl, shards: 1, maxConcurrency: 1 })
      const bad = adapterFor({ ...emu, token: "wrong" }, { gatewayUrl: emu.gatewayUrl, shards: 1, maxConcurrency: 1 })
      void discord
      const manager = yield* BotManager
      const exit = yield* pumped(Effect.exit(manager.start(echoBot(bad, "bad"))))
      assert.isTrue(Exit.isFailure(exit))
      assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), "4004")
      for (let i = 0; i < 30; i++) yield* pumped(Effect.void, "2 seconds")
      assert.strictEqual(clientOps(emu, 2).length, 1)
    })))

  it.effect("zombie connection (no ACK) -> close non-1000 and resume; no dispatch missed or duplicated", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make({ heartbeatInterval: 10_000 })
      const discord = adapterFor(emu)
      const seen: Array<string> = []
      yield* startBot(recorder(discord, seen))
      for (let i = 0; i < 5; i++) emu.messageCreate({ channelId: "1", content: `m${i}` })
      yield* pump(() => seen.length === 5, { what: "first five" })
      // the link stalls: Discord keeps sequencing events, nothing arrives, heartbeats go unanswered
      emu.setAck(false)
      emu.gateway.deliver = false
      for (let i = 5; i < 10; i++) emu.messageCreate({ channelId: "1", content: `m${i}` })
      yield* pump(() => clientOps(emu, 6).length === 1, { step: "1 second", what: "resume after zombie" })
      emu.setAck(true)
      emu.gateway.deliver = true
      yield* pump(() => discord.shards()[0]!.state === "ready" && seen.length === 10, { step: "1 second", what: "replay" })
      for (let i = 10; i < 15; i++) emu.messageCreate({ channelId: "1", content: `m${i}` })
      yield* pump(() => seen.length === 15, { what: "after resume" })
      assert.deepStrictEqual(seen, Array.from({ length: 15 }, (_, i) => `m${i}`))
      const closes = emu.frames().filter((f) => f.direction === "in" && f.op === undefined)
      assert.isTrue(closes.some((f) => (f.d as { close: number }).close === 3001), JSON.stringify(closes))
      assert.strictEqual(clientOps(emu, 2).length, 1)
      yield* stopBot("rec")
    })))

  it.effect("server op 1 is answered at once, without the zombie check", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make({ heartbeatInterval: 10_000 })
      const discord = adapterFor(emu)
      yield* startBot(echoBot(discord))
      const beats = clientOps(emu, 1).length
      emu.setAck(false)
      emu.requestHeartbeat(0)
      yield* pump(() => clientOps(emu, 1).length === beats + 1, { what: "heartbeat reply" })
      emu.requestHeartbeat(0)
      yield* pump(() => clientOps(emu, 1).length === beats + 2, { what: "second heartbeat reply" })
      assert.strictEqual(emu.gateway.live(0).length, 1)
      assert.strictEqual(clientOps(emu, 6).length, 0)
      emu.setAck(true)
      yield* stopBot("echo")
    })))

  it.effect("RECONNECT (op 7) -> resume on resume_gateway_url, no identify", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const discord = adapterFor(emu)
      const seen: Array<string> = []
      yield* startBot(recorder(discord, seen))
      emu.reconnect(0)
      emu.messageCreate({ channelId: "1", content: "during" })
      yield* pump(() => clientOps(emu, 6).length === 1 && discord.shards()[0]!.state === "ready", { step: "1 second", what: "resume" })
      emu.messageCreate({ channelId: "1", content: "after" })
      yield* pump(() => seen.length === 2, { what: "both messages" })
      assert.deepStrictEqual(seen, ["during", "after"])
      assert.strictEqual(emu.gateway.live(0)[0]!.path, "/resume")
      assert.strictEqual(clientOps(emu, 2).length, 1)
      yield* stopBot("rec")
    })))

  it.effect("a persisted session the gateway no longer knows -> op 9 -> identify", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const store = SessionStore.memory()
      yield* store.set(0, 1, { sessionId: "gone", seq: 5, resumeUrl: emu.resumeUrl })
      const discord = adapterFor(emu, { store })
      yield* startBot(echoBot(discord))
      assert.strictEqual(clientOps(emu, 6).length, 1)
      assert.strictEqual(clientOps(emu, 2).length, 1)
      assert.strictEqual((yield* store.get(0, 1))?.sessionId, discord.shards()[0]!.sessionId)
      yield* stopBot("echo")
    })))

  it.effect("INVALID_SESSION true -> resume; false -> new identify on the original gateway URL", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const discord = adapterFor(emu)
      yield* startBot(echoBot(discord))
      emu.invalidSession(true, 0)
      yield* pump(() => clientOps(emu, 6).length === 1 && discord.shards()[0]!.state === "ready", { step: "1 second", what: "resume" })
      const session = discord.shards()[0]!.sessionId
      emu.invalidSession(false, 0)
      yield* pump(() => clientOps(emu, 2).length === 2 && discord.shards()[0]!.state === "ready", { step: "1 second", what: "identify" })
      assert.notStrictEqual(discord.shards()[0]!.sessionId, session)
      assert.strictEqual(emu.gateway.live(0)[0]!.path, "/gateway")
      assert.strictEqual(clientOps(emu, 6).length, 1)
      yield* stopBot("echo")
    })))

  it.effect("a failed resume twice gives the session up and identifies (resume-loop guard)", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const store = SessionStore.memory()
      // a persisted session whose RESUME is never answered: two handshake deadlines, then identify
      yield* store.set(0, 1, { sessionId: "stale", seq: 5, resumeUrl: emu.resumeUrl })
      emu.gateway.swallowResumes = true
      const discord = adapterFor(emu, { store })
      const manager = yield* BotManager
      const starting = yield* Effect.forkChild(manager.start(echoBot(discord)), { startImmediately: true })
      yield* pump(() => starting.pollUnsafe() !== undefined, { step: "1 second", what: "start" })
      yield* Fiber.join(starting)
      assert.strictEqual(clientOps(emu, 6).length, 2)
      assert.strictEqual(clientOps(emu, 2).length, 1)
      assert.strictEqual(discord.shards()[0]!.state, "ready")
      yield* stopBot("echo")
    })))

  it.effect("identify throttling: 8 shards, max_concurrency 2 -> one identify per bucket per 5 s, no op 9", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make({ shards: 8, maxConcurrency: 2 })
      const discord = adapterFor(emu)
      yield* startBot(echoBot(discord), "100 millis")
      assert.strictEqual(discord.shards().length, 8)
      assert.isTrue(discord.shards().every((s) => s.state === "ready"))
      const identifies = clientOps(emu, 2)
      assert.strictEqual(identifies.length, 8, JSON.stringify(emu.frames().filter((f) => f.op !== 0 && f.op !== 1 && f.op !== 11)))
      assert.strictEqual(emu.frames().filter((f) => f.direction === "out" && f.op === 9).length, 0)
      const byBucket = new Map<number, Array<number>>()
      for (const f of identifies) {
        const shard = (f.d as { shard: [number, number] }).shard[0]
        byBucket.set(shard % 2, [...(byBucket.get(shard % 2) ?? []), f.at])
      }
      for (const times of byBucket.values()) {
        assert.strictEqual(times.length, 4)
        for (let i = 1; i < times.length; i++) assert.isAtLeast(times[i]! - times[i - 1]!, 5000)
      }
      // both buckets ran in parallel: 8 shards took about 3 spacings, not 7
      const all = identifies.map((f) => f.at)
      assert.isBelow(Math.max(...all) - Math.min(...all), 4 * 5000)
      yield* stopBot("echo")
    })))

  it.effect("a flood of sends never triggers 4008 and every send goes out", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const discord = adapterFor(emu)
      yield* startBot(echoBot(discord))
      const n = 260
      const flood = yield* Effect.forkChild(
        Effect.forEach(Array.from({ length: n }, (_, i) => i), (i) =>
          discord.send(0, 3, { since: null, activities: [{ name: `status ${i}`, type: 0 }], status: "online", afk: false })),
        { startImmediately: true }
      )
      yield* pump(() => clientOps(emu, 3).length === n, { step: "2 seconds", rounds: 2000, what: "all sends" })
      yield* Fiber.join(flood)
      assert.strictEqual(emu.frames().filter((f) => f.direction === "out" && f.op === undefined).length, 0)
      // no 60 s window of the connection ever held more than 120 client events
      const times = emu.frames().filter((f) => f.direction === "in" && f.op !== undefined).map((f) => f.at)
      for (let i = 0; i < times.length; i++) {
        const inWindow = times.filter((t) => t >= times[i]! && t < times[i]! + 60_000).length
        assert.isAtMost(inWindow, 120)
      }
      yield* stopBot("echo")
    })))

  it.effect("a payload over 4096 bytes is refused with a typed error and never sent", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const discord = adapterFor(emu)
      yield* startBot(echoBot(discord))
      const error = yield* Effect.flip(discord.send(0, 3, { activities: [{ name: "x".repeat(5000), type: 0 }] }))
      assert.instanceOf(error, PayloadTooLarge)
      assert.isAbove(error.bytes, 4096)
      assert.strictEqual(clientOps(emu, 3).length, 0)
      assert.strictEqual(emu.gateway.live(0).length, 1)
      yield* stopBot("echo")
    })))

  for (const compress of [false, true]) {
    it.effect(`compression ${compress ? "on (zlib-stream)" : "off"}: READY, a 290 KB GUILD_CREATE and messages arrive intact`, () =>
      withManager(Effect.gen(function*() {
        const emu = yield* DiscordEmulator.make()
        const discord = adapterFor(emu, { compress })
        const seen: Array<string> = []
        const big: Array<number> = []
        const bot = Bot.make({
          name: "z",
          adapters: [discord.adapter],
          router: Router.empty
            .on("message", (ctx) => Effect.sync(() => void seen.push(ctx.text ?? "")))
            .on("guild_create", (ctx) => Effect.sync(() => void big.push(JSON.stringify((ctx.update.payload as any).d).length))),
          options: { startTimeout: "10 minutes", concurrency: 1 }
        })
        yield* startBot(bot)
        assert.strictEqual(emu.gateway.live(0)[0]!.deflate !== undefined, compress)
        emu.dispatch("GUILD_CREATE", { id: "901", members: Array.from({ length: 3000 }, (_, i) => ({ user: { id: String(i), username: `user-${i}-${"x".repeat(50)}` } })) }, 0)
        for (let i = 0; i < 50; i++) emu.messageCreate({ channelId: "1", content: `m${i} ${"é".repeat(i)}` })
        yield* pump(() => seen.length === 50 && big.length === 2, { what: "all dispatches" })
        assert.deepStrictEqual(seen, Array.from({ length: 50 }, (_, i) => `m${i} ${"é".repeat(i)}`))
        assert.isAbove(big[1]!, 250_000)
        yield* stopBot("z")
      })))
  }
})

describe("Discord stop modes", () => {
  it.effect("offline stop closes 1000: the session ends and the store forgets it", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const store = SessionStore.memory()
      const discord = adapterFor(emu, { store })
      yield* startBot(echoBot(discord))
      const sessionId = discord.shards()[0]!.sessionId!
      yield* stopBot("echo")
      yield* pump(() => emu.gateway.live().length === 0, { what: "closed" })
      const close = emu.frames().find((f) => f.direction === "in" && f.op === undefined)!
      assert.strictEqual((close.d as { close: number }).close, 1000)
      assert.isTrue(emu.gateway.sessions.get(sessionId)!.invalid)
      assert.strictEqual(yield* store.get(0, 1), undefined)
      assert.strictEqual(discord.shards()[0]!.state, "stopped")
    })))

  it.effect("resumable stop closes non-1000 and persists; a new process resumes and gets what it missed", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const store = SessionStore.memory()
      const first = adapterFor(emu, { store, stopMode: "resumable" })
      const seen1: Array<string> = []
      yield* startBot(recorder(first, seen1, "old"))
      emu.messageCreate({ channelId: "1", content: "before" })
      yield* pump(() => seen1.length === 1, { what: "first message" })
      const sessionId = first.shards()[0]!.sessionId!
      yield* stopBot("old")
      yield* pump(() => emu.gateway.live().length === 0, { what: "closed" })
      const close = emu.frames().find((f) => f.direction === "in" && f.op === undefined)!
      assert.notStrictEqual((close.d as { close: number }).close, 1000)
      const saved = yield* store.get(0, 1)
      assert.strictEqual(saved?.sessionId, sessionId)
      assert.strictEqual(saved?.resumeUrl, emu.resumeUrl)
      // sent while no process was connected (a deploy in between)
      emu.messageCreate({ channelId: "1", content: "missed" })
      // "the next process": a new adapter on the same store
      const second = adapterFor(emu, { store })
      const seen2: Array<string> = []
      yield* startBot(recorder(second, seen2, "new"))
      yield* pump(() => seen2.length === 1, { what: "replayed message" })
      assert.deepStrictEqual(seen2, ["missed"])
      assert.strictEqual(second.shards()[0]!.sessionId, sessionId)
      assert.strictEqual(clientOps(emu, 2).length, 1)
      assert.strictEqual(clientOps(emu, 6).length, 1)
      yield* stopBot("new")
    })))

  it.effect("a stopped bot starts again on the same adapter and identifies afresh", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const discord = adapterFor(emu)
      yield* startBot(echoBot(discord))
      yield* stopBot("echo")
      yield* startBot(echoBot(discord))
      assert.strictEqual(discord.shards().length, 1)
      assert.strictEqual(discord.shards()[0]!.state, "ready")
      assert.strictEqual(clientOps(emu, 2).length, 2)
      emu.messageCreate({ channelId: "3", content: "again" })
      yield* pump(() => emu.rest.messages.size === 1, { what: "reply" })
      yield* stopBot("echo")
    })))
})
