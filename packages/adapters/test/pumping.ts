/**
 * Tests of sockets under `TestClock`: the code under test reads the TestClock, the sockets need real
 * time. Shared by the Discord and Telegram tests.
 */
import { Clock, Duration, Effect, Fiber, type Scope } from "effect"
import { TestClock } from "effect/testing"
import { BotManager } from "@fiberbot/core"
import { LeakCheck } from "@fiberbot/core/testing"

const liveClock = Clock.Clock.defaultValue()

/** Sleeps on the real clock, even under TestClock. */
export const realSleep = (ms: number) => Effect.sleep(Duration.millis(ms)).pipe(Effect.provideService(Clock.Clock, liveClock))

/**
 * Waits until `predicate` holds, letting real I/O happen between checks and moving the TestClock
 * by `step` each round (so heartbeats, backoffs, throttles and long polls progress). Dies after
 * `rounds`, so a wait that never ends is a failure after a bounded amount of test time.
 */
export const pump = (predicate: () => boolean, options: { readonly step?: Duration.Input; readonly rounds?: number; readonly what?: string } = {}) =>
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

/** Runs `effect` in a fiber while pumping (real time + TestClock steps of `step`) until it ends. */
export const pumped = <A, E, R>(effect: Effect.Effect<A, E, R>, step: Duration.Input, rounds = 400) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(effect, { startImmediately: true })
    yield* pump(() => fiber.pollUnsafe() !== undefined, { step, rounds, what: "effect to finish" })
    return yield* Fiber.join(fiber)
  })

/**
 * Runs a test with a BotManager and the leak assertion. Bots still running when the test ends
 * (a failed assertion) are stopped with time pumped, so a failure reports instead of hanging.
 */
export const withManagerPumped = <A, E>(effect: Effect.Effect<A, E, BotManager | Scope.Scope>) =>
  LeakCheck.verify(Effect.scoped(Effect.gen(function*() {
    const manager = yield* BotManager
    return yield* effect.pipe(Effect.onExit(() => Effect.ignore(pumped(manager.stopAll({ deadline: "5 seconds", drain: "1 second" }), "100 millis"))))
  }))).pipe(Effect.provide(BotManager.layer))
