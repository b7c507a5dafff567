/**
 * Intake: the bounded queue between an adapter and the dispatcher.
 *
 * Every intake has a bound and a policy for when it is full:
 * - `backpressure`: `offer` waits for room, so the source slows down (polling, reading a socket);
 * - `drop-oldest`: the oldest waiting update is dropped and counted;
 * - `reject-busy`: `offer` answers `"busy"` at once, so the adapter can say so (HTTP 429, a busy frame).
 *
 * `close` stops intake: later offers answer `"closed"`, while updates already queued are still
 * delivered to the dispatcher.
 */
import { Cause, Effect, Queue } from "effect"
import type { Update } from "./Update.ts"

export type Policy = "backpressure" | "drop-oldest" | "reject-busy"

export type OfferResult = "accepted" | "busy" | "closed"

export interface Stats {
  readonly accepted: number
  readonly dropped: number
  readonly rejected: number
  readonly depth: number
}

export interface Intake {
  readonly capacity: number
  readonly policy: Policy
  readonly offer: (update: Update) => Effect.Effect<OfferResult>
  /** The next update; fails with `Done` once the intake is closed and empty. */
  readonly take: Effect.Effect<Update, Cause.Done>
  readonly close: Effect.Effect<void>
  readonly isClosed: () => boolean
  readonly stats: () => Stats
}

export const make = (options: {
  readonly capacity: number
  readonly policy: Policy
  /** Runs when `drop-oldest` drops a waiting update (admission gives its permit back). */
  readonly onDropped?: (() => void) | undefined
}): Effect.Effect<Intake> =>
  Effect.gen(function*() {
    const { capacity, policy } = options
    const queue = yield* (policy === "backpressure"
      ? Queue.bounded<Update, Cause.Done>(capacity)
      : policy === "drop-oldest"
      ? Queue.sliding<Update, Cause.Done>(capacity)
      : Queue.dropping<Update, Cause.Done>(capacity))
    let accepted = 0
    let dropped = 0
    let rejected = 0
    let closed = false

    const offer = (update: Update): Effect.Effect<OfferResult> =>
      Effect.suspend(() => {
        if (closed) return Effect.succeed("closed" as const)
        if (policy === "backpressure") {
          return Effect.map(Queue.offer(queue, update), (ok): OfferResult => {
            if (!ok) return "closed"
            accepted++
            return "accepted"
          })
        }
        // sliding and dropping queues never suspend: decide from the size right before offering
        const full = Queue.isFullUnsafe(queue)
        const ok = Queue.offerUnsafe(queue, update)
        if (!ok) {
          if (policy === "reject-busy" && full) {
            rejected++
            return Effect.succeed("busy" as const)
          }
          return Effect.succeed("closed" as const)
        }
        accepted++
        if (full) {
          dropped++
          options.onDropped?.()
        }
        return Effect.succeed("accepted" as const)
      })

    return {
      capacity,
      policy,
      offer,
      take: Queue.take(queue),
      close: Effect.suspend(() => {
        if (closed) return Effect.void
        closed = true
        return Effect.asVoid(Queue.end(queue))
      }),
      isClosed: () => closed,
      stats: () => ({ accepted, dropped, rejected, depth: Queue.sizeUnsafe(queue) })
    }
  })
