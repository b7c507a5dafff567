/**
 * LeakCheck: a goleak-style assertion that a test left no fiber running.
 *
 * Take a baseline, run the test, then check that no fiber that started during the test is still
 * alive. Fibers often end a moment after the test's last step (a finalizer, an interrupted loop
 * unwinding), so the check retries with a doubling backoff for about half a second before it fails,
 * using the real clock even under `TestClock`. On failure it lists each leaked fiber with its id,
 * task, bot and age, and says what to try.
 *
 * ```ts
 * it.effect("stops cleanly", () =>
 *   LeakCheck.verify(Effect.gen(function*() {
 *     const manager = yield* BotManager
 *     yield* manager.start(bot)
 *     yield* manager.stop("echo")
 *   })).pipe(Effect.provide(BotManager.layer)))
 * ```
 */
import { Clock, Data, Duration, Effect, Fiber } from "effect"
import { BotManager } from "../BotManager.ts"
import * as FiberRegistry from "../FiberRegistry.ts"

export interface Options {
  /** Task names (exact, or RegExp) whose fibers may outlive the test. */
  readonly allow?: ReadonlyArray<string | RegExp> | undefined
  /** How long to keep retrying before failing (default 500 ms). */
  readonly timeout?: Duration.Input | undefined
}

export class FiberLeak extends Data.TaggedError("FiberLeak")<{
  readonly leaks: ReadonlyArray<FiberRegistry.LiveFiber>
}> {
  override get message(): string {
    const lines = this.leaks.map((f) =>
      `  fiber #${f.id} task=${f.task} bot=${f.bot} age=${f.ageMs}ms${f.span === undefined ? "" : ` span=${f.span}`}`
    )
    return [
      `found ${this.leaks.length} unexpected fiber(s) still running after the test:`,
      ...lines,
      "Each was started during the test and is still alive. Fork it into a scope that ends with the test",
      "(Effect.forkScoped, FiberSet, a bot's ctx.fork), stop the bot that owns it, or, if it is meant to",
      "outlive the test, allow its task name: LeakCheck.verify(effect, { allow: [\"task/name\"] })."
    ].join("\n")
  }
}

export interface Baseline {
  readonly registry: FiberRegistry.FiberRegistryImpl
  readonly ids: ReadonlySet<number>
}

export const baseline = (registry: FiberRegistry.FiberRegistryImpl): Baseline => ({
  registry,
  ids: new Set(registry.fibers().map((f) => f.id))
})

const liveClock = Clock.Clock.defaultValue()

const allowed = (task: string, allow: ReadonlyArray<string | RegExp>) =>
  allow.some((a) => (typeof a === "string" ? a === task : a.test(task)))

/** Fails with `FiberLeak` when fibers started since `base` are still alive after the retries. */
export const check = (base: Baseline, options: Options = {}): Effect.Effect<void, FiberLeak> =>
  Effect.gen(function*() {
    const self = Fiber.getCurrent()?.id
    const allow = options.allow ?? []
    const budget = Duration.toMillis(Duration.fromInputUnsafe(options.timeout ?? "500 millis"))
    const leaks = () =>
      base.registry.fibers().filter((f) => !base.ids.has(f.id) && f.id !== self && !allowed(f.task, allow))
    let waited = 0
    let delay = 1
    while (true) {
      const found = leaks()
      if (found.length === 0) return
      if (waited >= budget) return yield* new FiberLeak({ leaks: found })
      const step = Math.min(delay, 100, budget - waited)
      yield* Effect.sleep(Duration.millis(step)).pipe(Effect.provideService(Clock.Clock, liveClock))
      waited += step
      delay *= 2
    }
  })

/**
 * Runs `effect` with every fiber it starts tracked, then checks that none is left. Bots started
 * through the `BotManager` are tracked by the manager's own registry, which is the one used here.
 */
export const verify = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  options?: Options
): Effect.Effect<A, E | FiberLeak, R | BotManager> =>
  Effect.gen(function*() {
    const manager = yield* BotManager
    const base = baseline(manager.registry)
    const result = yield* FiberRegistry.track(manager.registry)(effect)
    yield* check(base, options)
    return result
  })
