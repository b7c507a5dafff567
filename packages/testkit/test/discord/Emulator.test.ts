import { assert, describe, it } from "@effect/vitest"
import { Clock, Duration, Effect } from "effect"
import { TestClock } from "effect/testing"
import { createInflate } from "node:zlib"
import WebSocket from "ws"
import { DiscordEmulator } from "@fiberbot/testkit/discord"

const liveClock = Clock.Clock.defaultValue()
const realSleep = (ms: number) => Effect.sleep(Duration.millis(ms)).pipe(Effect.provideService(Clock.Clock, liveClock))

const until = (predicate: () => boolean, what: string) =>
  Effect.gen(function*() {
    for (let i = 0; i < 400; i++) {
      if (predicate()) return
      yield* realSleep(i < 20 ? 1 : 5)
    }
    return yield* Effect.die(new Error(`not reached: ${what}`))
  })

interface RawClient {
  readonly received: Array<any>
  readonly closed: { code: number | undefined }
  readonly send: (payload: unknown) => void
  readonly sendRaw: (raw: string) => void
  readonly ws: WebSocket
}

/** A bare `ws` client that records what the emulator sends (scoped: terminated at the end). */
const connect = (url: string) =>
  Effect.acquireRelease(
    Effect.callback<RawClient>((resume) => {
      const ws = new WebSocket(url)
      const client: RawClient = {
        received: [],
        closed: { code: undefined },
        send: (p) => ws.send(JSON.stringify(p)),
        sendRaw: (raw) => ws.send(raw),
        ws
      }
      ws.on("message", (data) => client.received.push(JSON.parse(data.toString())))
      ws.on("close", (code) => {
        client.closed.code = code
      })
      ws.on("open", () => resume(Effect.succeed(client)))
      ws.on("error", () => {})
    }),
    (c) => Effect.sync(() => c.ws.terminate())
  )

const identify = (token: string, extra: Record<string, unknown> = {}) => ({
  op: 2,
  d: { token, intents: 513, properties: { os: "linux", browser: "t", device: "t" }, ...extra }
})

describe("Discord emulator", () => {
  it.effect("corked: what is sent inside arrives whole and in order, after the batch", () =>
    Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const c = yield* connect(emu.gatewayUrl)
      c.send(identify(emu.token))
      yield* until(() => c.received.length === 3, "ready")
      const seqs = emu.gateway.corked(() => {
        const out: Array<number> = []
        for (let i = 0; i < 500; i++) out.push(...emu.gateway.dispatch("MESSAGE_CREATE", { id: String(i), channel_id: "1", content: `m${i}` }))
        return out
      })
      assert.strictEqual(seqs.length, 500)
      yield* until(() => c.received.length === 503, "500 dispatches")
      assert.deepStrictEqual(c.received.slice(3).map((p) => p.d.content), Array.from({ length: 500 }, (_, i) => `m${i}`))
      assert.deepStrictEqual(c.received.slice(3).map((p) => p.s), seqs)
    }))


  it.effect("whenDrained: at once with nothing buffered; while a client does not read, only once it reads again", () =>
    Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const c = yield* connect(emu.gatewayUrl)
      c.send(identify(emu.token))
      yield* until(() => c.received.length === 3, "ready")
      let drained = false
      // nothing buffered: resolved before the event loop turns
      const first = yield* Effect.promise(() =>
        Promise.race([
          emu.gateway.whenDrained().then(() => "drained"),
          new Promise<string>((resolve) => setImmediate(() => resolve("pending")))
        ])
      )
      assert.strictEqual(first, "drained")
      // the client stops reading: 4,000 frames of 2 KB fill the OS buffers, and the rest stays with the emulator
      const socket = (c.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket
      socket.pause()
      const content = "x".repeat(2048)
      emu.gateway.corked(() => {
        for (let i = 0; i < 4000; i++) emu.gateway.dispatch("MESSAGE_CREATE", { id: String(i), channel_id: "1", content })
      })
      void emu.gateway.whenDrained().then(() => {
        drained = true
      })
      yield* realSleep(100)
      assert.isFalse(drained)
      socket.resume()
      yield* until(() => drained, "drained once the client reads")
      yield* until(() => c.received.length === 4003, "every frame")
    }))

  it.effect("HELLO, IDENTIFY -> READY (s=1) + GUILD_CREATE; heartbeats are ACKed", () =>
    Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make({ heartbeatInterval: 1234 })
      const c = yield* connect(emu.gatewayUrl)
      yield* until(() => c.received.length === 1, "hello")
      assert.deepStrictEqual(c.received[0], { t: null, s: null, op: 10, d: { heartbeat_interval: 1234 } })
      c.send(identify(emu.token))
      yield* until(() => c.received.length === 3, "ready")
      assert.strictEqual(c.received[1].t, "READY")
      assert.strictEqual(c.received[1].s, 1)
      assert.strictEqual(c.received[1].d.resume_gateway_url, emu.resumeUrl)
      assert.strictEqual(c.received[2].t, "GUILD_CREATE")
      c.send({ op: 1, d: 2 })
      yield* until(() => c.received.length === 4, "ack")
      assert.strictEqual(c.received[3].op, 11)
    }))

  const closes: ReadonlyArray<[string, number, (c: RawClient, token: string) => void]> = [
    ["a payload over 4096 bytes", 4002, (c, token) => c.send(identify(token, { pad: "x".repeat(5000) }))],
    ["bad JSON", 4002, (c) => c.sendRaw("{nope")],
    ["a presence update before IDENTIFY", 4003, (c) => c.send({ op: 3, d: {} })],
    ["a bad token", 4004, (c) => c.send(identify("wrong"))],
    ["a second IDENTIFY", 4005, (c, token) => {
      c.send(identify(token))
      c.send(identify(token))
    }],
    ["invalid intents", 4013, (c, token) => c.send(identify(token, { intents: -5 }))],
    ["an invalid shard", 4010, (c, token) => c.send(identify(token, { shard: [3, 2] }))]
  ]
  for (const [what, code, act] of closes) {
    it.effect(`${what} -> close ${code}`, () =>
      Effect.gen(function*() {
        const emu = yield* DiscordEmulator.make()
        const c = yield* connect(emu.gatewayUrl)
        yield* until(() => c.received.length === 1, "hello")
        act(c, emu.token)
        yield* until(() => c.closed.code !== undefined, "close")
        assert.strictEqual(c.closed.code, code)
      }))
  }

  it.effect("disallowed privileged intents -> 4014", () =>
    Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make({ allowedPrivilegedIntents: 0 })
      const c = yield* connect(emu.gatewayUrl)
      yield* until(() => c.received.length === 1, "hello")
      c.send(identify(emu.token, { intents: 1 << 15 }))
      yield* until(() => c.closed.code !== undefined, "close")
      assert.strictEqual(c.closed.code, 4014)
    }))

  it.effect("more than 120 client events in 60 s -> 4008; fewer per window is fine", () =>
    Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const c = yield* connect(emu.gatewayUrl)
      for (let i = 0; i < 120; i++) c.send({ op: 1, d: null })
      yield* until(() => c.received.length === 121, "acks")
      yield* TestClock.adjust("60 seconds")
      for (let i = 0; i < 120; i++) c.send({ op: 1, d: null })
      yield* until(() => c.received.length === 241, "acks after the window")
      assert.strictEqual(c.closed.code, undefined)
      c.send({ op: 1, d: null })
      yield* until(() => c.closed.code !== undefined, "close")
      assert.strictEqual(c.closed.code, 4008)
    }))

  it.effect("identify concurrency: two identifies of one bucket within 5 s -> op 9", () =>
    Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make({ shards: 4, maxConcurrency: 2 })
      const a = yield* connect(emu.gatewayUrl)
      const b = yield* connect(emu.gatewayUrl)
      const c = yield* connect(emu.gatewayUrl)
      yield* until(() => a.received.length + b.received.length + c.received.length === 3, "hellos")
      a.send(identify(emu.token, { shard: [0, 4] }))
      b.send(identify(emu.token, { shard: [1, 4] })) // other bucket: fine
      c.send(identify(emu.token, { shard: [2, 4] })) // bucket 0 again: refused
      yield* until(() => c.received.length === 2 && b.received.length >= 2, "answers")
      assert.deepStrictEqual(c.received[1], { t: null, s: null, op: 9, d: false })
      assert.strictEqual(b.received[1].t, "READY")
    }))

  it.effect("RESUME replays missed dispatches with their original s, then RESUMED", () =>
    Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const a = yield* connect(emu.gatewayUrl)
      yield* until(() => a.received.length === 1, "hello")
      a.send(identify(emu.token))
      yield* until(() => a.received.length === 3, "ready")
      const sessionId = a.received[1].d.session_id
      emu.messageCreate({ channelId: "1", content: "seen" }) // s=3
      yield* until(() => a.received.length === 4, "message")
      a.ws.close(4000)
      yield* until(() => a.closed.code !== undefined, "closed")
      emu.messageCreate({ channelId: "1", content: "missed 1" })
      emu.messageCreate({ channelId: "1", content: "missed 2" })
      const b = yield* connect(emu.resumeUrl)
      yield* until(() => b.received.length === 1, "hello")
      b.send({ op: 6, d: { token: emu.token, session_id: sessionId, seq: 3 } })
      yield* until(() => b.received.length === 4, "replay")
      assert.deepStrictEqual(b.received.slice(1).map((p) => [p.t, p.s]), [["MESSAGE_CREATE", 4], ["MESSAGE_CREATE", 5], ["RESUMED", 6]])
      // a bad seq is 4007, an unknown session op 9
      const c = yield* connect(emu.resumeUrl)
      yield* until(() => c.received.length === 1, "hello")
      c.send({ op: 6, d: { token: emu.token, session_id: "nope", seq: 1 } })
      yield* until(() => c.received.length === 2, "op 9")
      assert.strictEqual(c.received[1].op, 9)
    }))

  it.effect("a client close with 1000 ends the session: RESUME then gets op 9", () =>
    Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const a = yield* connect(emu.gatewayUrl)
      yield* until(() => a.received.length === 1, "hello")
      a.send(identify(emu.token))
      yield* until(() => a.received.length === 3, "ready")
      a.ws.close(1000)
      yield* until(() => a.closed.code !== undefined, "closed")
      const b = yield* connect(emu.resumeUrl)
      yield* until(() => b.received.length === 1, "hello")
      b.send({ op: 6, d: { token: emu.token, session_id: a.received[1].d.session_id, seq: 2 } })
      yield* until(() => b.received.length === 2, "answer")
      assert.deepStrictEqual(b.received[1], { t: null, s: null, op: 9, d: false })
    }))

  it.effect("zlib-stream: every message ends with 00 00 ff ff and inflates with one context", () =>
    Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const frames: Array<Buffer> = []
      const ws = yield* Effect.acquireRelease(
        Effect.sync(() => {
          const w = new WebSocket(`${emu.gatewayUrl}?v=10&encoding=json&compress=zlib-stream`)
          w.on("message", (d: Buffer) => frames.push(d))
          w.on("open", () => w.send(JSON.stringify(identify(emu.token))))
          return w
        }),
        (w) => Effect.sync(() => w.terminate())
      )
      void ws
      yield* until(() => frames.length === 3, "frames")
      for (const f of frames) assert.deepStrictEqual([...f.subarray(-4)], [0, 0, 0xff, 0xff])
      const inflate = createInflate()
      const out: Array<string> = []
      inflate.on("data", (d: Buffer) => out.push(d.toString()))
      for (const f of frames) inflate.write(f)
      inflate.flush()
      yield* until(() => out.join("").includes("GUILD_CREATE"), "inflated")
      assert.include(out.join(""), "\"op\":10")
      assert.include(out.join(""), "READY")
    }))

  it.effect("REST: /gateway/bot, auth, X-RateLimit headers and a bucket 429", () =>
    Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make({ shards: 3, maxConcurrency: 2, bucketLimit: 2 })
      const call = (path: string, init: RequestInit = {}) =>
        Effect.promise(async () => {
          const r = await fetch(`${emu.restUrl}${path}`, init)
          return { status: r.status, headers: r.headers, body: await r.json().catch(() => undefined) as any }
        })
      const auth = { authorization: `Bot ${emu.token}`, "content-type": "application/json" }
      const unauthorized = yield* call("/gateway/bot")
      assert.strictEqual(unauthorized.status, 401)
      const info = yield* call("/gateway/bot", { headers: auth })
      assert.deepStrictEqual(info.body.url, emu.gatewayUrl)
      assert.strictEqual(info.body.shards, 3)
      assert.strictEqual(info.body.session_start_limit.max_concurrency, 2)
      const post = () => call("/channels/123456/messages", { method: "POST", headers: auth, body: JSON.stringify({ content: "x" }) })
      const r1 = yield* post()
      assert.strictEqual(r1.headers.get("x-ratelimit-limit"), "2")
      assert.strictEqual(r1.headers.get("x-ratelimit-remaining"), "1")
      assert.isString(r1.headers.get("x-ratelimit-bucket"))
      yield* post()
      const r3 = yield* post()
      assert.strictEqual(r3.status, 429)
      assert.strictEqual(r3.headers.get("x-ratelimit-scope"), "user")
      assert.isAbove(r3.body.retry_after, 0)
      const bad = yield* call("/channels/123456/messages", { method: "POST", headers: auth, body: "{oops" })
      assert.strictEqual(bad.status, 400)
      assert.strictEqual(emu.requests().length, 6)
      assert.isTrue(emu.requests().every((r) => r.headers.authorization === undefined || r.headers.authorization === "<redacted>"))
    }))
})
