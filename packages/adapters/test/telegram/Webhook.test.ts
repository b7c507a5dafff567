import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { Bot, BotManager, Router } from "@fiberbot/core"
import { Telegram } from "@fiberbot/adapters/telegram"
import { Emulator } from "@fiberbot/testkit/telegram"
import { until, withManager } from "./helpers.ts"

const post = (url: string, body: string, headers: Record<string, string> = {}) =>
  Effect.promise(async (signal) => {
    const r = await fetch(url, { method: "POST", body, headers: { "content-type": "application/json", ...headers }, signal })
    return { status: r.status, retryAfter: r.headers.get("retry-after"), text: await r.text() }
  })

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
})
