import { Clock, Duration, Effect, Fiber, type Scope } from "effect"
import { TestClock } from "effect/testing"
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

// ---- under TestClock: sockets need real time, the code under test reads the TestClock ----------

const liveClock = Clock.Clock.defaultValue()

/** Sleeps on the real clock, even under TestClock. */
export const realSleep = (ms: number) => Effect.sleep(Duration.millis(ms)).pipe(Effect.provideService(Clock.Clock, liveClock))

/**
 * Waits until `predicate` holds, letting real I/O happen between checks and moving the TestClock
 * by `step` each round (so backoffs and long polls progress). Dies after `rounds`, so a wait that
 * never ends shows up as a failure after a bounded amount of test time: `rounds * step`.
 */
export const pump = (
  predicate: () => boolean,
  options: { readonly step?: Duration.Input; readonly rounds?: number; readonly what?: string } = {}
) =>
  Effect.gen(function*() {
    const rounds = options.rounds ?? 400
    for (let i = 0; i < rounds; i++) {
      if (predicate()) return
      yield* realSleep(i < 20 ? 1 : 5)
      if (predicate()) return
      if (options.step !== undefined) yield* TestClock.adjust(options.step)
    }
    return yield* Effect.die(new Error(`condition not reached: ${options.what ?? "?"}`))
  })

/** Runs `effect` in a fiber while pumping (real time + TestClock steps) until it ends. */
export const pumped = <A, E, R>(effect: Effect.Effect<A, E, R>, step: Duration.Input = "100 millis", rounds = 400) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(effect, { startImmediately: true })
    yield* pump(() => fiber.pollUnsafe() !== undefined, { step, rounds, what: "effect to finish" })
    return yield* Fiber.join(fiber)
  })

/** `withManager` for tests under TestClock: bots left running are stopped with time pumped. */
export const withManagerPumped = <A, E>(effect: Effect.Effect<A, E, BotManager | Scope.Scope>) =>
  LeakCheck.verify(Effect.scoped(Effect.gen(function*() {
    const manager = yield* BotManager
    return yield* effect.pipe(Effect.onExit(() => Effect.ignore(pumped(manager.stopAll({ deadline: "5 seconds", drain: "1 second" }), "100 millis"))))
  }))).pipe(Effect.provide(BotManager.layer))
