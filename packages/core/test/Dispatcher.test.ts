import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Random } from "effect"
import * as fc from "fast-check"
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

  it.effect("an update offered without waiting runs a quick handler before tryOffer returns", () =>
    LeakCheck.verify(Effect.gen(function*() {
      const manager = yield* BotManager
      const test = yield* TestAdapter.make()
      yield* manager.start(Bot.make({
        name: "direct",
        adapters: [test.adapter],
        router: Router.empty.on("message", (ctx) => ctx.reply(`echo ${ctx.text}`))
      }))
      yield* settle()
      assert.strictEqual(test.trySend({ key: "a", text: "1" }), "accepted")
      assert.deepStrictEqual(test.replies().map((r) => r.message.text), ["echo 1"])
      yield* manager.stop("direct")
    })).pipe(Effect.provide(BotManager.layer)))

  it.effect("direct and queued offers never overtake each other within a key (random mixes, quick and waiting handlers)", () =>
    LeakCheck.verify(Effect.gen(function*() {
      const manager = yield* BotManager
      const op = fc.record({ key: fc.integer({ min: 0, max: 3 }), direct: fc.boolean(), waits: fc.boolean(), pause: fc.integer({ min: 0, max: 2 }) })
      const scenarios = fc.sample(fc.array(op, { minLength: 1, maxLength: 80 }), { numRuns: 40, seed: 7 })
      for (const [n, ops] of scenarios.entries()) {
        const test = yield* TestAdapter.make()
        const seen = new Map<string, Array<number>>()
        const running = new Set<string>()
        let overlaps = 0
        let handled = 0
        yield* manager.start(Bot.make({
          name: `mix-${n}`,
          adapters: [test.adapter],
          router: Router.empty.on("message", (ctx) =>
            Effect.gen(function*() {
              const key = ctx.update.key
              if (running.has(key)) overlaps++
              running.add(key)
              seen.set(key, [...(seen.get(key) ?? []), Number(ctx.text)])
              if ((ctx.update.payload as { waits: boolean }).waits) for (let i = 0; i < 3; i++) yield* Effect.yieldNow
              running.delete(key)
              handled++
            })),
          options: { concurrency: 3, intake: { capacity: 4, policy: "backpressure" } }
        }))
        for (const [i, o] of ops.entries()) {
          const update = { key: `k${o.key}`, text: String(i), payload: { waits: o.waits } }
          const now = o.direct ? test.trySend(update) : undefined
          // what an adapter does: a full intake means waiting through `offer`
          const result = now ?? (yield* test.send(update))
          assert.strictEqual(result, "accepted")
          for (let p = 0; p < o.pause; p++) yield* Effect.yieldNow // lets runs end and the loop wake in between
        }
        yield* eventually(() => handled === ops.length)
        assert.strictEqual(overlaps, 0, `scenario ${n}: two runs of one key overlapped`)
        for (const [key, order] of seen) {
          const sent = ops.flatMap((o, i) => (`k${o.key}` === key ? [i] : []))
          assert.deepStrictEqual(order, sent, `scenario ${n}: key ${key} out of order`)
        }
        yield* manager.stop(`mix-${n}`)
      }
    })).pipe(Effect.provide(BotManager.layer)))

  it.effect("a direct offer never overtakes an update queued while the dispatcher was full", () =>
    LeakCheck.verify(Effect.gen(function*() {
      const manager = yield* BotManager
      const test = yield* TestAdapter.make()
      const gate = yield* Deferred.make<void>()
      const order: Array<string> = []
      yield* manager.start(Bot.make({
        name: "window",
        adapters: [test.adapter],
        router: Router.empty.on("message", (ctx) =>
          Effect.andThen(ctx.text === "hold" ? Effect.andThen(Deferred.await(gate), Effect.yieldNow) : Effect.void, Effect.sync(() => order.push(ctx.text!)))),
        options: { concurrency: 1 }
      }))
      yield* settle()
      assert.strictEqual(test.trySend({ key: "r", text: "hold" }), "accepted") // the one slot is taken
      // In this order on the scheduler: the held run ends (after its yield), then a source offers B,
      // then the dispatcher wakes for A. B must still wait behind A.
      yield* Deferred.succeed(gate, undefined)
      yield* Effect.forkChild(Effect.sync(() => test.trySend({ key: "k", text: "B" })))
      assert.strictEqual(test.trySend({ key: "k", text: "A" }), "accepted") // queued: no room
      yield* eventually(() => order.length === 3)
      assert.deepStrictEqual(order, ["hold", "A", "B"])
      yield* manager.stop("window")
    })).pipe(Effect.provide(BotManager.layer)))

  it.effect("a handler offering to its own bot under its own key: the new update runs after it, and before later ones", () =>
    LeakCheck.verify(Effect.gen(function*() {
      const manager = yield* BotManager
      const test = yield* TestAdapter.make()
      const events: Array<string> = []
      yield* manager.start(Bot.make({
        name: "reentrant",
        adapters: [test.adapter],
        router: Router.empty.on("message", (ctx) =>
          Effect.sync(() => {
            events.push(`start ${ctx.text}`)
            if (ctx.text === "outer") events.push(`offer ${test.trySend({ key: ctx.update.key, text: "inner" })}`)
            events.push(`end ${ctx.text}`)
          }))
      }))
      yield* settle()
      assert.strictEqual(test.trySend({ key: "k", text: "outer" }), "accepted")
      // "inner" waits to start in the next batch: a direct offer now must still queue behind it
      assert.strictEqual(test.trySend({ key: "k", text: "third" }), "accepted")
      yield* eventually(() => events.length === 7)
      assert.deepStrictEqual(events, ["start outer", "offer accepted", "end outer", "start inner", "end inner", "start third", "end third"])
      const [status] = yield* manager.status()
      assert.strictEqual(status?.keys, 0)
      yield* manager.stop("reentrant")
    })).pipe(Effect.provide(BotManager.layer)))
})
