/**
 * Watchdog: counts live fibers, globally and per bot, and acts when they grow out of bounds.
 *
 * Every `intervalMs` (default 5 s) it samples the fiber registry. A scope (the process, or one
 * bot) is `warn` or `critical` when its count passes an absolute threshold, or when its growth
 * over a window (1, 5 and 15 minutes by default) is sustained above a slope: the least-squares
 * slope of the window's samples, counted only once the samples cover the whole window, so a burst
 * of traffic does not look like a leak. Going critical logs the grouped dump (the leaking task is
 * its first line), holds the intake breaker of the bot (of every bot, for the process) open, and
 * optionally takes a heap snapshot. After `quietMs` below critical it releases the breakers, which
 * then probe half-open and close. Every change is an event on `events` and in `history`.
 */
import { Context, Duration, Effect, Layer, PubSub, Schedule, type Scope, Stream } from "effect"
import { BotManager } from "../BotManager.ts"
import * as FiberDump from "./FiberDump.ts"
import type * as HeapSnapshot from "./HeapSnapshot.ts"

export type Level = "ok" | "warn" | "critical"

export const levelValue = (l: Level): number => (l === "ok" ? 0 : l === "warn" ? 1 : 2)

export interface Thresholds {
  readonly warn?: number | undefined
  readonly critical?: number | undefined
}

export interface SlopeRule {
  readonly window: Duration.Input
  /** Fibers per second, sustained over the window. */
  readonly perSecond: number
  readonly level: "warn" | "critical"
}

export interface Options {
  /** Time between samples (default 5 s). */
  readonly interval?: Duration.Input | undefined
  /** Absolute thresholds on all bot fibers (default warn 10,000, critical 50,000). */
  readonly global?: Thresholds | undefined
  /** Absolute thresholds on each bot's fibers (default warn 5,000, critical 20,000). */
  readonly perBot?: Thresholds | undefined
  /** Growth rules, applied to the process and to each bot (default below). */
  readonly slopes?: ReadonlyArray<SlopeRule> | undefined
  /** Time below critical before breakers are released (default 1 minute). */
  readonly quiet?: Duration.Input | undefined
  /** Hold the intake breaker open while critical (default true). */
  readonly pauseIntake?: boolean | undefined
  /** Take a heap snapshot when a scope goes critical (rate-limited and budgeted by the snapshotter). */
  readonly heapSnapshots?: HeapSnapshot.HeapSnapshots | undefined
}

/** 1 minute over 20/s warns; 5 minutes over 5/s is critical; 15 minutes over 1/s warns. */
export const defaultSlopes: ReadonlyArray<SlopeRule> = [
  { window: "1 minute", perSecond: 20, level: "warn" },
  { window: "5 minutes", perSecond: 5, level: "critical" },
  { window: "15 minutes", perSecond: 1, level: "warn" }
]

/** `*` is the whole process; anything else is a bot name. */
export type ScopeKey = string
export const GLOBAL: ScopeKey = "*"

export type Event =
  | { readonly _tag: "LevelChanged"; readonly scope: ScopeKey; readonly from: Level; readonly to: Level; readonly fibers: number; readonly reasons: ReadonlyArray<string>; readonly at: number }
  | { readonly _tag: "Tripped"; readonly scope: ScopeKey; readonly bots: ReadonlyArray<string>; readonly dump: string; readonly at: number }
  | { readonly _tag: "Released"; readonly scope: ScopeKey; readonly bots: ReadonlyArray<string>; readonly quietMs: number; readonly at: number }
  | { readonly _tag: "HeapSnapshot"; readonly scope: ScopeKey; readonly path: string | undefined; readonly refused: string | undefined; readonly at: number }

export interface ScopeStatus {
  readonly level: Level
  readonly fibers: number
  /** Slope per window label (`60s`), fibers per second; absent until the window is covered. */
  readonly slopes: Readonly<Record<string, number>>
  readonly tripped: boolean
  readonly reasons: ReadonlyArray<string>
}

export interface Watchdog {
  /** Samples once now (the loop does this every interval). */
  readonly sample: Effect.Effect<void>
  readonly status: () => { readonly global: ScopeStatus; readonly bots: Readonly<Record<string, ScopeStatus>> }
  readonly events: Stream.Stream<Event>
  /** The last events (at most 200), oldest first. */
  readonly history: () => ReadonlyArray<Event>
  /** Counts of level changes by `scope kind/from->to`, for metrics. */
  readonly transitionCounts: () => ReadonlyMap<string, number>
}

interface ScopeState {
  samples: Array<{ readonly t: number; readonly n: number }>
  level: Level
  reasons: ReadonlyArray<string>
  slopes: Record<string, number>
  tripped: boolean
  trippedBots: ReadonlyArray<string>
  quietSince: number | undefined
}

/** Least-squares slope in units per second. */
const slopeOf = (samples: ReadonlyArray<{ readonly t: number; readonly n: number }>): number => {
  const k = samples.length
  if (k < 2) return 0
  let st = 0
  let sn = 0
  for (const s of samples) {
    st += s.t
    sn += s.n
  }
  const mt = st / k
  const mn = sn / k
  let num = 0
  let den = 0
  for (const s of samples) {
    num += (s.t - mt) * (s.n - mn)
    den += (s.t - mt) ** 2
  }
  return den === 0 ? 0 : (num / den) * 1000
}

const maxLevel = (a: Level, b: Level): Level => (levelValue(a) >= levelValue(b) ? a : b)

export const make = (options: Options = {}): Effect.Effect<Watchdog, never, BotManager | Scope.Scope> =>
  Effect.gen(function*() {
    const manager = yield* BotManager
    const intervalMs = Duration.toMillis(Duration.fromInputUnsafe(options.interval ?? "5 seconds"))
    const quietMs = Duration.toMillis(Duration.fromInputUnsafe(options.quiet ?? "1 minute"))
    const global = { warn: 10_000, critical: 50_000, ...options.global }
    const perBot = { warn: 5_000, critical: 20_000, ...options.perBot }
    const slopes = (options.slopes ?? defaultSlopes).map((r) => {
      const windowMs = Duration.toMillis(Duration.fromInputUnsafe(r.window))
      return { ...r, windowMs, label: `${Math.round(windowMs / 1000)}s` }
    })
    const keepMs = Math.max(0, ...slopes.map((r) => r.windowMs)) + intervalMs
    const pauseIntake = options.pauseIntake ?? true
    const events = yield* PubSub.sliding<Event>(1024)
    const history: Array<Event> = []
    const counts = new Map<string, number>()
    const scopes = new Map<ScopeKey, ScopeState>()

    const emit = (e: Event) =>
      Effect.suspend(() => {
        history.push(e)
        if (history.length > 200) history.shift()
        return Effect.asVoid(PubSub.publish(events, e))
      })

    const evaluate = (key: ScopeKey, n: number, now: number, th: { readonly warn?: number | undefined; readonly critical?: number | undefined }) => {
      let st = scopes.get(key)
      if (st === undefined) {
        st = { samples: [], level: "ok", reasons: [], slopes: {}, tripped: false, trippedBots: [], quietSince: undefined }
        scopes.set(key, st)
      }
      st.samples.push({ t: now, n })
      while (st.samples.length > 0 && st.samples[0]!.t < now - keepMs) st.samples.shift()
      let level: Level = "ok"
      const reasons: Array<string> = []
      if (th.critical !== undefined && n >= th.critical) {
        level = "critical"
        reasons.push(`${n} live fibers >= critical ${th.critical}`)
      } else if (th.warn !== undefined && n >= th.warn) {
        level = "warn"
        reasons.push(`${n} live fibers >= warn ${th.warn}`)
      }
      const slopeValues: Record<string, number> = {}
      const oldest = st.samples[0]!.t
      for (const rule of slopes) {
        // Only a window the samples fully cover says anything about a sustained slope.
        if (now - oldest < rule.windowMs) continue
        const slope = slopeOf(st.samples.filter((s) => s.t >= now - rule.windowMs))
        slopeValues[rule.label] = Math.round(slope * 1000) / 1000
        if (slope > rule.perSecond) {
          level = maxLevel(level, rule.level)
          reasons.push(`grew ${slope.toFixed(2)} fibers/s over ${rule.label} (> ${rule.perSecond}/s is ${rule.level})`)
        }
      }
      st.slopes = slopeValues
      const from = st.level
      st.level = level
      st.reasons = reasons
      return { st, from, level, reasons }
    }

    const act = (key: ScopeKey, r: ReturnType<typeof evaluate>, n: number, now: number) =>
      Effect.gen(function*() {
        const { st, from, level, reasons } = r
        if (from !== level) {
          const kind = key === GLOBAL ? "global" : "bot"
          counts.set(`${kind}/${from}->${level}`, (counts.get(`${kind}/${from}->${level}`) ?? 0) + 1)
          yield* emit({ _tag: "LevelChanged", scope: key, from, to: level, fibers: n, reasons, at: now })
          if (level === "warn") yield* Effect.logWarning(`fiber watchdog: ${key === GLOBAL ? "process" : `bot ${key}`} at warn: ${reasons.join("; ")}`)
        }
        if (level === "critical") {
          st.quietSince = undefined
          if (st.tripped) return
          st.tripped = true
          const bots = key === GLOBAL ? manager.guards().map((g) => g.bot) : [key]
          st.trippedBots = bots
          const dump = FiberDump.debug1(FiberDump.profile(manager.registry, key === GLOBAL ? undefined : { bot: key }))
          yield* Effect.logError(
            `fiber watchdog: ${key === GLOBAL ? "process" : `bot ${key}`} is critical: ${reasons.join("; ")}. ` +
              (pauseIntake ? `Pausing intake of ${bots.join(", ") || "no bot"}. ` : "") +
              `The largest group below is the likely leak:\n${dump.split("\n").slice(0, 21).join("\n")}`
          )
          if (pauseIntake) {
            for (const bot of bots) manager.guard(bot)?.breaker.hold(`watchdog:${key}`, reasons.join("; "))
          }
          yield* emit({ _tag: "Tripped", scope: key, bots, dump, at: now })
          if (options.heapSnapshots !== undefined) {
            const taken = yield* Effect.result(options.heapSnapshots.take(`watchdog-${key === GLOBAL ? "process" : key}`))
            yield* emit({
              _tag: "HeapSnapshot",
              scope: key,
              path: taken._tag === "Success" ? taken.success.path : undefined,
              refused: taken._tag === "Failure" ? taken.failure.message : undefined,
              at: now
            })
            if (taken._tag === "Failure") yield* Effect.logWarning(taken.failure.message)
          }
          return
        }
        if (!st.tripped) return
        st.quietSince ??= now
        if (now - st.quietSince < quietMs) return
        st.tripped = false
        st.quietSince = undefined
        for (const bot of st.trippedBots) manager.guard(bot)?.breaker.release(`watchdog:${key}`)
        yield* Effect.logInfo(`fiber watchdog: ${key === GLOBAL ? "process" : `bot ${key}`} quiet for ${quietMs} ms; intake may resume (half-open)`)
        yield* emit({ _tag: "Released", scope: key, bots: st.trippedBots, quietMs, at: now })
      })

    const sample = Effect.gen(function*() {
      const now = yield* Effect.clockWith((c) => c.currentTimeMillis)
      const counts = manager.registry.counts()
      const total = counts.total
      const byBot = new Map<string, number>()
      for (const g of manager.guards()) byBot.set(g.bot, 0)
      for (const [bot, n] of counts.byBot) byBot.set(bot, n)
      yield* act(GLOBAL, evaluate(GLOBAL, total, now, global), total, now)
      for (const [bot, n] of byBot) yield* act(bot, evaluate(bot, n, now, perBot), n, now)
      // Forget bots that are gone (their breakers went with them).
      for (const key of [...scopes.keys()]) if (key !== GLOBAL && !byBot.has(key)) scopes.delete(key)
    })

    yield* Effect.forkScoped(
      Effect.repeat(sample, Schedule.spaced(Duration.millis(intervalMs))).pipe(
        Effect.annotateLogs({ task: "guard/watchdog" })
      ),
      { startImmediately: true }
    )

    const statusOf = (st: ScopeState | undefined): ScopeStatus => ({
      level: st?.level ?? "ok",
      fibers: st?.samples.at(-1)?.n ?? 0,
      slopes: { ...st?.slopes },
      tripped: st?.tripped ?? false,
      reasons: st?.reasons ?? []
    })

    return {
      sample,
      status: () => ({
        global: statusOf(scopes.get(GLOBAL)),
        bots: Object.fromEntries([...scopes.entries()].filter(([k]) => k !== GLOBAL).map(([k, st]) => [k, statusOf(st)]))
      }),
      events: Stream.fromPubSub(events),
      history: () => [...history],
      transitionCounts: () => counts
    } satisfies Watchdog
  })

export class WatchdogService extends Context.Service<WatchdogService, Watchdog>()("fiberbot/Watchdog") {}

/** The watchdog as a service; its sampling loop lives as long as the layer. */
export const layer = (options: Options = {}): Layer.Layer<WatchdogService, never, BotManager> => Layer.effect(WatchdogService, make(options))
