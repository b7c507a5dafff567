import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import { TestClock } from "effect/testing"
import { Bot, BotManager, Metrics, Router, Supervisor } from "@fiberbot/core"
import { LeakCheck, TestAdapter } from "@fiberbot/core/testing"
import { eventually, settle } from "../helpers.ts"
import { stopNow } from "../guard/support.ts"

const withManager = <A, E>(effect: Effect.Effect<A, E, BotManager>) =>
  LeakCheck.verify(effect).pipe(Effect.provide(BotManager.layer))

const value = (text: string, series: string): number | undefined => {
  const line = text.split("\n").find((l) => l.startsWith(series + " "))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

describe("Metrics", () => {
  it.effect("gauges follow live state, a group that went away reads 0, counters add only what is new, restarts are counted", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const test = yield* TestAdapter.make()
      const gate = yield* Deferred.make<void>()
      let attempts = 0
      yield* manager.start(Bot.make({
        name: "m1",
        adapters: [test.adapter],
        router: Router.empty.command("hold", () => Deferred.await(gate)),
        workers: [Supervisor.child("flaky", Effect.suspend(() => ++attempts < 3 ? Effect.fail("nope") : Effect.never))],
        options: { supervisor: { intensity: 10, backoff: { base: "1 millis", jitter: 0 } } }
      }))
      const collector = Metrics.makeCollector(manager)
      for (let i = 0; i < 4; i++) yield* test.message(`c${i}`, "/hold")
      yield* settle()
      yield* TestClock.adjust("1 second")
      yield* eventually(() => attempts >= 3)
      const first = yield* collector.render
      assert.isAtLeast(value(first, `fiberbot_task_fibers_live{bot="m1",task="handler/command/hold"}`)!, 4)
      assert.strictEqual(value(first, `fiberbot_intake_accepted_total{bot="m1"}`), 4)
      assert.strictEqual(value(first, `fiberbot_task_restarts_total{bot="m1",task="worker/flaky"}`), 2)
      const again = yield* collector.render
      assert.strictEqual(value(again, `fiberbot_intake_accepted_total{bot="m1"}`), 4) // not 8

      yield* Deferred.succeed(gate, undefined)
      yield* eventually(() => manager.registry.fibers({ bot: "m1" }).every((f) => f.task !== "handler/command/hold"))
      const after = yield* collector.render
      assert.strictEqual(value(after, `fiberbot_task_fibers_live{bot="m1",task="handler/command/hold"}`), 0)
      assert.strictEqual(value(after, `fiberbot_handlers_in_flight{bot="m1"}`), 0)
      assert.strictEqual(value(after, `fiberbot_breaker_state{bot="m1",state="closed"}`), 1)
      assert.strictEqual(value(after, `fiberbot_breaker_state{bot="m1",state="open"}`), 0)
      assert.match(after, /^# TYPE fiberbot_task_restarts_total counter$/m)
      yield* stopNow(manager, "m1")
    })))
})
