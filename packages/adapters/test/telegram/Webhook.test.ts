import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Redacted } from "effect"
import * as Net from "node:net"
import { Bot, BotManager, Router } from "@fiberbot/core"
import { Telegram } from "@fiberbot/adapters/telegram"
import { Emulator } from "@fiberbot/testkit/telegram"
import { until, withManager } from "./helpers.ts"

const post = (url: string, body: string, headers: Record<string, string> = {}) =>
  Effect.promise(async (signal) => {
    const r = await fetch(url, { method: "POST", body, headers: { "content-type": "application/json", ...headers }, signal })
    return { status: r.status, retryAfter: r.headers.get("retry-after"), text: await r.text() }
  })

const updateBody = (id: number, text = "x", chat = 1) =>
  JSON.stringify({ update_id: id, message: { message_id: id, date: 0, chat: { id: chat, type: "private" }, text } })

/** A raw connection: what it was sent back, and when it closed. */
const rawConnection = (port: number) =>
  Effect.callback<{ readonly socket: Net.Socket; readonly received: () => string; readonly closed: Promise<void> }>((resume) => {
    const socket = Net.connect(port, "127.0.0.1")
    let data = ""
    socket.on("data", (c) => {
      data += c.toString("utf8")
    })
    socket.on("error", () => undefined)
    const closed = new Promise<void>((r) => socket.once("close", () => r()))
    socket.once("connect", () => resume(Effect.succeed({ socket, received: () => data, closed })))
  })

const head = (length: number, path = "/telegram") =>
  `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`

describe("Telegram webhook", () => {
  it.live("echoes over a webhook end to end: setWebhook with secret on start, deleteWebhook on stop", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      const tg = Telegram.make({
        token: emu.token,
        apiRoot: emu.apiRoot,
        flood: false,
        webhook: { secretToken: Redacted.make("hook-secret"), maxConnections: 10, allowedUpdates: ["message"], deleteOnStop: true }
      })
      const manager = yield* BotManager
      yield* manager.start(Bot.make({ name: "hook", adapters: [tg.adapter], router: Router.empty.text(/.*/, (ctx) => ctx.reply(`echo: ${ctx.text}`)) }))
      const set = emu.calls("setWebhook")[0]!
      assert.strictEqual(set.params.secret_token, "hook-secret")
      assert.strictEqual(set.params.max_connections, 10)
      assert.deepStrictEqual(set.params.allowed_updates, ["message"])
      for (let i = 0; i < 5; i++) emu.sendMessage({ chatId: 10 + i, text: `w${i}` })
      const sent = yield* emu.waitForSent(5)
      assert.deepStrictEqual(sent.map((m) => m.text).sort(), ["echo: w0", "echo: w1", "echo: w2", "echo: w3", "echo: w4"])
      yield* until(() => emu.pending() === 0, 2000, "all deliveries acknowledged")
      yield* manager.stop("hook", { deadline: "2 seconds" })
      assert.isUndefined(emu.webhook())
      assert.strictEqual(emu.calls().at(-1)!.method, "deleteWebhook")
    })))

  it.live("refuses a wrong secret (401), an oversized body (413), bad JSON and non-updates (400); a re-sent update_id is handled once", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      const tg = Telegram.make({
        token: emu.token,
        apiRoot: emu.apiRoot,
        flood: false,
        webhook: { secretToken: Redacted.make("right"), path: "/tg", maxBodyBytes: 2048 }
      })
      const handled: Array<string> = []
      const manager = yield* BotManager
      yield* manager.start(Bot.make({
        name: "guarded",
        adapters: [tg.adapter],
        router: Router.empty.on("message", (ctx) => Effect.sync(() => handled.push(ctx.update.id)))
      }))
      const { port } = tg.status().address!
      const url = `http://127.0.0.1:${port}/tg`
      const update = JSON.stringify({ update_id: 500, message: { message_id: 1, date: 0, chat: { id: 1, type: "private" }, text: "x" } })
      assert.strictEqual((yield* post(url, update, { "x-telegram-bot-api-secret-token": "wrong" })).status, 401)
      assert.strictEqual((yield* post(url, update)).status, 401, "a missing secret is wrong too")
      const ok = { "x-telegram-bot-api-secret-token": "right" }
      assert.strictEqual((yield* post(url, "x".repeat(5000), ok)).status, 413)
      assert.strictEqual((yield* post(url, "{not json", ok)).status, 400)
      assert.strictEqual((yield* post(url, JSON.stringify({ hello: 1 }), ok)).status, 400)
      assert.strictEqual((yield* post(url, "[1,2]", ok)).status, 400)
      assert.strictEqual((yield* post(`http://127.0.0.1:${port}/other`, update, ok)).status, 404)
      assert.strictEqual((yield* post(url, update, ok)).status, 200)
      yield* until(() => handled.length === 1, 2000, "handled")
      assert.strictEqual((yield* post(url, update, ok)).status, 200, "a re-send is acknowledged")
      yield* Effect.sleep("50 millis")
      assert.deepStrictEqual(handled, ["500"])
      assert.strictEqual(tg.status().webhook.duplicates, 1)
      assert.isAtLeast(tg.status().webhook.rejected, 6)
      yield* manager.stop("guarded", { deadline: "2 seconds" })
    })))

  it.live("a full intake answers 429 with Retry-After instead of queueing without bound", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      const tg = Telegram.make({ token: emu.token, apiRoot: emu.apiRoot, flood: false, webhook: {} })
      const manager = yield* BotManager
      yield* manager.start(Bot.make({
        name: "full",
        adapters: [tg.adapter],
        router: Router.empty.on("message", () => Effect.never),
        options: { concurrency: 1, intake: { capacity: 1, policy: "reject-busy" } }
      }))
      const { port } = tg.status().address!
      const body = (id: number) => JSON.stringify({ update_id: id, message: { message_id: id, date: 0, chat: { id: 1, type: "private" }, text: "x" } })
      const statuses: Array<number> = []
      const retryAfters: Array<string | null> = []
      for (let i = 1; i <= 5; i++) {
        const r = yield* post(`http://127.0.0.1:${port}/telegram`, body(i))
        statuses.push(r.status)
        retryAfters.push(r.retryAfter)
      }
      assert.deepStrictEqual(statuses.slice(0, 2), [200, 200])
      assert.include(statuses, 429)
      assert.strictEqual(retryAfters[statuses.indexOf(429)], "1")
      const report = yield* manager.stop("full", { deadline: "1 second", drain: "50 millis" })
      assert.isTrue(report.withinDeadline)
    })))

  it.live("answers 415 unless the Content-Type is application/json (parameters and any case allowed)", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      const tg = Telegram.make({ token: emu.token, apiRoot: emu.apiRoot, flood: false, webhook: {} })
      const handled: Array<string> = []
      const manager = yield* BotManager
      yield* manager.start(Bot.make({
        name: "typed",
        adapters: [tg.adapter],
        router: Router.empty.on("message", (ctx) => Effect.sync(() => handled.push(ctx.update.id)))
      }))
      const url = `http://127.0.0.1:${tg.status().address!.port}/telegram`
      assert.strictEqual((yield* post(url, updateBody(1), { "content-type": "text/plain" })).status, 415)
      assert.strictEqual((yield* post(url, updateBody(2), { "content-type": "application/x-www-form-urlencoded" })).status, 415)
      assert.strictEqual((yield* post(url, updateBody(3), { "content-type": "application/jsonp" })).status, 415)
      const untyped = yield* Effect.promise(() => fetch(url, { method: "POST", body: new TextEncoder().encode(updateBody(4)) }).then((r) => r.status))
      assert.strictEqual(untyped, 415, "no Content-Type at all")
      assert.strictEqual((yield* post(url, updateBody(5), { "content-type": "application/json; charset=utf-8" })).status, 200)
      assert.strictEqual((yield* post(url, updateBody(6), { "content-type": "Application/JSON" })).status, 200)
      yield* until(() => handled.length === 2, 2000, "the two JSON posts handled")
      assert.deepStrictEqual(handled.sort(), ["5", "6"])
      yield* manager.stop("typed", { deadline: "2 seconds" })
    })))

  it.live("a request that goes away while its offer waits for room releases its update_id, so Telegram's re-send is handled", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      const tg = Telegram.make({ token: emu.token, apiRoot: emu.apiRoot, flood: false, webhook: { offerTimeout: "30 seconds" } })
      const gate = yield* Deferred.make<void>()
      const handled: Array<string> = []
      const manager = yield* BotManager
      yield* manager.start(Bot.make({
        name: "backpressured",
        adapters: [tg.adapter],
        router: Router.empty.on("message", (ctx) =>
          Effect.andThen(ctx.text === "block" ? Deferred.await(gate) : Effect.void, Effect.sync(() => handled.push(ctx.update.id)))),
        options: { concurrency: 1, intake: { capacity: 1, policy: "backpressure" } }
      }))
      const url = `http://127.0.0.1:${tg.status().address!.port}/telegram`
      assert.strictEqual((yield* post(url, updateBody(1, "block"))).status, 200) // runs, held by the gate
      assert.strictEqual((yield* post(url, updateBody(2))).status, 200) // fills the intake
      const abort = new AbortController()
      const waiting = fetch(url, { method: "POST", body: updateBody(3), headers: { "content-type": "application/json" }, signal: abort.signal })
        .then((r) => r.status, () => "aborted" as const)
      yield* until(() => tg.status().inFlight === 3, 2000, "update 3 waiting for room")
      abort.abort()
      assert.strictEqual(yield* Effect.promise(() => waiting), "aborted")
      yield* until(() => tg.status().inFlight === 2, 2000, "update 3 released")
      yield* Deferred.succeed(gate, undefined)
      yield* until(() => handled.length === 2, 2000, "1 and 2 handled")
      assert.strictEqual((yield* post(url, updateBody(3))).status, 200, "the re-send")
      yield* until(() => handled.includes("3"), 2000, "the re-sent update handled")
      assert.strictEqual(tg.status().webhook.duplicates, 0)
      assert.strictEqual(tg.status().inFlight, 0)
      yield* manager.stop("backpressured", { deadline: "2 seconds" })
    })))

  it.live("connections past connectionLimit are refused at accept while the open ones go on", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      const tg = Telegram.make({ token: emu.token, apiRoot: emu.apiRoot, flood: false, webhook: { connectionLimit: 2 } })
      const handled: Array<string> = []
      const manager = yield* BotManager
      yield* manager.start(Bot.make({
        name: "limited",
        adapters: [tg.adapter],
        router: Router.empty.on("message", (ctx) => Effect.sync(() => handled.push(ctx.update.id)))
      }))
      const port = tg.status().address!.port
      const bodies = [updateBody(11), updateBody(12)]
      // two connections hold a request each, half of its body sent
      const open = yield* Effect.forEach(bodies, () => rawConnection(port))
      open.forEach((c, i) => c.socket.write(head(bodies[i]!.length) + bodies[i]!.slice(0, 10)))
      yield* until(() => tg.status().webhook.received === 2, 2000, "both requests under way")
      const third = yield* rawConnection(port)
      third.socket.write(head(updateBody(13).length) + updateBody(13))
      yield* Effect.promise(() => third.closed).pipe(Effect.timeoutOrElse({ duration: "2 seconds", orElse: () => Effect.die(new Error("the third connection was not refused")) }))
      assert.strictEqual(third.received(), "", "refused without an answer")
      assert.strictEqual(tg.status().webhook.refusedConnections, 1)
      open.forEach((c, i) => c.socket.write(bodies[i]!.slice(10)))
      yield* until(() => open.every((c) => c.received().startsWith("HTTP/1.1 200")), 2000, "the two held requests answered")
      yield* until(() => handled.length === 2, 2000, "both handled")
      assert.deepStrictEqual(handled.sort(), ["11", "12"])
      open.forEach((c) => c.socket.destroy())
      yield* manager.stop("limited", { deadline: "2 seconds" })
    })))

  it.live("a request that does not arrive whole within requestTimeout gets 408 and its connection closed", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      const tg = Telegram.make({ token: emu.token, apiRoot: emu.apiRoot, flood: false, webhook: { requestTimeout: "300 millis" } })
      const manager = yield* BotManager
      yield* manager.start(Bot.make({ name: "slow-client", adapters: [tg.adapter], router: Router.empty }))
      const slow = yield* rawConnection(tg.status().address!.port)
      slow.socket.write(head(100) + "{\"update_id\":")
      const t0 = Date.now()
      yield* Effect.promise(() => slow.closed).pipe(Effect.timeoutOrElse({ duration: "3 seconds", orElse: () => Effect.die(new Error("the slow request was not cut off")) }))
      assert.match(slow.received(), /^HTTP\/1\.1 408/)
      assert.isBelow(Date.now() - t0, 2000)
      yield* manager.stop("slow-client", { deadline: "2 seconds" })
    })))

  it.live("a port in use fails the start with a typed error naming it; the bot already on the port goes on", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      const first = Telegram.make({ token: emu.token, apiRoot: emu.apiRoot, flood: false, webhook: {} })
      const handled: Array<string> = []
      const manager = yield* BotManager
      yield* manager.start(Bot.make({
        name: "first",
        adapters: [first.adapter],
        router: Router.empty.on("message", (ctx) => Effect.sync(() => handled.push(ctx.update.id)))
      }))
      const port = first.status().address!.port
      const second = Telegram.make({ token: emu.token, apiRoot: emu.apiRoot, flood: false, webhook: { port } })
      const exit = yield* Effect.exit(manager.start(Bot.make({ name: "second", adapters: [second.adapter], router: Router.empty })))
      assert.isTrue(Exit.isFailure(exit))
      const text = String(Exit.isFailure(exit) ? exit.cause : "")
      assert.match(text, /AdapterError/)
      assert.match(text, new RegExp(`could not listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE \\(the port is in use\\)`))
      assert.isFalse(second.status().running)
      assert.strictEqual((yield* post(`http://127.0.0.1:${port}/telegram`, updateBody(21))).status, 200)
      yield* until(() => handled.length === 1, 2000, "the first bot still handles")
      yield* manager.stop("first", { deadline: "2 seconds" })
    })))
})
