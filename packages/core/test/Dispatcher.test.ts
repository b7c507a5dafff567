import { assert, describe, it } from "@effect/vitest"
import { Effect, Random } from "effect"
import { TestClock } from "effect/testing"
import { Bot, BotManager, Router } from "@fiberbot/core"
import { LeakCheck, TestAdapter } from "@fiberbot/core/testing"
import { eventually, settle } from "./helpers.ts"

describe("Dispatcher", () => {
  it.effect("per-key order: 10,000 updates over 100 keys with random handler delays", () =>
    LeakCheck.verify(Effect.gen(function*() {
      const manager = yield* BotManager
      const test = yield* TestAdapter.make()
      const limit = 40
      const seen = new Map<string, Array<number>>()
      let running = 0
      let maxRunning = 0
      let done = 0
      const bot = Bot.make({
        name: "ordered",
        adapters: [test.adapter],
        router: Router.empty.on("message", (ctx) =>
          Effect.gen(function*() {
            running++
            maxRunning = Math.max(maxRunning, running)
            const key = ctx.update.key
            const list = seen.get(key) ?? []
            list.push(Number(ctx.text))
            seen.set(key, list)
            yield* Effect.sleep(`${yield* Random.nextIntBetween(0, 5)} millis`)
            running--
            done++
          })),
        options: { concurrency: limit, intake: { capacity: 256, policy: "backpressure" } }
      })
      yield* manager.start(bot)
      const total = 10_000
      const keys = 100
      // The source is held back by the bounded intake (backpressure), so it runs beside the clock.
      const source = yield* Effect.forkChild(Effect.gen(function*() {
        for (let i = 0; i < total; i++) {
          const result = yield* test.send({ key: `k${i % keys}`, text: String(i) })
          assert.strictEqual(result, "accepted")
        }
      }))
      while (done < total) {
        yield* settle(5)
        yield* TestClock.adjust("1 millis")
      }
      yield* eventually(() => source.pollUnsafe() !== undefined)
      for (let k = 0; k < keys; k++) {
        const order = seen.get(`k${k}`)!
        assert.strictEqual(order.length, total / keys)
        for (let j = 1; j < order.length; j++) assert.isBelow(order[j - 1]!, order[j]!, `key k${k} out of order`)
      }
      assert.isAtMost(maxRunning, limit)
      assert.isAbove(maxRunning, 1, "different keys never ran in parallel")
      const [status] = yield* manager.status()
      assert.strictEqual(status?.keys, 0, "per-key state outlived its last update")
      assert.strictEqual(status?.inFlight, 0)
      assert.strictEqual(status?.outcomes.success, total)
      yield* manager.stop("ordered")
    })).pipe(Effect.provide(BotManager.layer)))

  it.effect("one slow key does not hold up the others", () =>
    LeakCheck.verify(Effect.gen(function*() {
      const manager = yield* BotManager
      const test = yield* TestAdapter.make()
      const bot = Bot.make({
        name: "hol",
        adapters: [test.adapter],
        router: Router.empty.on("message", (ctx) =>
          Effect.andThen(ctx.text === "slow" ? Effect.sleep("10 seconds") : Effect.void, ctx.reply(`done ${ctx.text}`)))
      })
      yield* manager.start(bot)
      yield* test.send({ key: "a", text: "slow" })
      yield* test.send({ key: "a", text: "after-slow" })
      yield* test.send({ key: "b", text: "fast" })
      const first = yield* test.nextReply
      assert.strictEqual(first.message.text, "done fast")
      assert.strictEqual(test.replies().length, 1)
      yield* TestClock.adjust("10 seconds")
      assert.deepStrictEqual((yield* Effect.all([test.nextReply, test.nextReply])).map((r) => r.message.text), ["done slow", "done after-slow"])
      yield* manager.stop("hol")
    })).pipe(Effect.provide(BotManager.layer)))
})
