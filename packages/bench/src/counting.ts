/**
 * The no-op handler the throughput benchmarks share: a `message` route that does nothing but
 * count, and completes `done` once it has seen `n` updates.
 */
import { Deferred, Effect } from "effect"
import { Router } from "@fiberbot/core"

export const countingRouter = (n: number) =>
  Effect.map(Deferred.make<void>(), (done) => {
    let handled = 0
    const router = Router.empty.on("message", () =>
      Effect.sync(() => {
        if (++handled === n) Deferred.doneUnsafe(done, Effect.void)
      }))
    return { done, router }
  })
