/**
 * Admission: a cap on the updates a bot holds at once, answered at the door.
 *
 * An update takes a permit when the intake accepts it and gives it back when its handler run ends
 * (or the intake drops it), so the count covers updates waiting for a handler as well as running
 * ones. With no permit free the offer is answered `"busy"` at once (the fast rejection of Go's
 * goroutine limiter answering 429), instead of queueing work the bot cannot do in time.
 * Optionally an AIMD controller moves the limit: it backs
 * off multiplicatively (once per round trip) when runs get slower than `targetLatencyMs` or time
 * out, and grows by about one per round trip while the limit is what holds the bot back (Netflix
 * concurrency-limits' loss-based AIMD, paced like TCP congestion avoidance).
 *
 * ```ts import.meta.vitest
 * import { expect } from "vitest"
 * import * as Admission from "./Admission.ts"
 * const aimd = new Admission.Aimd({ initial: 100, min: 10, max: 1000, targetLatencyMs: 50 })
 * aimd.sample({ latencyMs: 80, dropped: false, inFlight: 100 })
 * expect(aimd.limit).toBe(90) // too slow: back off by 10%
 * ```
 */
import { Effect } from "effect"

export interface AdaptiveOptions {
  /** Above this run time the limit backs off (default 1 s). */
  readonly targetLatencyMs?: number | undefined
  readonly min?: number | undefined
  readonly max?: number | undefined
  /** Multiplier on back-off (default 0.9). */
  readonly backoff?: number | undefined
}

export interface Options {
  /** Updates held at once: queued or running (default 500). */
  readonly limit?: number | undefined
  /** Move the limit with AIMD from handler latency (default off). */
  readonly adaptive?: AdaptiveOptions | boolean | undefined
}

/**
 * Loss-based AIMD on a concurrency limit. Pure: feed it samples, read `limit`.
 *
 * With a clock (`now` in the samples) it works like TCP congestion avoidance: it backs off at most
 * once per round trip (a slow run that started before the last back-off was admitted under the
 * old limit and says nothing about the new one) and grows by about one per round trip (1/limit
 * per fast run). Without it, every slow sample backs off and every fast one adds 1, which on a real
 * bot collapses the limit when a burst of runs admitted together all finish slow.
 */
export class Aimd {
  limit: number
  #limit: number
  #lastDecreaseAt = Number.NEGATIVE_INFINITY
  readonly min: number
  readonly max: number
  readonly targetLatencyMs: number
  readonly backoff: number
  constructor(options: { readonly initial: number } & AdaptiveOptions) {
    this.min = Math.max(1, options.min ?? 1)
    this.max = Math.max(this.min, options.max ?? Math.max(options.initial * 4, this.min))
    this.limit = Math.min(this.max, Math.max(this.min, options.initial))
    this.#limit = this.limit
    this.targetLatencyMs = options.targetLatencyMs ?? 1000
    this.backoff = options.backoff ?? 0.9
    if (!(this.backoff > 0 && this.backoff < 1)) throw new RangeError(`Admission: backoff must be within (0, 1), got ${this.backoff}`)
  }

  /** One finished run (`now`: when it finished, for round-trip pacing); returns the new limit. */
  sample(s: { readonly latencyMs: number; readonly dropped: boolean; readonly inFlight: number; readonly now?: number | undefined }): number {
    if (s.dropped || s.latencyMs > this.targetLatencyMs) {
      const startedAt = s.now === undefined ? undefined : s.now - s.latencyMs
      if (startedAt === undefined || startedAt >= this.#lastDecreaseAt) {
        this.#limit = Math.max(this.min, Math.floor(this.#limit * this.backoff))
        if (s.now !== undefined) this.#lastDecreaseAt = s.now
      }
    } else if (s.inFlight * 2 >= this.limit) {
      // Only grow while the limit is in use: an idle bot must not talk itself into a huge limit.
      this.#limit = Math.min(this.max, this.#limit + (s.now === undefined ? 1 : 1 / this.#limit))
    }
    this.limit = Math.floor(this.#limit)
    return this.limit
  }
}

export interface Stats {
  readonly limit: number
  readonly held: number
  /** Offers answered "busy" for want of a permit. */
  readonly rejected: number
  readonly adaptive: boolean
}

export interface Admission {
  /** Takes a permit if one is free; `false` means answer "busy". Never waits. */
  readonly tryAcquire: () => boolean
  /** Gives a permit back without a latency sample (the update was dropped or never ran). */
  readonly release: () => void
  /** Gives a permit back and feeds the run's latency to the adaptive limit, if any. */
  readonly completed: (run: { readonly latencyMs: number; readonly timedOut: boolean; readonly now?: number | undefined }) => void
  readonly stats: () => Stats
}

/**
 * A counter with `Semaphore.withPermitsIfAvailable` semantics (take one if free, else refuse at
 * once), kept synchronous: the permit spans from the offer to the end of the handler run, which is
 * not one effect to wrap, and the guard must cost next to nothing per update. A smaller limit
 * (adaptive) never revokes permits already held; it only refuses new ones until enough are back.
 */
export const makeUnsafe = (options: Options = {}): Admission => {
  const initial = options.limit ?? 500
  if (!Number.isInteger(initial) || initial < 1) throw new RangeError(`Admission: limit must be an integer >= 1, got ${initial}`)
  const aimd = options.adaptive === undefined || options.adaptive === false
    ? undefined
    : new Aimd({ initial, ...(options.adaptive === true ? {} : options.adaptive) })
  let limit = initial
  let held = 0
  let rejected = 0
  return {
    tryAcquire: () => {
      if (held < limit) {
        held++
        return true
      }
      rejected++
      return false
    },
    release: () => {
      if (held > 0) held--
    },
    completed: (run) => {
      if (held > 0) held--
      if (aimd !== undefined) limit = aimd.sample({ latencyMs: run.latencyMs, dropped: run.timedOut, inFlight: held + 1, now: run.now })
    },
    stats: () => ({ limit, held, rejected, adaptive: aimd !== undefined })
  }
}

export const make = (options: Options = {}): Effect.Effect<Admission> => Effect.sync(() => makeUnsafe(options))
