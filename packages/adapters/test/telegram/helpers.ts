import { type Duration, Effect, type Scope } from "effect"
import { BotManager } from "@fiberbot/core"
import { LeakCheck } from "@fiberbot/core/testing"
import * as Pumping from "../pumping.ts"

const stopAllQuickly = Effect.gen(function*() {
  const manager = yield* BotManager
  yield* manager.stopAll({ deadline: "500 millis", drain: "100 millis" })
})

/**
 * Runs a test of a running bot with a manager, then asserts no bot fiber is left behind. A failing
 * test stops its bots at once, before its emulator closes, so the failure is reported promptly.
 */
export const withManager = <A, E>(effect: Effect.Effect<A, E, BotManager | Scope.Scope>) =>
  LeakCheck.verify(Effect.scoped(Effect.onError(effect, () => stopAllQuickly))).pipe(Effect.provide(BotManager.layer))

/** Polls `predicate` on the real clock until it holds, failing after `ms`. */
export const until = (predicate: () => boolean, ms = 5000, what = "condition"): Effect.Effect<void> =>
  Effect.gen(function*() {
    const t0 = Date.now()
    while (!predicate()) {
      if (Date.now() - t0 > ms) return yield* Effect.die(new Error(`${what} not reached within ${ms} ms`))
      yield* Effect.sleep("5 millis")
    }
  })

// ---- under TestClock: sockets need real time, the code under test reads the TestClock ----------

export { pump, realSleep, withManagerPumped } from "../pumping.ts"

/** Runs `effect` in a fiber while pumping (real time + TestClock steps, 100 ms by default) until it ends. */
export const pumped = <A, E, R>(effect: Effect.Effect<A, E, R>, step: Duration.Input = "100 millis", rounds = 400) =>
  Pumping.pumped(effect, step, rounds)
