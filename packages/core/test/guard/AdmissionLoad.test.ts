import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import { Bot, BotManager, Router } from "@fiberbot/core"
import { LeakCheck, TestAdapter } from "@fiberbot/core/testing"
import { settle } from "../helpers.ts"
import { stopNow } from "./support.ts"

describe("Admission under load", () => {
  it.effect("the adaptive limit converges on a real bot whose handlers slow down past 40 concurrent runs", () =>
    LeakCheck.verify(Effect.gen(function*() {
      const manager = yield* BotManager
      const test = yield* TestAdapter.make()
      let running = 0
      yield* manager.start(Bot.make({
        name: "adaptive",
        adapters: [test.adapter],
        // 50 ms up to 40 concurrent runs, then slower in proportion (a saturated downstream).
        router: Router.empty.on("message", () =>
          Effect.suspend(() => {
            running++
            return Effect.sleep(50 * Math.max(1, running / 40)).pipe(Effect.ensuring(Effect.sync(() => running--)))
          })),
        options: { concurrency: 2000, intake: { capacity: 2000 }, admission: { limit: 200, adaptive: { targetLatencyMs: 60, min: 5, max: 1000 } } }
      }))
      const admission = manager.guard("adaptive")!.admission!
      const limits: Array<number> = []
      let n = 0
      // Offered load always exceeds what the bot can do: every 10 ms, offer until it says busy.
      for (let tick = 0; tick < 600; tick++) {
        for (let k = 0; k < 400; k++) if ((yield* test.message(`k${n++ % 500}`, "x")) === "busy") break
        yield* settle(20)
        yield* TestClock.adjust("10 millis")
        yield* settle(20)
        limits.push(admission.stats().limit)
      }
      // Measured: 200 -> 48 in about 2 s of load (one 10% back-off per round trip), then a sawtooth
      // of 45..50 around the knee at 48 (where latency crosses the 60 ms target: 48 / 40 x 50 ms).
      const reached = limits.findIndex((l) => l <= 55)
      const tail = limits.slice(-300)
      assert.isAbove(reached, 0)
      assert.isBelow(reached, 300)
      assert.isAtLeast(Math.min(...tail), 40)
      assert.isAtMost(Math.max(...tail), 55)
      assert.isAbove(admission.stats().rejected, 0) // the excess load was answered busy, not queued
      yield* stopNow(manager, "adaptive")
    })).pipe(Effect.provide(BotManager.layer)))
})
