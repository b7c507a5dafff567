/**
 * Breaker: the circuit breaker in front of a bot's intake.
 *
 * resilience4j semantics on a count-based sliding window of handler outcomes: with at least
 * `minimumCalls` recorded, a failure rate or slow-call rate at or above its threshold opens the
 * circuit; after `waitInOpen` it goes half-open and admits `permittedProbes` updates, whose outcomes
 * close it again or reopen it. Besides the window, the circuit is *held* open by named sources (the
 * watchdog, an Alertmanager alert) until each releases it, and an operator can force it open or
 * closed. While it does not admit, the bot's intake answers `"busy"`: that is how every adapter
 * already says busy (HTTP 429/503, a paused poll).
 *
 * Why not `effect/persistence` CircuitBreaker: it wraps one call and decides when the call starts
 * and ends, with a single probe and no slow-call rate, forced states or external holds; here the
 * decision is taken at the door (offer) and the outcome arrives later from the handler run.
 *
 * ```ts import.meta.vitest
 * import { expect } from "vitest"
 * import * as Breaker from "./Breaker.ts"
 * let t = 0
 * const b = Breaker.makeUnsafe({ bot: "b", minimumCalls: 2, windowSize: 4, failureRateThreshold: 0.5 }, () => t)
 * b.record({ failure: true, durationMs: 1 })
 * b.record({ failure: true, durationMs: 1 })
 * expect(b.tryAcquire()).toBe(false) // open: the intake answers "busy"
 * t += 60_000
 * expect(b.state()).toBe("half_open")
 * ```
 */
import { Effect, PubSub, Stream } from "effect"

export type State = "closed" | "open" | "half_open" | "forced_open" | "forced_closed"

export const states: ReadonlyArray<State> = ["closed", "open", "half_open", "forced_open", "forced_closed"]

export interface Options {
  /** Outcomes kept in the sliding window (default 100). */
  readonly windowSize?: number | undefined
  /** Fewer recorded outcomes never open the circuit (default 20). */
  readonly minimumCalls?: number | undefined
  /** Failure rate (0..1) that opens it (default 0.5). */
  readonly failureRateThreshold?: number | undefined
  /** Slow-call rate (0..1) that opens it (default 1: off unless lowered). */
  readonly slowCallRateThreshold?: number | undefined
  /** A run slower than this is slow (default 5 s). */
  readonly slowCallMs?: number | undefined
  /** Time in open before half-open (default 30 s). */
  readonly waitInOpenMs?: number | undefined
  /** Updates admitted in half-open to probe (default 10). */
  readonly permittedProbes?: number | undefined
  /** Whether handler outcomes feed the window at all (default true when options are given). */
  readonly recordOutcomes?: boolean | undefined
  /**
   * Holds kept at once (default 1,000). A hold from a new source beyond it is counted in
   * `holdsOverflow` and not recorded: the circuit is already held open by the others.
   */
  readonly maxHolds?: number | undefined
}

/** Longest reason a hold keeps (in UTF-16 units); longer ones are cut and end in `…`. */
export const maxHoldReason = 1024

export interface Transition {
  readonly bot: string
  readonly from: State
  readonly to: State
  readonly reason: string
  readonly at: number
}

export interface Stats {
  readonly state: State
  readonly calls: number
  readonly failureRate: number
  readonly slowCallRate: number
  /** Sources holding the circuit open, with why (at most `maxHolds`). */
  readonly holds: Readonly<Record<string, string>>
  /** Holds refused because `maxHolds` were held, since the last reset. */
  readonly holdsOverflow: number
  /** Offers answered "busy" because the circuit did not admit them. */
  readonly rejected: number
  readonly transitions: number
}

export interface Breaker {
  readonly bot: string
  readonly recordsOutcomes: boolean
  /** The current state, after any timed move (open -> half_open). */
  readonly state: () => State
  /** Whether an update may enter now; in half-open, takes one of the probe permits. */
  readonly tryAcquire: () => boolean
  /**
   * The outcome of an admitted update's handler run. Probes are judged even when the breaker does
   * not record outcomes in closed state (`recordOutcomes: false`), or it could never close again.
   */
  readonly record: (outcome: { readonly failure: boolean; readonly durationMs: number }) => void
  /** An admitted update that will never run (the intake refused or dropped it): frees its probe. */
  readonly cancel: () => void
  /**
   * Opens the circuit and keeps it open until `source` releases it, or until `until` (ms on the
   * breaker's clock) when that is in the future: a hold its source must keep renewing. Holding
   * again replaces the reason and `until`. Returns false when the hold was not recorded (a new
   * source beyond `maxHolds`); the circuit is open all the same.
   */
  readonly hold: (source: string, reason: string, options?: { readonly until?: number | undefined }) => boolean
  /** Drops `source`'s hold; with no holds left the circuit goes half-open to probe. */
  readonly release: (source: string) => void
  readonly forceOpen: (reason: string) => void
  readonly forceClosed: (reason: string) => void
  /** Back to closed with an empty window, holds dropped (an operator's reset). */
  readonly reset: (reason: string) => void
  readonly stats: () => Stats
  /** Every transition from now on, while the breaker lives. */
  readonly transitions: Stream.Stream<Transition>
  /** The last transitions (at most 100), oldest first. */
  readonly history: () => ReadonlyArray<Transition>
  /** Counts of transitions by `from->to`, for metrics. */
  readonly transitionCounts: () => ReadonlyMap<string, number>
}

const ratio = (name: string, v: number) => {
  if (!(v >= 0 && v <= 1)) throw new RangeError(`Breaker: ${name} must be within [0, 1], got ${v}`)
  return v
}
const positiveInt = (name: string, v: number) => {
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`Breaker: ${name} must be an integer >= 1, got ${v}`)
  return v
}

/**
 * A breaker reading time from `now` (the Effect clock in `make`, so `TestClock` drives it). Throws a
 * `RangeError` on invalid options.
 */
export const makeUnsafe = (
  options: Options & { readonly bot: string },
  now: () => number,
  pubsub?: PubSub.PubSub<Transition>
): Breaker => {
  const windowSize = positiveInt("windowSize", options.windowSize ?? 100)
  const minimumCalls = positiveInt("minimumCalls", Math.min(options.minimumCalls ?? 20, windowSize))
  const failureRateThreshold = ratio("failureRateThreshold", options.failureRateThreshold ?? 0.5)
  const slowCallRateThreshold = ratio("slowCallRateThreshold", options.slowCallRateThreshold ?? 1)
  const slowCallMs = options.slowCallMs ?? 5000
  const waitInOpenMs = options.waitInOpenMs ?? 30_000
  const permittedProbes = positiveInt("permittedProbes", options.permittedProbes ?? 10)
  const recordsOutcomes = options.recordOutcomes ?? true
  const maxHolds = positiveInt("maxHolds", options.maxHolds ?? 1000)
  const bot = options.bot

  // The window: a ring of outcomes, 1 bit failure, 1 bit slow.
  const ring = new Uint8Array(windowSize)
  let count = 0
  let head = 0
  let failures = 0
  let slows = 0
  let state: State = "closed"
  let openedAt = 0
  let halfOpenedAt = 0
  let probesLeft = 0
  let probeResults = 0
  let probeFailures = 0
  let probeSlows = 0
  let rejected = 0
  let transitionTotal = 0
  const holds = new Map<string, { readonly reason: string; readonly until: number | undefined }>()
  let holdsOverflow = 0
  // The earliest `until` among the holds, so the intake's door checks one number, not every hold.
  let nextExpiry = Number.POSITIVE_INFINITY
  const history: Array<Transition> = []
  const counts = new Map<string, number>()

  const clearWindow = () => {
    ring.fill(0)
    count = head = failures = slows = 0
  }

  const move = (to: State, reason: string) => {
    if (to === state) return
    const t: Transition = { bot, from: state, to, reason, at: now() }
    state = to
    transitionTotal++
    const key = `${t.from}->${t.to}`
    counts.set(key, (counts.get(key) ?? 0) + 1)
    history.push(t)
    if (history.length > 100) history.shift()
    if (to === "open") openedAt = t.at
    if (to === "half_open") {
      halfOpenedAt = t.at
      probesLeft = permittedProbes
      probeResults = probeFailures = probeSlows = 0
    }
    if (to === "closed") clearWindow()
    if (pubsub !== undefined) PubSub.publishUnsafe(pubsub, t)
  }

  const expireHolds = () => {
    const t = now()
    if (t < nextExpiry) return
    nextExpiry = Number.POSITIVE_INFINITY
    let lapsed: string | undefined
    for (const [source, h] of holds) {
      if (h.until === undefined) continue
      if (h.until <= t) {
        holds.delete(source)
        lapsed = source
      } else if (h.until < nextExpiry) nextExpiry = h.until
    }
    // A hold not renewed by its end is over, as if released: probe at once.
    if (lapsed !== undefined && holds.size === 0 && state === "open") move("half_open", `${lapsed} lapsed (not renewed by its end time)`)
  }

  const advance = () => {
    expireHolds()
    if (state === "open" && holds.size === 0 && now() - openedAt >= waitInOpenMs) {
      move("half_open", `waited ${waitInOpenMs} ms in open`)
    }
  }

  const judgeProbes = () => {
    const fr = probeFailures / probeResults
    const sr = probeSlows / probeResults
    if (fr >= failureRateThreshold || sr >= slowCallRateThreshold) {
      move("open", `probes: failure rate ${pct(fr)}, slow-call rate ${pct(sr)}`)
    } else {
      move("closed", `${probeResults} probes passed (failure rate ${pct(fr)})`)
    }
  }

  // Probes can get lost (dropped by a full intake, a bot that never answers): a probe round that
  // has given out every permit and waited `waitInOpenMs` is judged on what came back, or, if
  // nothing did, starts again, so half-open always ends.
  const expireProbeRound = () => {
    if (probesLeft > 0 || now() - halfOpenedAt < waitInOpenMs) return
    if (probeResults > 0) return judgeProbes()
    halfOpenedAt = now()
    probesLeft = permittedProbes
  }

  const rates = () => ({
    failureRate: count === 0 ? 0 : failures / count,
    slowCallRate: count === 0 ? 0 : slows / count
  })

  const breaker: Breaker = {
    bot,
    recordsOutcomes,
    state: () => {
      advance()
      return state
    },
    tryAcquire: () => {
      if (state === "closed" || state === "forced_closed") return true
      advance()
      if (state === "half_open") expireProbeRound()
      if (state === "half_open" && probesLeft > 0) {
        probesLeft--
        return true
      }
      rejected++
      return false
    },
    record: ({ failure, durationMs }) => {
      const slow = durationMs >= slowCallMs
      if (state === "half_open") {
        probeResults++
        if (failure) probeFailures++
        if (slow) probeSlows++
        if (probeResults >= permittedProbes) judgeProbes()
        return
      }
      if (state !== "closed" || !recordsOutcomes) return
      const bits = (failure ? 1 : 0) | (slow ? 2 : 0)
      if (count === windowSize) {
        const old = ring[head]!
        if (old & 1) failures--
        if (old & 2) slows--
      } else count++
      ring[head] = bits
      head = (head + 1) % windowSize
      if (failure) failures++
      if (slow) slows++
      if (count >= minimumCalls) {
        const { failureRate, slowCallRate } = rates()
        if (failureRate >= failureRateThreshold && failures > 0) {
          move("open", `failure rate ${pct(failureRate)} over the last ${count} runs (threshold ${pct(failureRateThreshold)})`)
        } else if (slowCallRate >= slowCallRateThreshold && slows > 0) {
          move("open", `slow-call rate ${pct(slowCallRate)} over the last ${count} runs (slower than ${slowCallMs} ms; threshold ${pct(slowCallRateThreshold)})`)
        }
      }
    },
    cancel: () => {
      if (state === "half_open" && probesLeft < permittedProbes - probeResults) probesLeft++
    },
    hold: (source, reason, options) => {
      expireHolds()
      const t = now()
      const until = options?.until !== undefined && options.until > t ? options.until : undefined
      const kept = reason.length > maxHoldReason ? reason.slice(0, maxHoldReason - 1) + "…" : reason
      const recorded = holds.has(source) || holds.size < maxHolds
      if (recorded) {
        holds.set(source, { reason: kept, until })
        if (until !== undefined && until < nextExpiry) nextExpiry = until
      } else holdsOverflow++
      if (state === "forced_open" || state === "forced_closed") return recorded
      if (state !== "open") move("open", `${source}: ${kept}`)
      else openedAt = t
      return recorded
    },
    release: (source) => {
      expireHolds()
      if (!holds.delete(source)) return
      // The holder decided the danger is over (a quiet period, a resolved alert): probe at once.
      if (holds.size === 0 && state === "open") move("half_open", `${source} released`)
    },
    forceOpen: (reason) => move("forced_open", `operator: ${reason}`),
    forceClosed: (reason) => move("forced_closed", `operator: ${reason}`),
    reset: (reason) => {
      holds.clear()
      holdsOverflow = 0
      nextExpiry = Number.POSITIVE_INFINITY
      clearWindow()
      move("closed", `reset: ${reason}`)
    },
    stats: () => {
      advance()
      const reasons: Record<string, string> = {}
      for (const [source, h] of holds) reasons[source] = h.reason
      return { state, calls: count, ...rates(), holds: reasons, holdsOverflow, rejected, transitions: transitionTotal }
    },
    transitions: pubsub === undefined ? Stream.empty : Stream.fromPubSub(pubsub),
    history: () => [...history],
    transitionCounts: () => counts
  }
  return breaker
}

/** A breaker on the current Effect clock (so `TestClock` drives its waits in tests). */
export const make = (options: Options & { readonly bot: string }): Effect.Effect<Breaker> =>
  Effect.clockWith((clock) =>
    // Sliding: a subscriber that falls behind loses the oldest transitions and never blocks the intake.
    Effect.map(PubSub.sliding<Transition>(256), (pubsub) => makeUnsafe(options, () => clock.currentTimeMillisUnsafe(), pubsub))
  )

/** Whether a state lets updates in without limit (half-open admits only its probes). */
export const isClosed = (s: State): boolean => s === "closed" || s === "forced_closed"

const pct = (x: number) => `${Math.round(x * 1000) / 10}%`
