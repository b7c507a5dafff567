import { Effect, type Scope } from "effect"
import { BotManager } from "@fiberbot/core"
import { LeakCheck } from "@fiberbot/core/testing"

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
