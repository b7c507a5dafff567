/**
 * Polling: the long-polling source of the Telegram adapter.
 *
 * Start deletes any webhook (optionally dropping pending updates) and makes a first, short
 * `getUpdates`: a 409 there means another instance still polls (a deploy overlapping), so it
 * backs off and retries for `conflictTimeout`, then fails with a message that says so. Then the
 * `telegram/poll` task loops: fetch, hand each new update to the intake, repeat. Delivery is
 * at-least-once: the offset sent with each fetch only moves past updates whose handlers finished
 * (see `Offsets`), fetching runs at most `limit` updates ahead of it (the next fetch starts when
 * the outstanding updates will be handled within the idle part of a round trip), and on stop a last
 * `getUpdates(offset, limit 1, timeout 0)` confirms what drained. The pending long poll is
 * interrupted on stop (its request aborted), never waited for. Errors never end the loop
 * silently: 429 waits `retry_after` (at most the client's `maxRetryAfter`), other failures back
 * off with jitter and are logged, an answer whose result is not an array is such a failure, and
 * elements of a batch that are not updates are skipped and counted (`invalid`); and
 * `status().sinceLastPollMs` / the `fiberbot_telegram_last_poll_timestamp_seconds` gauge say how
 * long ago a fetch last succeeded.
 */
import type { Update as TgUpdate } from "@grammyjs/types"
import type { Adapter } from "@fiberbot/core"
import { Duration, Effect, Metric } from "effect"
import type { Client } from "./Client.ts"
import * as Decode from "./Decode.ts"
import type * as Offsets from "./Offsets.ts"
import { TelegramNetworkError, type ApiError } from "./TelegramError.ts"

export interface Options {
  /** Long-poll timeout in seconds (default 30). */
  readonly timeout?: number | undefined
  /** Updates per fetch, 1..100 (default 100); also how far fetching runs ahead of confirmation. */
  readonly limit?: number | undefined
  readonly allowedUpdates?: ReadonlyArray<string> | undefined
  /**
   * `at-least-once` (default): an update is confirmed only after its handler and those of every
   * earlier update finished, so a crash or stop re-delivers it; fetching runs at most `limit` ahead.
   * `at-most-once`: confirmed when fetched (as grammY's runner and Telegraf do); fetching is only
   * held back by the intake, and a crash loses what was fetched but not handled.
   */
  readonly delivery?: "at-least-once" | "at-most-once" | undefined
  /** Drop updates queued while the bot was away (default false). */
  readonly dropPendingUpdates?: boolean | undefined
  /** How long a 409 at start is retried before start fails (default 20 s). */
  readonly conflictTimeout?: Duration.Input | undefined
  /**
   * While a slow handler holds the confirmed offset, getUpdates re-sends the unconfirmed updates at
   * once; the poller then asks again after this long (or as soon as a handler finishes) to pick up
   * new updates of other chats (default 200 ms).
   */
  readonly refetchInterval?: Duration.Input | undefined
  /** Backoff of the poll loop after a failed fetch (default 500 ms doubling to 30 s, with jitter). */
  readonly backoffBase?: Duration.Input | undefined
  readonly backoffMax?: Duration.Input | undefined
}

export interface Stats {
  fetched: number
  duplicates: number
  dropped: number
  failures: number
  /** Elements of getUpdates answers that were not updates (skipped, confirmed past when they had an id). */
  invalid: number
  lastPollAt: number | undefined
  lastError: string | undefined
}

const lastPollGauge = Metric.gauge("fiberbot_telegram_last_poll_timestamp_seconds", {
  description: "When getUpdates last succeeded (liveness of the poller)"
})

const ms = (d: Duration.Input) => Duration.toMillis(Duration.fromInputUnsafe(d))

export class StartFailure {
  readonly reason: string
  constructor(reason: string) {
    this.reason = reason
  }
}

/** Readies polling; returns the loop to run as the `telegram/poll` task and the final confirm. */
export const prepare = (params: {
  readonly adapter: string
  readonly client: Client
  readonly ctx: Adapter.AdapterContext
  readonly tracker: Offsets.Tracker
  readonly stats: Stats
  readonly options: Options
}) =>
  Effect.gen(function*() {
    const { adapter, client, ctx, tracker, stats, options } = params
    const timeout = Math.max(0, Math.min(50, options.timeout ?? 30))
    const limit = Math.max(1, Math.min(100, options.limit ?? 100))
    const allowed = options.allowedUpdates === undefined ? undefined : [...options.allowedUpdates]
    const baseMs = ms(options.backoffBase ?? "500 millis")
    const maxMs = ms(options.backoffMax ?? "30 seconds")
    const refetch = Duration.fromInputUnsafe(options.refetchInterval ?? "200 millis")
    const atLeastOnce = (options.delivery ?? "at-least-once") === "at-least-once"
    const refill = Math.floor(limit / 4)
    const gauge = Metric.withAttributes(lastPollGauge, { bot: ctx.bot, adapter })
    tracker.reset()

    // Pipelining (at-least-once): a fetch while updates are outstanding brings those back as
    // re-sends (the offset cannot pass them), which cost bandwidth and a parse each; a fetch only
    // after all finished leaves the handlers idle for a round trip. So the next fetch starts when
    // what is outstanding will be handled within the part of a round trip this process spends
    // idle (waiting on the network): on a fast link or a busy process, that is close to none.
    // All three figures are moving averages, measured as the loop goes.
    let idleRttMs = 0 // idle time of the event loop during a getUpdates answered at once
    let perUpdateMs = 0 // how long the offset takes to move past one update
    const ewma = (prev: number, sample: number) => (prev === 0 ? sample : prev * 0.8 + sample * 0.2)
    const prefetchAt = () =>
      perUpdateMs === 0 ? refill : Math.min(refill, Math.ceil(idleRttMs / perUpdateMs))

    const fetch = (pollTimeout: number) =>
      Effect.gen(function*() {
        const offset = atLeastOnce ? tracker.offset() : tracker.next()
        // with updates outstanding, the server answers at once: a clean round-trip sample
        const timed = tracker.outstanding() > 0
        const elu = timed ? performance.eventLoopUtilization() : undefined
        const updates = yield* client.call("getUpdates", {
          ...(offset === undefined ? {} : { offset }),
          limit,
          timeout: pollTimeout,
          ...(allowed === undefined ? {} : { allowed_updates: allowed as never })
        }, { retry: false })
        // Typed as Update[] by the Bot API, but it came off the network: anything else is a bad
        // answer the loop backs off from, not a TypeError that ends the task.
        if (!Array.isArray(updates)) {
          return yield* Effect.fail(new TelegramNetworkError({
            method: "getUpdates",
            reason: "bad-response",
            status: 200,
            detail: `the result is ${updates === null ? "null" : typeof updates}, not an array of updates`
          }))
        }
        if (elu !== undefined) idleRttMs = ewma(idleRttMs, performance.eventLoopUtilization(elu).idle)
        const now = yield* Effect.clockWith((c) => c.currentTimeMillis)
        stats.lastPollAt = now
        yield* Metric.update(gauge, now / 1000)
        return updates
      })

    /** Offers new updates; `false` once the intake is closed (the bot is stopping). */
    const handOver = (updates: ReadonlyArray<TgUpdate>) =>
      Effect.gen(function*() {
        let fresh = 0
        for (const raw of updates as ReadonlyArray<unknown>) {
          const id = typeof raw === "object" && raw !== null && !Array.isArray(raw) ? (raw as { update_id?: unknown }).update_id : undefined
          if (typeof id !== "number" || !Number.isSafeInteger(id)) {
            stats.invalid++
            // An id that still reads as a position in the queue is confirmed past, or the server
            // would send this element back on every fetch; without one, the next good update's
            // confirmation passes it.
            const at = typeof id === "number" ? Math.floor(id) : typeof id === "string" && /^\d{1,15}$/.test(id) ? Number(id) : Number.NaN
            if (Number.isSafeInteger(at) && at > 0) tracker.skip(at)
            continue
          }
          if (tracker.seen(id)) {
            stats.duplicates++
            tracker.skip(id)
            continue
          }
          const decoded = Decode.decode(adapter, raw, (handled) => tracker.finish(id, handled))
          if (decoded === undefined) continue
          tracker.track(id)
          stats.fetched++
          fresh++
          // without waiting when the bot has room; through `offer` (backpressure) when it has none
          const result = ctx.tryOffer(decoded) ?? (yield* ctx.offer(decoded))
          if (result === "busy") {
            // Dropped by the intake's policy: counted, and confirmed so it does not come back forever.
            stats.dropped++
            tracker.finish(id, true)
          } else if (result === "closed") {
            tracker.finish(id, false)
            return { open: false, fresh }
          }
        }
        return { open: true, fresh }
      })

    // ---- start: webhook off, then a first fetch that waits out a 409 for a bounded time ---------
    yield* client.call("deleteWebhook", { drop_pending_updates: options.dropPendingUpdates ?? false }).pipe(
      Effect.mapError((e) => new StartFailure(`deleteWebhook failed: ${e.message}`))
    )
    const conflictDeadline = ms(options.conflictTimeout ?? "20 seconds")
    const first = yield* Effect.gen(function*() {
      const started = yield* Effect.clockWith((c) => c.currentTimeMillis)
      let attempt = 0
      while (true) {
        const result = yield* Effect.result(fetch(0))
        if (result._tag === "Success") return result.success
        const e = result.failure
        const elapsed = (yield* Effect.clockWith((c) => c.currentTimeMillis)) - started
        const conflict = e._tag === "TelegramError" && e.error_code === 409
        const transient = e._tag === "TelegramNetworkError" || (e._tag === "TelegramError" && (e.error_code === 429 || e.error_code >= 500))
        if (!conflict && !transient) return yield* Effect.fail(new StartFailure(`getUpdates failed: ${e.message}`))
        if (elapsed >= conflictDeadline) {
          return yield* Effect.fail(new StartFailure(
            conflict
              ? `getUpdates still answers 409 Conflict after ${elapsed} ms: another instance is polling with this token ` +
                `(or a webhook is set). Stop the other instance, or raise polling.conflictTimeout if it is still draining.`
              : `getUpdates kept failing for ${elapsed} ms: ${e.message}`
          ))
        }
        attempt++
        const step = e._tag === "TelegramError" && e.error_code === 429
          ? client.backoff(e, attempt)
          : Duration.millis(Math.min(5_000, baseMs * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2))
        // The deadline bounds the wait too, not only the decision to wait: a 429 asking for an
        // hour must not hold the start past `conflictTimeout`. One last try runs at the deadline.
        const wait = Duration.millis(Math.max(0, Math.min(Duration.toMillis(step), conflictDeadline - elapsed)))
        yield* Effect.logWarning(`telegram: ${e.message}; retrying start in ${Duration.format(wait)}`)
        yield* Effect.sleep(wait)
      }
    })

    const backoff = (e: ApiError, attempt: number) =>
      e._tag === "TelegramError" && e.error_code === 429
        ? client.backoff(e, attempt)
        : Duration.millis(Math.min(maxMs, baseMs * 2 ** Math.min(20, attempt - 1)) * (0.5 + Math.random() / 2))

    const loop = Effect.gen(function*() {
      let batch: ReadonlyArray<TgUpdate> = first
      let failures = 0
      while (true) {
        const { open, fresh } = yield* handOver(batch)
        if (!open) return
        // Only re-sends came back (a slow handler holds the offset, so the server answers at once):
        // wait for a handler to finish, or the refetch interval, so other chats are not held up
        // for long and the loop does not spin.
        if (batch.length > 0 && fresh === 0) yield* Effect.timeoutOption(tracker.progress(), refetch)
        // Never fetch further than `limit` ahead of the confirmed offset (the Bot API never answers
        // more than `limit` from the offset): wait until the outstanding updates will be handled
        // within a round trip (see `prefetchAt`), learning the handling rate meanwhile.
        if (atLeastOnce) {
          const before = tracker.outstanding()
          const target = prefetchAt()
          if (before > target) {
            const since = performance.now()
            yield* tracker.drainedTo(target)
            const after = tracker.outstanding()
            if (after < before) perUpdateMs = ewma(perUpdateMs, Math.max(0.001, (performance.now() - since) / (before - after)))
          }
        }
        const result = yield* Effect.result(fetch(timeout))
        if (result._tag === "Success") {
          failures = 0
          batch = result.success
          continue
        }
        batch = []
        const e = result.failure
        failures++
        stats.failures++
        stats.lastError = e.message
        if (e._tag === "TelegramError" && e.error_code === 401) {
          yield* Effect.logError("telegram: the bot token was revoked (401 Unauthorized); polling stopped. Issue a new token with @BotFather.")
          return yield* Effect.fail(e)
        }
        const wait = backoff(e, failures)
        yield* Effect.logWarning(`telegram poll failed (${failures} in a row): ${e.message}; next try in ${Duration.format(wait)}`)
        yield* Effect.sleep(wait)
      }
    })

    const confirm = Effect.gen(function*() {
      const offset = atLeastOnce ? tracker.offset() : tracker.next()
      if (offset === undefined) return
      // The aborted long poll may still look pending to the server for a moment: a 409 here is
      // worth a few quick retries.
      for (let attempt = 1; ; attempt++) {
        const r = yield* Effect.result(client.call("getUpdates", { offset, limit: 1, timeout: 0 }, { retry: false, timeout: "2 seconds" }))
        if (r._tag === "Success") return
        const e = r.failure
        if (e._tag === "TelegramError" && e.error_code === 409 && attempt < 5) {
          yield* Effect.sleep(Duration.millis(50 * attempt))
          continue
        }
        return yield* Effect.logWarning(`telegram: final offset confirm failed: ${e.message}`)
      }
    })

    return { loop, confirm }
  })
