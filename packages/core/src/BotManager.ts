/**
 * BotManager: the one owner of every bot's scope.
 *
 * `start(bot)` builds the bot inside a child scope of the manager (adapters, intake, dispatcher,
 * supervised workers) and returns once every adapter reports ready. `stop(name, { deadline })`
 * takes the bot down in order (intake closes first, in-flight handlers drain until the drain
 * deadline, what is left is interrupted, then connections close) and returns a `StopReport` by
 * the deadline even when a finalizer hangs, naming whatever did not finish.
 *
 * Every fiber a bot starts runs with its bot and task name and, when the fiber registry is on,
 * is listed in it, so `fibers()` shows exactly what each bot is running.
 */
import { Cause, Context as EffectContext, Data, Deferred, Duration, Effect, Exit, Fiber, Layer, Option, Scope } from "effect"
import type { Adapter, AdapterContext } from "./Adapter.ts"
import { AdapterError, ReplyError } from "./Adapter.ts"
import * as Bot from "./Bot.ts"
import * as Dispatcher from "./Dispatcher.ts"
import * as FiberRegistry from "./FiberRegistry.ts"
import * as Admission from "./guard/Admission.ts"
import * as Breaker from "./guard/Breaker.ts"
import * as Handler from "./Handler.ts"
import * as Intake from "./Intake.ts"
import * as Supervisor from "./Supervisor.ts"
import * as Task from "./Task.ts"
import type * as Router from "./Router.ts"
import * as Update from "./Update.ts"

export type BotState = "running" | "stopping" | "stopped" | "failed"

/** What `stop` did, and what it could not do by its deadline. */
export interface StopReport {
  readonly bot: string
  /** Why the bot stopped: `requested`, or the escalation that stopped it. */
  readonly reason: string
  readonly durationMs: number
  /** Every part of the bot stopped before the deadline. */
  readonly withinDeadline: boolean
  /** Handler runs that finished while draining. */
  readonly drained: number
  /** Handler runs interrupted at the drain deadline, by task name. */
  readonly interrupted: ReadonlyArray<string>
  /** Updates still in the intake when the drain deadline passed; never handled. */
  readonly undelivered: number
  /** Long-running tasks (adapter loops, workers) that were stopped. */
  readonly stopped: ReadonlyArray<string>
  /** By name, what was still running at the deadline (abandoned, still owned by the manager). */
  readonly unfinished: ReadonlyArray<string>
  /** Each adapter's own figures once it closed (e.g. WebSocket connections closed cleanly or terminated). */
  readonly adapters?: Readonly<Record<string, Readonly<Record<string, unknown>>>> | undefined
}

export interface Outcomes {
  readonly success: number
  readonly failure: number
  readonly defect: number
  readonly timeout: number
  readonly interrupted: number
  readonly unhandled: number
}

export interface BotStatus {
  readonly name: string
  readonly state: BotState
  readonly reason: string | undefined
  readonly startedAt: number
  readonly inFlight: number
  readonly keys: number
  readonly intake: Intake.Stats
  readonly outcomes: Outcomes
  readonly tasks: ReadonlyArray<Task.TaskInfo>
  readonly lastStop: StopReport | undefined
  /** Each adapter's own figures, by adapter name (adapters that report any). */
  readonly adapters?: Readonly<Record<string, Readonly<Record<string, unknown>>>> | undefined
  /** The intake breaker's state (absent once the bot stopped). */
  readonly breaker?: Breaker.State | undefined
}

/** The guard of one running bot: its intake breaker and, when configured, its admission limit. */
export interface BotGuard {
  readonly bot: string
  readonly breaker: Breaker.Breaker
  readonly admission: Admission.Admission | undefined
  readonly intake: () => Intake.Stats
  readonly dispatcher: Dispatcher.Dispatcher
  readonly tasks: () => ReadonlyArray<Task.TaskInfo>
}

export interface StopOptions {
  /** `stop` returns by then (default: the bot's `stopDeadline`). */
  readonly deadline?: Duration.Input | undefined
  /** How long in-flight handlers may drain (default: 75% of the deadline). */
  readonly drain?: Duration.Input | undefined
}

export class BotAlreadyRunning extends Data.TaggedError("BotAlreadyRunning")<{ readonly bot: string }> {
  override get message(): string {
    return `bot "${this.bot}" is already running; stop it first or give the new one another name`
  }
}

export class BotNotFound extends Data.TaggedError("BotNotFound")<{ readonly bot: string; readonly known: ReadonlyArray<string> }> {
  override get message(): string {
    return `no bot named "${this.bot}"; known bots: ${this.known.length === 0 ? "none" : this.known.join(", ")}`
  }
}

/** A bot did not start: an adapter failed or was not ready in time. Nothing of it is left running. */
export class BotStartError extends Data.TaggedError("BotStartError")<{
  readonly bot: string
  readonly adapter: string
  readonly reason: string
  readonly cause?: unknown
}> {
  override get message(): string {
    return `bot "${this.bot}" did not start: adapter ${this.adapter}: ${this.reason}`
  }
}

interface Running {
  readonly bot: Bot.Bot
  readonly config: Bot.Config
  readonly startedAt: number
  readonly scope: Scope.Closeable
  readonly handlersScope: Scope.Closeable
  readonly workersScope: Scope.Closeable
  readonly adapterScopes: ReadonlyArray<{ readonly name: string; readonly scope: Scope.Closeable }>
  readonly intake: Intake.Intake
  readonly dispatcher: Dispatcher.Dispatcher
  readonly tasks: Task.TaskRegistry
  readonly outcomes: { -readonly [K in keyof Outcomes]: number }
  readonly guard: BotGuard
  state: BotState
  reason: string | undefined
  stopping: Deferred.Deferred<StopReport> | undefined
}

export interface ManagerOptions {
  /** Track every bot fiber in the fiber registry (default true). */
  readonly fiberRegistry?: boolean | undefined
}

export interface Service {
  readonly start: (bot: Bot.Bot) => Effect.Effect<void, Bot.BotConfigError | BotAlreadyRunning | BotStartError>
  readonly stop: (name: string, options?: StopOptions) => Effect.Effect<StopReport, BotNotFound>
  readonly stopAll: (options?: StopOptions) => Effect.Effect<ReadonlyArray<StopReport>>
  readonly status: () => Effect.Effect<ReadonlyArray<BotStatus>>
  readonly tasks: (name?: string) => Effect.Effect<ReadonlyArray<Task.TaskInfo>>
  /** The registry of live bot fibers (empty when the registry is off). */
  readonly registry: FiberRegistry.FiberRegistryImpl
  /** The breaker and admission of a running bot, `undefined` when no bot of that name runs. */
  readonly guard: (name: string) => BotGuard | undefined
  /** The guards of every running bot. */
  readonly guards: () => ReadonlyArray<BotGuard>
}

const now = Effect.clockWith((clock) => clock.currentTimeMillis)

/** The figures of every adapter of `bot` that reports some; an adapter that throws is skipped. */
const adapterStatus = (bot: Bot.Bot): Record<string, Readonly<Record<string, unknown>>> | undefined => {
  const out: Record<string, Readonly<Record<string, unknown>>> = {}
  for (const adapter of bot.adapters) {
    if (adapter.status === undefined) continue
    try {
      out[adapter.name] = adapter.status()
    } catch {
      // a status read must never break a stop or a status call
    }
  }
  return Object.keys(out).length === 0 ? undefined : out
}

/** What the runs of one bot share. */
interface BotRuns {
  readonly name: string
  readonly adapters: ReadonlyMap<string, Adapter>
  readonly outcomes: { -readonly [K in keyof Outcomes]: number }
  readonly breaker: Breaker.Breaker
  readonly admission: Admission.Admission | undefined
  readonly clock: () => number
  readonly guarded: boolean
  readonly metrics: boolean
  /** Handler metrics by task (routes are few: bounded by the router). */
  readonly series: Map<string, Handler.Series>
}

/**
 * One handler run: the context the handler gets and the job the dispatcher runs, in one object
 * (an update costs one allocation here). The command is parsed and `reply` bound only when a
 * handler asks for them; the outcome is read from the run's exit in `done`, and the run's scope is
 * the dispatcher's to give and close, so nothing is added to the handler's effect.
 */
class Run implements Handler.HandlerContext, Dispatcher.Job {
  readonly update: Update.Update
  readonly match: RegExpExecArray | undefined
  readonly task: string
  readonly timeoutMs: number
  readonly effect: Effect.Effect<void, unknown, Scope.Scope>
  readonly #bot: BotRuns
  readonly #started: number
  readonly #t0: number
  #command: Update.Command | undefined | null = null
  #reply: Handler.HandlerContext["reply"] | undefined
  constructor(bot: BotRuns, update: Update.Update, route: Router.Resolved, timeoutMs: number) {
    this.#bot = bot
    this.update = update
    this.match = route.match
    this.task = route.task
    this.timeoutMs = timeoutMs
    this.#started = bot.metrics ? performance.now() : 0
    this.#t0 = bot.guarded ? bot.clock() : 0
    // The handler is called here, right before its fiber starts (the same as a suspend, one object
    // less); a handler that throws instead of returning an effect dies like one that fails. Its
    // `Scope` is the run's own, which the dispatcher closes when the run ends.
    let effect: Effect.Effect<void, unknown, Scope.Scope>
    try {
      effect = route.handler(this)
    } catch (error) {
      effect = Effect.die(error)
    }
    this.effect = effect
  }
  get bot(): string {
    return this.#bot.name
  }
  get text(): string | undefined {
    return this.update.text
  }
  get command(): Update.Command | undefined {
    if (this.#command === null) this.#command = Update.parseCommand(this.update.text)
    return this.#command
  }
  /** A bound function, so `const { reply } = ctx` works. */
  get reply(): Handler.HandlerContext["reply"] {
    return this.#reply ??= (message) => {
      const adapter = this.#bot.adapters.get(this.update.adapter)
      return adapter === undefined
        ? Effect.fail(new ReplyError({ adapter: this.update.adapter, reason: `bot "${this.#bot.name}" has no adapter of that name` }))
        : adapter.reply(this.update, Update.toOutbound(message))
    }
  }
  done(exit: Exit.Exit<void, unknown>, timedOut: boolean, context: EffectContext.Context<never>): Effect.Effect<void> | undefined {
    const bot = this.#bot
    const outcome = Handler.outcomeOf(exit, timedOut)
    bot.outcomes[outcome]++
    if (bot.guarded) {
      // the breaker and the admission limit learn each run's latency and outcome
      const now = bot.clock()
      const t0 = this.#t0
      if (outcome !== "interrupted") bot.breaker.record({ failure: outcome !== "success", durationMs: now - t0 })
      bot.admission?.completed({ latencyMs: now - t0, timedOut: outcome === "timeout", now })
    } else if (outcome !== "interrupted") {
      // Without breaker options the breaker still judges half-open probes (after a watchdog or an
      // alert released it), on failures only: no clock read per run.
      bot.breaker.record({ failure: outcome !== "success", durationMs: 0 })
    }
    if (bot.metrics) {
      let series = bot.series.get(this.task)
      if (series === undefined) {
        series = Handler.seriesFor(bot.name, this.task, context)
        bot.series.set(this.task, series)
      }
      series.record(outcome, (performance.now() - this.#started) / 1000)
    }
    if (outcome === "success" || outcome === "interrupted") return undefined
    const cause = outcome === "timeout"
      ? Cause.fail(new Handler.HandlerTimeout({ bot: bot.name, task: this.task, updateId: this.update.id, timeout: Duration.millis(this.timeoutMs) }))
      : (exit as Exit.Failure<void, unknown>).cause
    return Handler.report(outcome, cause, this.update.id)
  }
}

const make = (options: ManagerOptions = {}): Effect.Effect<Service, never, Scope.Scope> =>
  Effect.gen(function*() {
    const managerScope = yield* Effect.scope
    const registry = new FiberRegistry.FiberRegistryImpl()
    const trackFibers = options.fiberRegistry ?? true
    const bots = new Map<string, Running>()
    const lastStops = new Map<string, StopReport>()
    // Bots stop concurrently when the manager closes.
    // Stops and abandoned closes run in fibers of `background`. It is made first so that it closes
    // last: the manager's own finalizer (stop every bot) still forks into it while the manager closes.
    const background = yield* Scope.fork(managerScope, "parallel")
    const root = yield* Scope.fork(managerScope, "parallel")

    const inBot = (name: string) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => {
      const owned = Task.ownedBy(name)(effect)
      return trackFibers ? FiberRegistry.track(registry)(owned) : owned
    }

    /** Runs `effect` in a fiber owned by the manager, so that it outlives an interrupted caller. */
    const detachInManager = <A>(task: string, effect: Effect.Effect<A>) =>
      Effect.forkIn(Task.named(task)(effect), background, { startImmediately: true })

    /** Closes `scope` within `remainingMs`; `true` when it finished in time. */
    const closeWithin = (task: string, scope: Scope.Closeable, remainingMs: number) =>
      Effect.gen(function*() {
        const closer = yield* detachInManager(task, Scope.close(scope, Exit.void))
        yield* Effect.yieldNow
        if (closer.pollUnsafe() !== undefined) return true
        if (remainingMs <= 0) return false
        const done = yield* Effect.timeoutOption(Fiber.await(closer), Duration.millis(remainingMs))
        return Option.isSome(done)
      })

    const prepare = (rb: {
      readonly config: Bot.Config
      readonly bot: Bot.Bot
      readonly outcomes: Running["outcomes"]
      readonly breaker: Breaker.Breaker
      readonly admission: Admission.Admission | undefined
      readonly clock: () => number
    }) => {
      const bot: BotRuns = {
        name: rb.config.name,
        adapters: new Map<string, Adapter>(rb.bot.adapters.map((a) => [a.name, a])),
        outcomes: rb.outcomes,
        breaker: rb.breaker,
        admission: rb.admission,
        clock: rb.clock,
        // Only when a guard needs it: the run's latency, read from the clock at start and end.
        guarded: rb.admission !== undefined || rb.breaker.recordsOutcomes,
        metrics: rb.config.metrics,
        series: new Map()
      }
      const defaultTimeoutMs = Duration.toMillis(rb.config.handlerTimeout)
      const unhandled: Dispatcher.Job = { task: "handler/unhandled", timeoutMs: undefined, effect: Effect.void, done: () => undefined }
      return (update: Update.Update): Dispatcher.Job => {
        const resolved = rb.bot.router.resolve(update)
        if (resolved === undefined) {
          rb.outcomes.unhandled++
          rb.admission?.release()
          rb.breaker.record({ failure: false, durationMs: 0 }) // no route is not the bot failing
          return unhandled
        }
        return new Run(bot, update, resolved, resolved.timeoutMs ?? defaultTimeoutMs)
      }
    }

    const doStop = (rb: Running, deadline: Duration.Duration, drain: Duration.Duration, reason: string) =>
      Effect.gen(function*() {
        const name = rb.config.name
        const t0 = yield* now
        const deadlineMs = Duration.toMillis(deadline)
        const remaining = () => Effect.map(now, (t) => deadlineMs - (t - t0))
        if (rb.state === "running") rb.state = "stopping"
        yield* Effect.logInfo(`stopping bot (deadline ${Duration.format(deadline)})`)

        // 1. intake first: adapters get "closed" from now on; queued updates still run.
        yield* rb.intake.close
        const completedBefore = rb.dispatcher.completed()
        const drainMs = Math.min(Duration.toMillis(drain), deadlineMs)
        const drained = yield* Effect.timeoutOption(rb.dispatcher.idle, Duration.millis(drainMs))
        const interrupted = Option.isNone(drained) ? rb.dispatcher.running() : []
        const undelivered = Option.isNone(drained) ? rb.intake.stats().depth : 0
        const drainedCount = rb.dispatcher.completed() - completedBefore

        // 2. handlers and workers are interrupted together; 3. then the adapters' connections.
        const stopped = rb.tasks.list().filter((t) => t.kind !== "handler" && rb.tasks.live().includes(t.name)).map((t) => t.name)
        const unfinished: Array<string> = []
        const workersLive = () => rb.tasks.list().filter((t) => t.kind === "worker" || t.kind === "supervisor").map((t) => t.name).filter((n) => rb.tasks.live().includes(n))
        const [handlersDone, workersDone] = yield* Effect.all([
          Effect.flatMap(remaining(), (ms) => closeWithin(`stop/${name}/handlers`, rb.handlersScope, ms)),
          Effect.flatMap(remaining(), (ms) => closeWithin(`stop/${name}/workers`, rb.workersScope, ms))
        ], { concurrency: "unbounded" })
        if (!handlersDone) {
          unfinished.push("handlers (their close did not finish)")
          unfinished.push(...rb.dispatcher.running().map((t) => `${t} (still running)`))
        }
        if (!workersDone) {
          unfinished.push("workers (their close did not finish)")
          unfinished.push(...workersLive().map((t) => `${t} (still running)`))
        }
        const adaptersDone = yield* Effect.forEach(rb.adapterScopes, ({ name: adapter, scope }) =>
          Effect.flatMap(remaining(), (ms) => closeWithin(`stop/${name}/adapter/${adapter}`, scope, ms)).pipe(
            Effect.map((done) => ({ adapter, done }))
          ), { concurrency: "unbounded" })
        for (const { adapter, done } of adaptersDone) {
          if (done) continue
          unfinished.push(`adapter/${adapter} (its close did not finish)`)
          unfinished.push(...rb.tasks.live().filter((t) => t.startsWith(`${adapter}/`)).map((t) => `${t} (still running)`))
        }
        const restDone = yield* Effect.flatMap(remaining(), (ms) => closeWithin(`stop/${name}`, rb.scope, ms))
        if (!restDone && unfinished.length === 0) unfinished.push(`bot/${name} (a finalizer did not finish)`)

        const report: StopReport = {
          bot: name,
          reason,
          durationMs: (yield* now) - t0,
          withinDeadline: unfinished.length === 0,
          drained: drainedCount,
          interrupted,
          undelivered,
          stopped,
          unfinished,
          adapters: adapterStatus(rb.bot)
        }
        rb.state = rb.state === "failed" ? "failed" : "stopped"
        bots.delete(name)
        lastStops.set(name, report)
        if (report.withinDeadline) {
          yield* Effect.logInfo(`bot stopped in ${report.durationMs} ms: ${report.drained} drained, ${report.interrupted.length} interrupted`)
        } else {
          yield* Effect.logWarning(
            `bot did not stop within ${Duration.format(deadline)}; still running: ${report.unfinished.join("; ")}. ` +
              `Bound slow finalizers with a timeout or make them interruptible.`
          )
        }
        return report
      }).pipe(Task.ownedBy(rb.config.name), Task.named(`stop/${rb.config.name}`))

    const stopRunning = (rb: Running, options: StopOptions | undefined, reason: string) =>
      Effect.gen(function*() {
        if (rb.stopping !== undefined) return yield* Deferred.await(rb.stopping)
        const deferred = Deferred.makeUnsafe<StopReport>()
        rb.stopping = deferred
        const deadline = options?.deadline === undefined ? rb.config.stopDeadline : Duration.fromInputUnsafe(options.deadline)
        const drain = options?.drain === undefined
          ? Duration.millis(Duration.toMillis(deadline) * 0.75)
          : Duration.fromInputUnsafe(options.drain)
        // The stop runs in a fiber of the manager: interrupting the caller never leaves a half-stopped bot.
        yield* detachInManager(`stop/${rb.config.name}`, Effect.flatMap(doStop(rb, deadline, drain, reason), (r) => Deferred.succeed(deferred, r)))
        return yield* Deferred.await(deferred)
      })

    const start = (bot: Bot.Bot) =>
      Effect.gen(function*() {
        const config = yield* Bot.config(bot)
        const name = config.name
        if (bots.has(name)) return yield* new BotAlreadyRunning({ bot: name })
        // Scopes close in reverse order of creation: handlers, then workers, then adapters.
        const scope = yield* Scope.fork(root, "sequential")
        const adaptersScope = yield* Scope.fork(scope, "parallel")
        const workersScope = yield* Scope.fork(scope, "sequential")
        const handlersScope = yield* Scope.fork(scope, "sequential")
        const tasks = new Task.TaskRegistry(name)
        const clock = yield* Effect.clockWith((c) => Effect.succeed(() => c.currentTimeMillisUnsafe()))
        const breaker = yield* Breaker.make({ ...config.breaker, recordOutcomes: config.breaker !== undefined, bot: name })
        const admission = config.admission === undefined ? undefined : yield* Admission.make(config.admission)
        const intake = yield* Intake.make({
          capacity: config.intakeCapacity,
          policy: config.intakePolicy,
          onDropped: admission?.release
        })
        const outcomes = { success: 0, failure: 0, defect: 0, timeout: 0, interrupted: 0, unhandled: 0 }
        const dispatcher = yield* Dispatcher.make({
          intake,
          concurrency: config.concurrency,
          prepare: prepare({ config, bot, outcomes, breaker, admission, clock })
        }).pipe(Scope.provide(handlersScope), inBot(name))
        // The door: a breaker that does not admit, or no admission permit, answers "busy" at once.
        // `tryOffer` decides without waiting; `undefined` only when a backpressured intake is full.
        const door = (update: Update.Update): Intake.OfferResult | "wait" => {
          if (intake.isClosed()) return "closed"
          if (!breaker.tryAcquire()) return "busy"
          if (admission !== undefined && !admission.tryAcquire()) {
            breaker.cancel()
            return "busy"
          }
          const result = intake.tryOffer(update)
          if (result === undefined) return "wait"
          if (result !== "accepted") {
            admission?.release()
            breaker.cancel()
          }
          return result
        }
        const tryOffer = (update: Update.Update): Intake.OfferResult | undefined => {
          const result = door(update)
          if (result !== "wait") return result
          // the permits taken at the door are given back: the caller comes again through `offer`
          admission?.release()
          breaker.cancel()
          return undefined
        }
        const offer = (update: Update.Update): Effect.Effect<Intake.OfferResult> =>
          Effect.suspend(() => {
            const result = door(update)
            if (result !== "wait") return Effect.succeed(result)
            // room must be waited for, holding the permits taken at the door
            return Effect.map(intake.offer(update), (r) => {
              if (r !== "accepted") {
                admission?.release()
                breaker.cancel()
              }
              return r
            })
          })
        tasks.register("dispatcher", "dispatcher")

        const adapterScopes: Array<{ name: string; scope: Scope.Closeable }> = []
        for (const adapter of bot.adapters) {
          const adapterScope = yield* Scope.fork(adaptersScope, "sequential")
          adapterScopes.push({ name: adapter.name, scope: adapterScope })
          const ctx: AdapterContext = {
            bot: name,
            offer,
            tryOffer,
            paused: () => {
              const state = breaker.state()
              return state === "open" || state === "forced_open"
            },
            fork: (task, effect) => Task.forkIn(tasks, adapterScope, task, inBot(name)(effect), { kind: "adapter" })
          }
          const started = yield* adapter.start(ctx).pipe(
            Effect.timeoutOrElse({
              duration: config.startTimeout,
              orElse: () => Effect.fail(new AdapterError({ adapter: adapter.name, reason: `not ready within ${Duration.format(config.startTimeout)}` }))
            }),
            Scope.provide(adapterScope),
            Task.named(`${adapter.name}/start`),
            inBot(name),
            Effect.exit
          )
          if (Exit.isFailure(started)) {
            yield* closeWithin(`stop/${name}`, scope, Duration.toMillis(config.stopDeadline))
            const error = started.cause.reasons.find((r) => r._tag === "Fail")
            return yield* new BotStartError({
              bot: name,
              adapter: adapter.name,
              reason: error?._tag === "Fail" && error.error instanceof AdapterError ? error.error.reason : "it failed while starting",
              cause: started.cause
            })
          }
        }

        const rb: Running = {
          bot,
          config,
          startedAt: yield* now,
          scope,
          handlersScope,
          workersScope,
          adapterScopes,
          intake,
          dispatcher,
          tasks,
          outcomes,
          guard: { bot: name, breaker, admission, intake: intake.stats, dispatcher, tasks: () => tasks.list() },
          state: "running",
          reason: undefined,
          stopping: undefined
        }
        bots.set(name, rb)
        lastStops.delete(name)

        if (bot.workers.length > 0) {
          const spec: Supervisor.Spec = { ...config.supervisor, children: bot.workers }
          const supervise = Effect.scoped(Supervisor.run(spec, tasks)).pipe(
            Effect.catchTag("SupervisorEscalation", (escalation) =>
              Effect.gen(function*() {
                rb.state = "failed"
                rb.reason = escalation.message
                yield* Effect.logError(escalation.message)
                // Escalation stops the bot: its workers cannot be trusted to run any more. The stop
                // runs in a manager fiber, since it closes the scope this fiber lives in.
                yield* detachInManager(`stop/${name}`, Effect.asVoid(stopRunning(rb, undefined, `escalation: ${escalation.message}`)))
              }))
          )
          yield* Task.forkIn(tasks, workersScope, "supervisor", inBot(name)(supervise), { kind: "supervisor" })
        }
        yield* Effect.logInfo(`bot started with ${bot.adapters.length} adapter(s) and ${bot.workers.length} worker(s)`).pipe(
          Task.ownedBy(name),
          Task.named(`start/${name}`)
        )
      })

    const stop = (name: string, options?: StopOptions) =>
      Effect.suspend(() => {
        const rb = bots.get(name)
        if (rb !== undefined) return stopRunning(rb, options, "requested")
        const last = lastStops.get(name)
        if (last !== undefined) return Effect.succeed(last)
        return Effect.fail(new BotNotFound({ bot: name, known: [...bots.keys()] }))
      })

    const stopAll = (options?: StopOptions) =>
      Effect.forEach([...bots.values()], (rb) => stopRunning(rb, options, "requested"), { concurrency: "unbounded" })

    const statusOf = (rb: Running): BotStatus => ({
      name: rb.config.name,
      state: rb.state,
      reason: rb.reason,
      startedAt: rb.startedAt,
      inFlight: rb.dispatcher.inFlight(),
      keys: rb.dispatcher.keys(),
      intake: rb.intake.stats(),
      outcomes: { ...rb.outcomes },
      tasks: rb.tasks.list(),
      lastStop: undefined,
      adapters: adapterStatus(rb.bot),
      breaker: rb.guard.breaker.state()
    })

    yield* Effect.addFinalizer(() => stopAll())

    return {
      start,
      stop,
      stopAll,
      status: () =>
        Effect.sync(() => [
          ...[...bots.values()].map(statusOf),
          ...[...lastStops.entries()].filter(([n]) => !bots.has(n)).map(([name, report]): BotStatus => ({
            name,
            state: report.reason.startsWith("escalation") ? "failed" : "stopped",
            reason: report.reason,
            startedAt: 0,
            inFlight: 0,
            keys: 0,
            intake: { accepted: 0, dropped: 0, rejected: 0, depth: 0 },
            outcomes: { success: 0, failure: 0, defect: 0, timeout: 0, interrupted: 0, unhandled: 0 },
            tasks: [],
            lastStop: report
          }))
        ]),
      tasks: (name?: string) =>
        Effect.sync(() => [...bots.values()].filter((rb) => name === undefined || rb.config.name === name).flatMap((rb) => rb.tasks.list())),
      registry,
      guard: (name) => bots.get(name)?.guard,
      guards: () => [...bots.values()].map((rb) => rb.guard)
    } satisfies Service
  })

export class BotManager extends EffectContext.Service<BotManager, Service>()("fiberbot/BotManager") {
  static readonly layer: Layer.Layer<BotManager> = Layer.effect(BotManager, make())
  static readonly layerWith = (options: ManagerOptions): Layer.Layer<BotManager> => Layer.effect(BotManager, make(options))
}
