import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import { Bot, BotManager, Router } from "@fiberbot/core"
import { Telegram } from "@fiberbot/adapters/telegram"
import { Emulator } from "@fiberbot/testkit/telegram"
import { until, withManager } from "./helpers.ts"

const adapterFor = (emu: Emulator.Emulator, extra: Partial<Telegram.Options> = {}) =>
  Telegram.make({
    token: emu.token,
    apiRoot: emu.apiRoot,
    flood: false,
    polling: { timeout: 1, backoffBase: "20 millis", backoffMax: "100 millis", conflictTimeout: "300 millis" },
    client: { retry: { baseDelay: "10 millis", maxDelay: "50 millis" }, longPollMargin: "300 millis" },
    ...extra
  })

const echoBot = (tg: Telegram.Telegram, name = "echo") =>
  Bot.make({
    name,
    adapters: [tg.adapter],
    router: Router.empty
      .command("start", (ctx) => ctx.reply(`welcome, args=${ctx.command?.args ?? ""}`))
      .text(/.*/, (ctx) => ctx.reply(`echo: ${ctx.text}`))
  })

describe("Telegram long polling", () => {
  it.live("echoes over polling end to end, deletes the webhook first and confirms the final offset on stop", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      const tg = adapterFor(emu)
      const manager = yield* BotManager
      yield* manager.start(echoBot(tg))
      emu.sendMessage({ chatId: 1, text: "hello" })
      emu.sendCommand(2, "start", "deep-link")
      emu.sendMessage({ chatId: -100, text: "group hi" })
      const sent = yield* emu.waitForSent(3)
      assert.deepStrictEqual(
        sent.map((m) => [m.chatId, m.text]).sort(),
        [[-100, "echo: group hi"], [1, "echo: hello"], [2, "welcome, args=deep-link"]].sort()
      )
      assert.strictEqual(tg.status().running, true)
      assert.isDefined(tg.status().sinceLastPollMs)
      const report = yield* manager.stop("echo", { deadline: "2 seconds" })
      assert.isTrue(report.withinDeadline)
      const methods = emu.calls().map((c) => c.method)
      assert.deepStrictEqual(methods.slice(0, 2), ["getMe", "deleteWebhook"])
      const last = emu.calls("getUpdates").at(-1)!
      assert.deepStrictEqual([last.params.offset, last.params.limit, last.params.timeout], [4, 1, 0])
      assert.strictEqual(emu.pending(), 0, "everything handled was confirmed")
    })))

  it.live("stop during a pending long poll returns promptly (the poll is aborted, not waited for)", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      const tg = adapterFor(emu, { polling: { timeout: 30 } })
      const manager = yield* BotManager
      yield* manager.start(echoBot(tg))
      yield* until(() => emu.polling(), 2000, "a long poll")
      yield* Effect.sleep("50 millis")
      const t0 = Date.now()
      const report = yield* manager.stop("echo", { deadline: "5 seconds" })
      assert.isBelow(Date.now() - t0, 500)
      assert.isTrue(report.withinDeadline)
    })))

  it.live("restart in the middle of a burst: no update lost, none handled twice, per-chat order kept", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      const tg = adapterFor(emu, { polling: { timeout: 1, limit: 50 } })
      const manager = yield* BotManager
      const completed: Array<{ id: number; chat: number }> = []
      const bot = Bot.make({
        name: "burst",
        adapters: [tg.adapter],
        router: Router.empty.on("message", (ctx) =>
          Effect.gen(function*() {
            yield* Effect.sleep(`${5 + (Number(ctx.update.id) % 7) * 3} millis`)
            completed.push({ id: Number(ctx.update.id), chat: Number(ctx.update.key) })
          }))
      })
      const total = 300
      for (let i = 0; i < total; i++) emu.sendMessage({ chatId: 1 + (i % 20), text: `m${i}` })
      yield* manager.start(bot)
      yield* until(() => completed.length >= 60, 5000, "60 handled")
      const report = yield* manager.stop("burst", { deadline: "1 second", drain: "10 millis" })
      assert.isTrue(report.withinDeadline)
      const before = completed.length
      assert.isBelow(before, total, "the stop cut the burst")
      yield* manager.start(bot)
      yield* until(() => completed.length >= total, 8000, "all handled after restart")
      yield* Effect.sleep("100 millis")
      yield* manager.stop("burst", { deadline: "1 second" })
      const ids = completed.map((c) => c.id)
      assert.strictEqual(new Set(ids).size, ids.length, "no update handled twice")
      assert.strictEqual(ids.length, total, "no update lost")
      for (let chat = 1; chat <= 20; chat++) {
        const order = completed.filter((c) => c.chat === chat).map((c) => c.id)
        assert.deepStrictEqual(order, [...order].sort((a, b) => a - b), `chat ${chat} in order`)
      }
      assert.strictEqual(emu.pending(), 0)
    })))

  it.live("a stuck handler times out and never freezes polling: other chats are answered meanwhile, then its update is confirmed", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      const tg = adapterFor(emu)
      const manager = yield* BotManager
      yield* manager.start(Bot.make({
        name: "stuck",
        adapters: [tg.adapter],
        router: Router.empty
          .text("hang", () => Effect.never, { timeout: "800 millis" })
          .text(/.*/, (ctx) => ctx.reply(`echo: ${ctx.text}`)),
        options: { handlerTimeout: "5 seconds" }
      }))
      emu.sendMessage({ chatId: 1, text: "hang" })
      yield* Effect.sleep("50 millis")
      const t0 = Date.now()
      for (let i = 0; i < 5; i++) emu.sendMessage({ chatId: 2 + i, text: `other ${i}` })
      yield* emu.waitForSent(5, { timeout: "2 seconds" })
      assert.isBelow(Date.now() - t0, 700, "answered while the stuck handler still ran")
      assert.strictEqual(tg.status().offset, 1, "the stuck update is not confirmed yet")
      yield* until(() => tg.status().offset === 7, 3000, "offset past the timed-out update")
      const status = (yield* manager.status()).find((b) => b.name === "stuck")!
      assert.strictEqual(status.outcomes.timeout, 1)
      yield* manager.stop("stuck", { deadline: "2 seconds" })
      assert.strictEqual(emu.pending(), 0)
    })))

  it.live("at-least-once with quick handlers in a busy process: the next fetch waits for the batch, so updates are not fetched twice", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      for (let i = 0; i < 1000; i++) emu.sendMessage({ chatId: 1 + (i % 50), text: `m${i}` })
      const tg = adapterFor(emu)
      const manager = yield* BotManager
      let handled = 0
      yield* manager.start(Bot.make({
        name: "paced",
        adapters: [tg.adapter],
        router: Router.empty.on("message", () => Effect.andThen(Effect.promise(() => new Promise((r) => setImmediate(r))), Effect.sync(() => handled++)))
      }))
      yield* until(() => handled === 1000, 5000, "1,000 handled")
      const { polling } = tg.status()
      assert.strictEqual(polling.fetched, 1000)
      // 1,000 updates in batches of 100: re-sends of unconfirmed updates stay a small share
      assert.isAtMost(polling.duplicates, 100, `${polling.duplicates} re-sent updates`)
      assert.isAtMost(emu.calls("getUpdates").length, 15)
      yield* manager.stop("paced", { deadline: "2 seconds" })
      assert.strictEqual(emu.confirmed(), 1000)
    })))

  it.live("at-most-once delivery confirms on fetch and still keeps per-chat order", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      const tg = adapterFor(emu, { polling: { timeout: 1, delivery: "at-most-once" } })
      const manager = yield* BotManager
      const seen: Array<number> = []
      yield* manager.start(Bot.make({
        name: "amo",
        adapters: [tg.adapter],
        router: Router.empty.on("message", (ctx) => Effect.sync(() => seen.push(Number(ctx.update.id))))
      }))
      for (let i = 0; i < 50; i++) emu.sendMessage({ chatId: 1, text: `m${i}` })
      yield* until(() => seen.length === 50, 3000, "50 handled")
      assert.deepStrictEqual(seen, [...seen].sort((a, b) => a - b))
      yield* manager.stop("amo", { deadline: "2 seconds" })
      assert.strictEqual(emu.confirmed(), 50)
    })))

  it.live("recovers from 429, 5xx with an HTML body, malformed JSON and a dropped connection", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      const tg = adapterFor(emu)
      const manager = yield* BotManager
      yield* manager.start(echoBot(tg))
      emu.inject("getUpdates", { _tag: "ServerError" })
      emu.inject("getUpdates", { _tag: "Drop" })
      emu.inject("getUpdates", { _tag: "MalformedJson" })
      emu.inject("sendMessage", { _tag: "TooManyRequests", retryAfter: 1 })
      emu.inject("sendMessage", { _tag: "ServerError" })
      emu.inject("sendMessage", { _tag: "Drop" })
      emu.sendMessage({ chatId: 1, text: "one" })
      emu.sendMessage({ chatId: 2, text: "two" })
      const t0 = Date.now()
      const sent = yield* emu.waitForSent(2, { timeout: "5 seconds" })
      assert.isAtLeast(Date.now() - t0, 950, "the 429 was waited out for retry_after, never less")
      assert.deepStrictEqual(sent.map((m) => m.text).sort(), ["echo: one", "echo: two"])
      assert.deepStrictEqual(
        emu.calls("getUpdates").map((c) => c.outcome).filter((o) => o !== 200).slice(0, 3),
        ["ServerError", "Drop", "MalformedJson"]
      )
      assert.isAtLeast(tg.status().polling.failures, 3)
      yield* manager.stop("echo", { deadline: "2 seconds" })
    })))

  it.live("a hung getUpdates is cut off at poll timeout + margin and polling goes on", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      const tg = adapterFor(emu)
      const manager = yield* BotManager
      yield* manager.start(echoBot(tg))
      emu.inject("getUpdates", { _tag: "Hang" })
      yield* until(() => emu.calls("getUpdates").some((c) => c.outcome === "Hang"), 3000, "the hang")
      emu.sendMessage({ chatId: 1, text: "after hang" })
      const sent = yield* emu.waitForSent(1, { timeout: "4 seconds" })
      assert.strictEqual(sent[0]!.text, "echo: after hang")
      assert.match(tg.status().polling.lastError ?? "", /timeout/)
      yield* manager.stop("echo", { deadline: "2 seconds" })
    })))

  it.live("409 at start: waits while another instance drains, then fails clearly when it does not stop", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      const manager = yield* BotManager
      emu.setConflict(true)
      const failed = yield* Effect.exit(manager.start(echoBot(adapterFor(emu), "conflicted")))
      assert.isTrue(Exit.isFailure(failed))
      assert.match(String(Exit.isFailure(failed) ? failed.cause : ""), /409 Conflict.*another instance/)
      const tg = adapterFor(emu, { polling: { timeout: 1, conflictTimeout: "3 seconds", backoffBase: "20 millis" } })
      const starting = yield* Effect.forkChild(manager.start(echoBot(tg, "patient")))
      yield* Effect.sleep("200 millis")
      emu.setConflict(false)
      yield* Fiber.join(starting)
      emu.sendMessage({ chatId: 4, text: "finally" })
      yield* emu.waitForSent(1)
      yield* manager.stop("patient", { deadline: "2 seconds" })
    })))

  it.live("401 at start is fatal with a clear message", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      const manager = yield* BotManager
      const tg = Telegram.make({ token: "1:wrong", apiRoot: emu.apiRoot })
      const failed = yield* Effect.exit(manager.start(echoBot(tg, "unauthorized")))
      const text = String(Exit.isFailure(failed) ? failed.cause : "")
      assert.match(text, /401 Unauthorized/)
      assert.notInclude(text, "1:wrong", "the token never appears in errors")
    })))
})

describe("Telegram long polling under hostile answers", () => {
  it.live("a getUpdates result that is not an array is a logged failure the loop backs off from; polling goes on", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      const tg = adapterFor(emu)
      const manager = yield* BotManager
      yield* manager.start(echoBot(tg))
      for (const body of ["{\"ok\":true}", "{\"ok\":true,\"result\":null}", "{\"ok\":true,\"result\":{\"update_id\":1}}"]) {
        emu.inject("getUpdates", { _tag: "Raw", body })
      }
      yield* until(() => emu.calls("getUpdates").filter((c) => c.outcome === "Raw").length === 3, 4000, "the three odd answers")
      emu.sendMessage({ chatId: 1, text: "still here" })
      const sent = yield* emu.waitForSent(1, { timeout: "3 seconds" })
      assert.strictEqual(sent[0]!.text, "echo: still here")
      const { polling } = tg.status()
      assert.isAtLeast(polling.failures, 3)
      assert.match(polling.lastError ?? "", /bad-response.*not an array/)
      yield* manager.stop("echo", { deadline: "2 seconds" })
    })))

  it.live("elements of a batch that are not updates are skipped and counted; the rest are handled, and all are confirmed past", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      const queued = [1, 2, 3, 4, 5, 6].map((i) => emu.sendMessage({ chatId: i, text: `m${i}` }))
      // the server holds updates 1..6; the answer garbles 2, 4, 5 and 6 (5 and 6 keep a numeric id)
      const garbled = [queued[0], null, queued[2], [], { update_id: "5", message: "?" }, { update_id: 6.5, message: "?" }]
      emu.inject("getUpdates", { _tag: "Raw", body: JSON.stringify({ ok: true, result: garbled }) })
      const tg = adapterFor(emu)
      const manager = yield* BotManager
      const handled: Array<number> = []
      yield* manager.start(Bot.make({
        name: "garbled",
        adapters: [tg.adapter],
        router: Router.empty.on("message", (ctx) => Effect.sync(() => handled.push(Number(ctx.update.id))))
      }))
      yield* until(() => handled.length === 2, 3000, "updates 1 and 3 handled")
      assert.deepStrictEqual([...handled].sort(), [1, 3])
      yield* until(() => emu.calls("getUpdates").some((c) => c.params.offset === 7), 3000, "a fetch confirming past 6")
      assert.strictEqual(tg.status().polling.invalid, 4)
      assert.strictEqual(emu.pending(), 0, "nothing is fetched again and again")
      yield* manager.stop("garbled", { deadline: "2 seconds" })
      assert.deepStrictEqual([...handled].sort(), [1, 3])
    })))

  it.live("an answer over maxResponseBytes (declared or chunked) is a too-large failure the loop backs off from", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      const tg = adapterFor(emu, {
        client: { retry: { baseDelay: "10 millis", maxDelay: "50 millis" }, longPollMargin: "300 millis", maxResponseBytes: 4096 }
      })
      const manager = yield* BotManager
      yield* manager.start(echoBot(tg))
      const huge = JSON.stringify({ ok: true, result: [], padding: "x".repeat(20_000) })
      emu.inject("getUpdates", { _tag: "Raw", body: huge })
      emu.inject("getUpdates", { _tag: "Raw", body: huge, chunked: true })
      yield* until(() => emu.calls("getUpdates").filter((c) => c.outcome === "Raw").length === 2, 4000, "both huge answers")
      emu.sendMessage({ chatId: 1, text: "small" })
      yield* emu.waitForSent(1, { timeout: "3 seconds" })
      assert.isAtLeast(tg.status().polling.failures, 2)
      assert.match(tg.status().polling.lastError ?? "", /too-large/)
      yield* manager.stop("echo", { deadline: "2 seconds" })
    })))

  it.live("drop-oldest: dropped updates are confirmed past, so the offset moves and later updates are fetched", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      for (let i = 1; i <= 60; i++) emu.sendMessage({ chatId: i, text: `m${i}` })
      const tg = adapterFor(emu)
      const manager = yield* BotManager
      const handled = new Set<number>()
      yield* manager.start(Bot.make({
        name: "dropper",
        adapters: [tg.adapter],
        router: Router.empty.on("message", (ctx) => Effect.andThen(Effect.sleep("2 millis"), Effect.sync(() => handled.add(Number(ctx.update.id))))),
        options: { concurrency: 1, intake: { capacity: 5, policy: "drop-oldest" } }
      }))
      yield* until(() => tg.status().offset === 61, 3000, "the offset past all 60")
      const [status] = yield* manager.status()
      assert.strictEqual(status!.intake.dropped, 60 - handled.size, "every update not handled was dropped and counted")
      assert.isAbove(status!.intake.dropped, 0)
      emu.sendMessage({ chatId: 99, text: "later" })
      yield* until(() => handled.has(61), 3000, "a later update fetched and handled")
      yield* manager.stop("dropper", { deadline: "2 seconds" })
      assert.strictEqual(emu.confirmed(), 61)
    })))
})
