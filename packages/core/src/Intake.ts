/**
 * Intake: the bounded queue between an adapter and the dispatcher.
 *
 * Every intake has a bound and a policy for when it is full:
 * - `backpressure`: `offer` waits for room, so the source slows down (polling, reading a socket);
 * - `drop-oldest`: the oldest waiting update is dropped, counted, and its `onDone(true)` called (it is
 *   not coming back, so its source may confirm past it);
 * - `reject-busy`: `offer` answers `"busy"` at once, so the adapter can say so (HTTP 429, a busy frame).
 *
 * `close` stops intake: later offers answer `"closed"`, while updates already queued are still
 * delivered to the dispatcher.
 */
import { Cause, Effect, Exit, Queue } from "effect"
import { notifyDone, type Update } from "./Update.ts"

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
  /**
   * Offers without waiting: the answer, or `undefined` when a `backpressure` intake is full and
   * the update must wait its turn through `offer`. Adapters that receive in callbacks use it so an
   * update costs no effect when there is room.
   */
  readonly tryOffer: (update: Update) => OfferResult | undefined
  /** The next update; fails with `Done` once the intake is closed and everything offered was taken. */
  readonly take: Effect.Effect<Update, Cause.Done>
  /** The next queued update, without waiting (the dispatcher's end). */
  readonly poll: () => Update | undefined
  /** Completes when an update was queued or the intake closed. */
  readonly awaitOffer: Effect.Effect<void>
  /**
   * Lets the dispatcher take an update straight from the adapter, skipping the queue, while the
   * queue is empty (so nothing queued can be overtaken): `direct` answers whether it took it.
   */
  readonly setDirect: (direct: (update: Update) => boolean) => void
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
    // The queue holds updates and makes backpressured offers wait. The dispatcher waits for one
    // without taking it (`Queue.peek`), then polls and admits in one step, so an update is never
    // taken out of the queue and then left waiting.
    const queue = yield* (policy === "backpressure"
      ? Queue.bounded<Update, Cause.Done>(capacity)
      : policy === "drop-oldest"
      ? Queue.sliding<Update, Cause.Done>(capacity)
      : Queue.dropping<Update, Cause.Done>(capacity))
    let accepted = 0
    let dropped = 0
    let rejected = 0
    let closed = false
    let direct: ((update: Update) => boolean) | undefined

    const poll = (): Update | undefined => {
      const exit = Queue.takeUnsafe(queue)
      return exit !== undefined && Exit.isSuccess(exit) ? exit.value : undefined
    }

    const tryOffer = (update: Update): OfferResult | undefined => {
      if (closed) return "closed"
      // Only past an empty queue, so nothing queued is overtaken: a parked dispatcher wakes for a
      // queued update a scheduler turn later, and until then it would still take directly.
      if (direct !== undefined && Queue.sizeUnsafe(queue) === 0 && direct(update)) {
        accepted++
        return "accepted"
      }
      // bounded queues refuse when full (the caller then waits through `offer`); sliding and
      // dropping queues never wait: decide from the size right before offering
      const full = Queue.isFullUnsafe(queue)
      if (full && policy === "backpressure") return undefined
      // The oldest is taken out here rather than left to the sliding queue, which would discard
      // it unseen: its source must hear that it is done, or a Telegram offset (or a webhook's
      // in-flight id) would wait for it forever.
      const evicted = full && policy === "drop-oldest" ? poll() : undefined
      if (evicted !== undefined) {
        dropped++
        options.onDropped?.()
        // `true`: this policy chose not to handle it, and nothing will bring it back, so the source
        // may confirm past it (as it does for an update refused "busy"). `false` means "interrupted,
        // deliver again", which would hold a Telegram offset until a restart.
        notifyDone(evicted, true)
      }
      const ok = Queue.offerUnsafe(queue, update)
      if (!ok) {
        if (policy === "reject-busy" && full) {
          rejected++
          return "busy"
        }
        return "closed"
      }
      accepted++
      return "accepted"
    }

    const offer = (update: Update): Effect.Effect<OfferResult> =>
      Effect.suspend(() => {
        const now = tryOffer(update)
        if (now !== undefined) return Effect.succeed(now)
        return Effect.map(Queue.offer(queue, update), (ok): OfferResult => {
          if (!ok) return "closed"
          accepted++
          return "accepted"
        })
      })

    // waits for an update without taking it; ends (with nothing) once the intake is closed and empty
    const awaitOffer: Effect.Effect<void> = Effect.ignore(Queue.peek(queue))

    // after `close`, Effect's queue still delivers the offers that were waiting for room, then ends
    const take: Effect.Effect<Update, Cause.Done> = Queue.take(queue)

    return {
      capacity,
      policy,
      offer,
      tryOffer,
      take,
      poll,
      awaitOffer,
      setDirect: (d) => {
        direct = d
      },
      close: Effect.sync(() => {
        if (closed) return
        closed = true
        // later offers answer "closed"; what is queued, and what was already waiting for room,
        // is still delivered (`take` fails with `Done` after the last of it)
        Queue.endUnsafe(queue)
      }),
      isClosed: () => closed,
      stats: () => ({ accepted, dropped, rejected, depth: Queue.sizeUnsafe(queue) })
    }
  })
