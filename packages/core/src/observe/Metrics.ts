/**
 * Metrics: the guard's state as Prometheus series, computed when scraped.
 *
 * Nothing here runs on the hot path: live fibers, intake, admission, breaker and watchdog state
 * are read from the manager when `/metrics` is asked for, turned into gauges (and counter deltas
 * since the last scrape), then rendered with `effect/observability` PrometheusMetrics together with
 * every other Effect metric (the handler run counter and duration histogram among them). Series
 * of a group that went away are set to 0 rather than left at their last value.
 *
 * Label cardinality is bounded by code, not traffic: bot names, task groups (task names with
 * instance numbers replaced by a star, as in ws/conn-STAR/read) and fixed state names; never update ids, chats or users.
 */
import { Effect, Metric } from "effect"
import { PrometheusMetrics } from "effect/observability"
import type { Service as BotManagerService } from "../BotManager.ts"
import * as Breaker from "../guard/Breaker.ts"
import { taskGroup } from "../guard/FiberDump.ts"
import * as Watchdog from "../guard/Watchdog.ts"

const gauge = (name: string, description: string) => Metric.gauge(name, { description })
const counter = (name: string, description: string) => Metric.counter(name, { description, incremental: true })

const fibersLive = gauge("fiberbot_fibers_live", "Live fibers of all bots")
const botFibersLive = gauge("fiberbot_bot_fibers_live", "Live fibers by bot")
const taskFibersLive = gauge("fiberbot_task_fibers_live", "Live fibers by bot and task")
const fibersStarted = counter("fiberbot_fibers_started_total", "Fibers started by bots")
const intakeDepth = gauge("fiberbot_intake_depth", "Updates waiting in a bot's intake")
const inFlight = gauge("fiberbot_handlers_in_flight", "Updates admitted to the dispatcher and not finished")
const accepted = counter("fiberbot_intake_accepted_total", "Updates the intake accepted")
const dropped = counter("fiberbot_intake_dropped_total", "Updates the intake dropped (drop-oldest)")
const rejected = counter("fiberbot_updates_rejected_total", "Updates answered busy, by reason (intake_full, breaker, admission)")
const admissionLimit = gauge("fiberbot_admission_limit", "A bot's admission limit")
const admissionHeld = gauge("fiberbot_admission_held", "Updates holding an admission permit")
const breakerState = gauge("fiberbot_breaker_state", "1 for a bot's current breaker state, 0 for the others")
const breakerTransitions = counter("fiberbot_breaker_transitions_total", "Breaker transitions by bot, from and to")
const restarts = counter("fiberbot_task_restarts_total", "Supervisor restarts by bot and task")
const watchdogLevel = gauge("fiberbot_watchdog_level", "Watchdog level by scope (* = process): 0 ok, 1 warn, 2 critical")
const watchdogSlope = gauge("fiberbot_watchdog_slope", "Live-fiber growth in fibers/s by scope and window")
const watchdogTransitions = counter("fiberbot_watchdog_transitions_total", "Watchdog level changes by scope kind, from and to")

export interface Collector {
  /** Brings every guard series up to date. */
  readonly collect: Effect.Effect<void>
  /** `collect`, then every Effect metric in Prometheus text format. */
  readonly render: Effect.Effect<string>
}

export const makeCollector = (manager: BotManagerService, options: { readonly watchdog?: Watchdog.Watchdog | undefined } = {}): Collector => {
  const lastCounters = new Map<string, number>()
  let lastGauges = new Set<string>()
  const gaugeKeys = new Map<string, { readonly metric: Metric.Metric<number, unknown>; readonly attrs: Record<string, string> }>()

  const collect = Effect.suspend(() => {
    const updates: Array<Effect.Effect<void>> = []
    const seen = new Set<string>()
    const setGauge = (metric: Metric.Metric<number, unknown>, name: string, attrs: Record<string, string>, value: number) => {
      const key = `${name}|${JSON.stringify(attrs)}`
      seen.add(key)
      gaugeKeys.set(key, { metric, attrs })
      updates.push(Metric.update(Metric.withAttributes(metric, attrs), value))
    }
    const addCounter = (metric: Metric.Metric<number, unknown>, name: string, attrs: Record<string, string>, total: number) => {
      const key = `${name}|${JSON.stringify(attrs)}`
      const last = lastCounters.get(key) ?? 0
      // A bot that restarted counts from zero again: its new total is all new.
      const delta = total >= last ? total - last : total
      lastCounters.set(key, total)
      if (delta > 0) updates.push(Metric.update(Metric.withAttributes(metric, attrs), delta))
    }

    const counts = manager.registry.counts()
    setGauge(fibersLive, "live", {}, counts.total)
    addCounter(fibersStarted, "started", {}, manager.registry.started)
    for (const [bot, n] of counts.byBot) setGauge(botFibersLive, "bot", { bot }, n)
    const byGroup = new Map<string, number>()
    for (const [k, n] of counts.byTask) {
      const [bot, task] = k.split("\u0000") as [string, string]
      const key = `${bot}\u0000${taskGroup(task)}`
      byGroup.set(key, (byGroup.get(key) ?? 0) + n)
    }
    for (const [k, n] of byGroup) {
      const [bot, task] = k.split("\u0000") as [string, string]
      setGauge(taskFibersLive, "task", { bot, task }, n)
    }

    for (const g of manager.guards()) {
      const bot = g.bot
      const intake = g.intake()
      setGauge(intakeDepth, "depth", { bot }, intake.depth)
      setGauge(inFlight, "inflight", { bot }, g.dispatcher.inFlight())
      addCounter(accepted, "accepted", { bot }, intake.accepted)
      addCounter(dropped, "dropped", { bot }, intake.dropped)
      addCounter(rejected, "rejected", { bot, reason: "intake_full" }, intake.rejected)
      const b = g.breaker.stats()
      addCounter(rejected, "rejected", { bot, reason: "breaker" }, b.rejected)
      for (const s of Breaker.states) setGauge(breakerState, "breaker", { bot, state: s }, s === b.state ? 1 : 0)
      for (const [fromTo, n] of g.breaker.transitionCounts()) {
        const [from, to] = fromTo.split("->") as [string, string]
        addCounter(breakerTransitions, "bt", { bot, from, to }, n)
      }
      if (g.admission !== undefined) {
        const a = g.admission.stats()
        setGauge(admissionLimit, "alimit", { bot }, a.limit)
        setGauge(admissionHeld, "aheld", { bot }, a.held)
        addCounter(rejected, "rejected", { bot, reason: "admission" }, a.rejected)
      }
      const restartsByGroup = new Map<string, number>()
      for (const t of g.tasks()) if (t.restarts > 0) restartsByGroup.set(taskGroup(t.name), (restartsByGroup.get(taskGroup(t.name)) ?? 0) + t.restarts)
      for (const [task, n] of restartsByGroup) addCounter(restarts, "restarts", { bot, task }, n)
    }

    const dog = options.watchdog
    if (dog !== undefined) {
      const status = dog.status()
      const scopes: Array<[string, Watchdog.ScopeStatus]> = [[Watchdog.GLOBAL, status.global], ...Object.entries(status.bots)]
      for (const [scope, st] of scopes) {
        setGauge(watchdogLevel, "wlevel", { scope }, Watchdog.levelValue(st.level))
        for (const [window, slope] of Object.entries(st.slopes)) setGauge(watchdogSlope, "wslope", { scope, window }, slope)
      }
      for (const [key, n] of dog.transitionCounts()) {
        const [kind, fromTo] = key.split("/") as [string, string]
        const [from, to] = fromTo.split("->") as [string, string]
        addCounter(watchdogTransitions, "wt", { scope: kind, from, to }, n)
      }
    }

    // A group that is gone reads 0, not its last value.
    for (const key of lastGauges) {
      if (seen.has(key)) continue
      const g = gaugeKeys.get(key)
      if (g !== undefined) updates.push(Metric.update(Metric.withAttributes(g.metric, g.attrs), 0))
    }
    lastGauges = seen
    return Effect.all(updates, { discard: true })
  })

  return {
    collect,
    render: Effect.andThen(collect, PrometheusMetrics.format())
  }
}
