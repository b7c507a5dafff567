import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import { Bot, BotManager, FiberRegistry, Router, Task } from "@fiberbot/core"
import { LeakCheck, TestAdapter } from "@fiberbot/core/testing"
import { settle } from "./helpers.ts"

describe("LeakCheck", () => {
  it.effect("fails on a fiber left running and names it: id, task, bot, age, and what to try", () =>
    Effect.gen(function*() {
      const manager = yield* BotManager
      let leaked: Fiber.Fiber<never> | undefined
      const exit = yield* Effect.exit(LeakCheck.verify(Effect.gen(function*() {
        leaked = yield* Effect.forkDetach(Effect.never.pipe(Task.named("poller/loop"), Task.ownedBy("demo")))
        yield* settle(5)
      }), { timeout: "50 millis" }))
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
      const leak = error?._tag === "Fail" ? (error.error as LeakCheck.FiberLeak) : undefined
      assert.strictEqual(leak?._tag, "FiberLeak")
      assert.strictEqual(leak?.leaks.length, 1)
      assert.strictEqual(leak?.leaks[0]?.id, leaked?.id)
      assert.match(leak?.message ?? "", new RegExp(`fiber #${leaked?.id} task=poller/loop bot=demo age=\\d+ms`))
      assert.include(leak?.message ?? "", "found 1 unexpected fiber(s) still running after the test")
      assert.include(leak?.message ?? "", "allow its task name")
      assert.isTrue(manager.registry.size >= 1)
      yield* Fiber.interrupt(leaked!)
    }).pipe(Effect.provide(BotManager.layer)))

  it.live("waits for fibers that end a moment after the test", () =>
    LeakCheck.verify(Effect.gen(function*() {
      // ends 30 ms after the test body returns: the retries must see it go
      yield* Effect.forkDetach(Effect.sleep("30 millis"))
    })).pipe(Effect.provide(BotManager.layer)))

  it.effect("allows fibers by task name", () =>
    Effect.gen(function*() {
      let leaked: Fiber.Fiber<never> | undefined
      yield* LeakCheck.verify(Effect.gen(function*() {
        leaked = yield* Effect.forkDetach(Effect.never.pipe(Task.named("metrics/exporter")))
        yield* settle(5)
      }), { allow: [/^metrics\//], timeout: "10 millis" })
      yield* Fiber.interrupt(leaked!)
    }).pipe(Effect.provide(BotManager.layer)))

  it.effect("catches a leaky handler: a fiber forked outside the handler's scope outlives the bot", () =>
    Effect.gen(function*() {
      const manager = yield* BotManager
      const test = yield* TestAdapter.make()
      const leaks: Array<Fiber.Fiber<never>> = []
      const leaky = Bot.make({
        name: "leaky",
        adapters: [test.adapter],
        // The bug: a background loop started with forkDetach belongs to no scope.
        router: Router.empty.on("message", () => Effect.map(Effect.forkDetach(Effect.never), (f) => void leaks.push(f)))
      })
      const exit = yield* Effect.exit(LeakCheck.verify(Effect.gen(function*() {
        yield* manager.start(leaky)
        yield* test.message("a", "x")
        yield* test.message("b", "y")
        yield* settle()
        const report = yield* manager.stop("leaky")
        assert.isTrue(report.withinDeadline) // the bot itself stopped fine ...
      }), { timeout: "20 millis" }))
      // ... but the check sees the two fibers its handlers left behind, attributed to the bot
      const error = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
      const leak = error?._tag === "Fail" ? (error.error as LeakCheck.FiberLeak) : undefined
      assert.deepStrictEqual(leak?.leaks.map((f) => `${f.bot} ${f.task}`), ["leaky handler/message", "leaky handler/message"])
      yield* Effect.forEach(leaks, Fiber.interrupt)
    }).pipe(Effect.provide(BotManager.layer)))

  it("the registry groups live fibers by bot and task, largest first (pprof debug=1 style)", () => {
    const snapshot: FiberRegistry.Snapshot = {
      takenAt: 0,
      total: 4,
      groups: [
        { bot: "a", task: "handler/message", count: 3, ids: [4, 5, 6] },
        { bot: "a", task: "telegram/poll", count: 1, ids: [2] }
      ]
    }
    assert.strictEqual(
      FiberRegistry.format(snapshot),
      "fiber profile: total 4\n3 @ bot=a task=handler/message\n1 @ bot=a task=telegram/poll"
    )
  })
})
