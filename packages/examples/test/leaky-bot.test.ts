import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { BotManager, FiberDump, Watchdog } from "@fiberbot/core"
import { LeakCheck, TestAdapter } from "@fiberbot/core/testing"
import * as LeakyBot from "../src/leaky-bot.ts"

const settle = (n = 200) => Effect.repeat(Effect.yieldNow, { times: n - 1 })

const commands = ["ticker", "enqueue", "wait", "subscribe"] as const

/** Every 5 s of TestClock, one update of each command, until `stop()` or `rounds` run out. */
const traffic = (chat: TestAdapter.TestAdapter, rounds: number, stop: () => boolean) =>
  Effect.gen(function*() {
    let n = 0
    const answers: Array<string> = []
    for (let r = 0; r < rounds && !stop(); r++) {
      for (const c of commands) answers.push(yield* chat.message(`chat-${n++ % 7}`, `/${c}`))
      yield* settle()
      yield* TestClock.adjust("5 seconds")
      yield* settle()
    }
    return answers
  })

const stop = (manager: BotManager["Service"], name: string) =>
  Effect.gen(function*() {
    const stopping = yield* Effect.forkChild(manager.stop(name, { deadline: "2 seconds", drain: "1 second" }))
    yield* settle()
    yield* TestClock.adjust("2 seconds")
    return yield* Fiber.join(stopping)
  })

const watchdogOptions: Watchdog.Options = {
  interval: "5 seconds",
  global: { warn: 100_000, critical: 100_000 },
  perBot: { warn: 100_000, critical: 100_000 },
  // 4 leaked fibers per 5 s is 0.8/s: well above 0.25/s sustained over a minute.
  slopes: [{ window: "1 minute", perSecond: 0.25, level: "critical" }],
  quiet: "1 minute"
}

describe("the leaky bot", () => {
  it.effect("each mistake leaks a fiber per update; the watchdog fires, the dump and the diff name all four tasks, the breaker pauses intake", () =>
    LeakCheck.verify(Effect.scoped(Effect.gen(function*() {
      const manager = yield* BotManager
      const chat = yield* TestAdapter.make()
      const leaky = yield* LeakyBot.make({ fixed: false, adapters: [chat.adapter] })
      yield* Effect.addFinalizer(() => leaky.close)
      yield* manager.start(leaky.bot)
      const dog = yield* Watchdog.make(watchdogOptions)
      const ring = new FiberDump.Snapshots(manager.registry, 8)
      const before = ring.take()

      const answers = yield* traffic(chat, 30, () => manager.guard("leaky")!.breaker.state() !== "closed")
      const breaker = manager.guard("leaky")!.breaker
      assert.strictEqual(breaker.state(), "open")
      assert.strictEqual(yield* chat.message("late", "/wait"), "busy")
      assert.isTrue(answers.every((a) => a === "accepted"))

      // The watchdog fired on the slope, within about a minute and a bit of traffic.
      const tripped = dog.history().find((e) => e._tag === "Tripped" && e.scope === "leaky")
      assert.isDefined(tripped)
      assert.isAtMost(answers.length / 4, 16)
      // The dump names every leaking task; the diff shows each group grown by one per update.
      const dump = tripped!._tag === "Tripped" ? tripped!.dump : ""
      for (const c of commands) assert.match(dump, new RegExp(`^\\d+ @ bot=leaky task=handler/command/${c}$`, "m"))
      const diff = ring.diff(before.id, ring.take().id) as FiberDump.Diff
      const rounds = answers.length / 4
      for (const c of commands) {
        const change = [...diff.appeared, ...diff.grew].find((g) => g.task === `handler/command/${c}`)
        assert.isDefined(change, c)
        assert.strictEqual(change!.delta, rounds, c)
      }
      // And the other symptoms: listeners and queued jobs pile up, tickers keep ticking.
      assert.strictEqual(leaky.listeners(), rounds)
      assert.strictEqual(leaky.queued(), rounds)
      const ticks = leaky.ticks()
      yield* TestClock.adjust("1 second")
      assert.strictEqual(leaky.ticks() - ticks, rounds)

      // Stopping the bot does not end them: they live in a scope it never owned.
      yield* stop(manager, "leaky")
      assert.strictEqual(manager.registry.fibers({ bot: "leaky" }).length, rounds * 4)
      yield* leaky.close
      yield* settle()
      assert.strictEqual(manager.registry.fibers({ bot: "leaky" }).length, 0)
    }))).pipe(Effect.provide(BotManager.layer)))

  it.effect("the fixed version handles twice the traffic with flat fibers: no alarm, breaker closed, nothing left behind", () =>
    LeakCheck.verify(Effect.scoped(Effect.gen(function*() {
      const manager = yield* BotManager
      const chat = yield* TestAdapter.make()
      const fixed = yield* LeakyBot.make({ fixed: true, adapters: [chat.adapter] })
      yield* manager.start(fixed.bot)
      const dog = yield* Watchdog.make(watchdogOptions)
      yield* traffic(chat, 6, () => false)
      const early = manager.registry.fibers({ bot: "fixed" }).length
      const answers = yield* traffic(chat, 30, () => false)
      const late = manager.registry.fibers({ bot: "fixed" }).length
      assert.isTrue(answers.every((a) => a === "accepted"))
      // Flat: what runs is bounded by the few updates in flight (a 5 s deadline at most), not by history.
      assert.isAtMost(late, early + 4)
      assert.isAtMost(late, 40)
      assert.strictEqual(manager.guard("fixed")!.breaker.state(), "closed")
      assert.isFalse(dog.history().some((e) => e._tag === "Tripped"))
      assert.strictEqual(dog.status().bots["fixed"]!.level, "ok")
      assert.isAtMost(fixed.listeners(), 4)
      assert.strictEqual(fixed.queued(), 0)
      const report = yield* stop(manager, "fixed")
      assert.isTrue(report.withinDeadline)
      assert.strictEqual(fixed.listeners(), 0)
    }))).pipe(Effect.provide(BotManager.layer)))
})
