import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Redacted } from "effect"
import { TestClock } from "effect/testing"
import fc from "fast-check"
import { Client, Decode, FloodControl, Offsets, TelegramError } from "@fiberbot/adapters/telegram"

describe("Telegram Decode", () => {
  it("names the kind after the Telegram field and keys by chat, or by user without a chat", () => {
    const msg = Decode.decode("tg", { update_id: 1, message: { message_id: 1, date: 0, chat: { id: -5, type: "group" }, text: "/start@bot x" } })!
    assert.deepStrictEqual([msg.kind, msg.key, msg.id, msg.text], ["message", "-5", "1", "/start@bot x"])
    const cb = Decode.decode("tg", { update_id: 2, callback_query: { id: "q", from: { id: 9 }, data: "d", message: { chat: { id: 3 } } } })!
    assert.deepStrictEqual([cb.kind, cb.key, cb.callbackData], ["callback_query", "3", "d"])
    const inline = Decode.decode("tg", { update_id: 3, inline_query: { id: "i", from: { id: 11 }, query: "q" } })!
    assert.deepStrictEqual([inline.kind, inline.key], ["inline_query", "11"])
    const photo = Decode.decode("tg", { update_id: 4, channel_post: { chat: { id: -100 }, caption: "cap" } })!
    assert.deepStrictEqual([photo.kind, photo.key, photo.text], ["channel_post", "-100", "cap"])
    const future = Decode.decode("tg", { update_id: 5, brand_new_kind: { something: true } })!
    assert.deepStrictEqual([future.kind, future.key], ["brand_new_kind", "update:brand_new_kind"])
  })

  it("refuses only what is not an update, and never throws on hostile input", () => {
    for (const bad of [null, 1, "x", [], {}, { update_id: "1" }, { update_id: 1.5 }, { update_id: Number.MAX_VALUE }]) {
      assert.isUndefined(Decode.decode("tg", bad))
    }
    fc.assert(fc.property(fc.anything(), (raw) => {
      Decode.decode("tg", raw)
      Decode.decode("tg", { update_id: 1, message: raw })
    }))
  })
})

describe("Telegram Offsets", () => {
  it("confirms only past finished updates, in order, and remembers finished ids across a reset", () => {
    const t = Offsets.make({ window: 100 })
    assert.isUndefined(t.offset())
    for (const id of [10, 11, 12]) t.track(id)
    assert.strictEqual(t.offset(), 10)
    t.finish(11, true)
    assert.strictEqual(t.offset(), 10, "11 finished but 10 did not")
    t.finish(10, true)
    assert.strictEqual(t.offset(), 12)
    t.finish(12, false)
    assert.strictEqual(t.offset(), 12, "an interrupted update stays unconfirmed")
    assert.isTrue(t.seen(11))
    t.reset()
    assert.isTrue(t.seen(11), "finished ids survive a restart")
    assert.isFalse(t.seen(12), "interrupted ids are handled again")
    t.skip(11)
    assert.strictEqual(t.offset(), 12)
  })

  it("keeps the finished window bounded", () => {
    const t = Offsets.make({ window: 10 })
    for (let id = 1; id <= 1000; id++) {
      t.track(id)
      t.finish(id, true)
    }
    assert.isFalse(t.seen(1))
    assert.isTrue(t.seen(1000))
    assert.strictEqual(t.outstanding(), 0)
    assert.strictEqual(t.offset(), 1001)
  })
})

describe("Telegram Client backoff", () => {
  it.effect("reads retry_after defensively and never answers more than maxRetryAfter", () =>
    Effect.gen(function*() {
      const client = yield* Client.make({ token: Redacted.make("1:x"), apiRoot: "http://127.0.0.1:9", retry: { maxRetryAfter: "60 seconds" } })
      const waitFor = (retry_after: unknown) =>
        Duration.toMillis(client.backoff(
          new TelegramError.TelegramError({ method: "getUpdates", error_code: 429, description: "Too Many Requests", parameters: { retry_after } as never }),
          1
        ))
      assert.strictEqual(waitFor(5), 5_000)
      assert.strictEqual(waitFor("5"), 5_000, "a numeric string is what it says")
      assert.strictEqual(waitFor("2.5"), 2_500)
      assert.strictEqual(waitFor(1e9), 60_000, "capped")
      assert.strictEqual(waitFor(JSON.parse("1e400")), 60_000, "Infinity is capped, not slept forever")
      // 0 as well: a server repeating "retry after 0 s" must not make the poll loop spin
      for (const junk of [0, "0", -3, Number.NaN, "soon", "", null, undefined, {}, "5s"]) assert.strictEqual(waitFor(junk), 1_000, String(junk))
    }))
})

describe("Telegram FloodControl", () => {
  it.effect("spaces one chat at 1/s and a group at 20/min while other chats go on", () =>
    Effect.gen(function*() {
      const flood = FloodControl.make()
      const times: Record<string, Array<number>> = {}
      const send = (chat: number) =>
        Effect.gen(function*() {
          yield* flood.acquire(chat)
          const now = yield* Effect.clockWith((c) => c.currentTimeMillis)
          ;(times[chat] ??= []).push(now)
        })
      const fibers = yield* Effect.forEach([1, 1, 1, 2, ...Array.from({ length: 22 }, () => -7)], (c) => Effect.forkChild(send(c)))
      yield* Effect.yieldNow
      yield* TestClock.adjust("2 minutes")
      yield* Effect.forEach(fibers, Fiber.join)
      assert.deepStrictEqual(times[1], [0, 1000, 2000])
      assert.deepStrictEqual(times[2], [0])
      const group = times[-7]!
      assert.strictEqual(group.length, 22)
      assert.isAtLeast(group[20]! - group[0]!, 60_000, "the 21st group message waits for the minute")
    }))

  it.effect("never lets more than 30 sends into one second overall", () =>
    Effect.gen(function*() {
      const flood = FloodControl.make()
      const times: Array<number> = []
      const fibers = yield* Effect.forEach(Array.from({ length: 100 }, (_, i) => i), (chat) =>
        Effect.forkChild(Effect.andThen(flood.acquire(chat), Effect.clockWith((c) => c.currentTimeMillis).pipe(Effect.map((t) => times.push(t))))))
      yield* Effect.yieldNow
      yield* TestClock.adjust("10 seconds")
      yield* Effect.forEach(fibers, Fiber.join)
      times.sort((a, b) => a - b)
      for (let i = 30; i < times.length; i++) assert.isAtLeast(times[i]! - times[i - 30]!, 1000)
    }))

  it.effect("refuses sends past its queue bound instead of growing", () =>
    Effect.gen(function*() {
      const flood = FloodControl.make({ maxQueued: 2 })
      yield* flood.acquire(1)
      yield* Effect.forkChild(flood.acquire(1))
      yield* Effect.forkChild(flood.acquire(1))
      yield* Effect.yieldNow
      const refused = yield* Effect.flip(flood.acquire(1))
      assert.strictEqual(refused._tag, "FloodQueueFull")
    }))

  it.effect("the overall limit holds for every 1000 ms window, including windows that start between slots", () =>
    Effect.gen(function*() {
      // 15 chats send at 0 and, 950 ms apart, again at 950; a new chat at 500 would make 31 sends in [0, 1000)
      const flood = FloodControl.make({ perChatInterval: "950 millis" })
      const times: Array<number> = []
      const send = (chat: number) =>
        Effect.forkChild(Effect.andThen(flood.acquire(chat), Effect.clockWith((c) => c.currentTimeMillis).pipe(Effect.map((t) => times.push(t)))))
      const fibers = [
        ...(yield* Effect.forEach(Array.from({ length: 15 }, (_, i) => i + 1), send)),
        ...(yield* Effect.forEach(Array.from({ length: 15 }, (_, i) => i + 1), send))
      ]
      yield* Effect.yieldNow
      yield* TestClock.adjust("500 millis")
      fibers.push(yield* send(100))
      yield* Effect.yieldNow
      yield* TestClock.adjust("10 seconds")
      yield* Effect.forEach(fibers, Fiber.join)
      times.sort((a, b) => a - b)
      assert.strictEqual(times.length, 31)
      for (let i = 30; i < times.length; i++) assert.isAtLeast(times[i]! - times[i - 30]!, 1000, `sends ${i - 30}..${i}`)
    }))

  it.effect("a burst of 20,000 sends into distinct chats costs linear work and keeps every limit", () =>
    Effect.gen(function*() {
      const n = 20_000
      const flood = FloodControl.make({ maxQueued: n })
      const times = new Array<number>(n)
      const started = performance.now()
      for (let i = 0; i < n; i++) {
        // startImmediately: the slot is reserved here, so the loop times the reservations
        yield* Effect.forkChild(
          Effect.andThen(flood.acquire(i + 1), Effect.clockWith((c) => c.currentTimeMillis).pipe(Effect.map((t) => {
            times[i] = t
          }))),
          { startImmediately: true }
        )
      }
      const reserving = performance.now() - started
      // Scanning every reserved slot per send is quadratic: 4,000 sends took 1.1 s, 20,000 about
      // 28 s. Linear work takes about half a second, most of it TestClock registering the sleeps.
      // The bound is loose on purpose: it only has to tell the two apart.
      assert.isBelow(reserving, 10_000, `reserving ${n} slots took ${Math.round(reserving)} ms`)
      assert.strictEqual(flood.waiting(), n - 30)
      yield* TestClock.adjust(`${Math.ceil(n / 30) + 1} seconds`)
      yield* Effect.yieldNow
      assert.strictEqual(flood.waiting(), 0)
      const sorted = [...times].sort((a, b) => a - b)
      for (let i = 30; i < n; i++) {
        if (sorted[i]! - sorted[i - 30]! < 1000) assert.fail(`31 sends within a second: ${sorted[i - 30]}..${sorted[i]}`)
      }
      // no slot is wasted either: 30 each second, back to back
      assert.strictEqual(sorted[n - 1], Math.floor((n - 1) / 30) * 1000)
    }), 120_000)
})
