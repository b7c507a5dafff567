/**
 * IdentifyThrottler: every IDENTIFY of every shard goes through here.
 *
 * Discord allows one identify per 5 s per bucket (`shard_id % max_concurrency`) and a daily
 * budget (`session_start_limit.remaining`); exceeding the budget gets the token reset. Each bucket
 * is a one-permit semaphore held for the 5 s spacing, so the permit comes back even when the
 * waiting shard is interrupted; an exhausted budget is a typed error, never a retry loop.
 */
import { Clock, Effect, Semaphore } from "effect"
import { IdentifyLimitExhausted } from "./Errors.ts"

export interface IdentifyThrottler {
  /** Waits for the shard's identify slot; fails when the daily budget is used up. */
  readonly acquire: (shard: number) => Effect.Effect<void, IdentifyLimitExhausted>
  readonly remaining: () => number
  readonly maxConcurrency: number
}

export interface Options {
  readonly maxConcurrency: number
  readonly remaining: number
  readonly resetAfterMs?: number | undefined
  /** Spacing per bucket (Discord: 5 s). */
  readonly spacingMs?: number | undefined
  /** Added to the spacing: Discord measures on arrival, and frames do not all take the same time. */
  readonly marginMs?: number | undefined
  /**
   * Last identify time per bucket, shared with earlier throttlers (a bot restarted within 5 s must
   * still wait for the slot its previous run used).
   */
  readonly history?: Map<number, number> | undefined
}

export const make = (options: Options): Effect.Effect<IdentifyThrottler> =>
  Effect.sync(() => {
    const concurrency = Math.max(1, options.maxConcurrency)
    const spacing = (options.spacingMs ?? 5000) + (options.marginMs ?? 500)
    const history = options.history ?? new Map<number, number>()
    const buckets = Array.from({ length: concurrency }, () => ({ lock: Semaphore.makeUnsafe(1) }))
    let remaining = options.remaining
    return {
      maxConcurrency: concurrency,
      remaining: () => remaining,
      acquire: (shard) => {
        const index = shard % concurrency
        const bucket = buckets[index]!
        return Semaphore.withPermit(bucket.lock, Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const wait = (history.get(index) ?? Number.NEGATIVE_INFINITY) + spacing - now
          if (wait > 0) yield* Effect.sleep(wait)
          if (remaining <= 0) return yield* new IdentifyLimitExhausted({ shard, resetAfterMs: options.resetAfterMs ?? 0 })
          remaining--
          history.set(index, yield* Clock.currentTimeMillis)
        }))
      }
    }
  })
