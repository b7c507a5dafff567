import { Effect } from "effect"

/** Yields until `predicate` holds (at most `max` times): lets forked fibers make progress without time passing. */
export const eventually = (predicate: () => boolean, max = 10_000): Effect.Effect<void> =>
  Effect.gen(function*() {
    for (let i = 0; i < max; i++) {
      if (predicate()) return
      yield* Effect.yieldNow
    }
    return yield* Effect.die(new Error(`condition not reached after ${max} yields`))
  })

/** Yields `n` times so forked fibers can run their next steps. */
export const settle = (n = 100): Effect.Effect<void> => Effect.repeat(Effect.yieldNow, { times: n - 1 })
