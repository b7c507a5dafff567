/**
 * Handlers: `(ctx) => Effect<void, E, Scope>`.
 *
 * Each run gets its own scope (what a handler acquires is released when the run ends: on success,
 * failure, timeout or stop) and a deadline: past it the run is interrupted and reported as a typed
 * `HandlerTimeout`. Failures never escape a run: typed errors, defects and timeouts go to the
 * bot's error boundary, which logs them with the task name and counts them.
 */
import { Cause, Context, Data, Duration, Effect, Exit, Metric, Scope } from "effect"
import type { ReplyError } from "./Adapter.ts"
import type * as Update from "./Update.ts"

export interface HandlerContext<P = unknown> {
  readonly bot: string
  readonly update: Update.Update<P>
  readonly text: string | undefined
  /** The command when the text is one (`/start@bot args`). */
  readonly command: Update.Command | undefined
  /** The match of a `text(RegExp)` or `callback(RegExp)` route. */
  readonly match: RegExpExecArray | undefined
  /** Sends through the outbox of the adapter the update came from. */
  readonly reply: (message: string | Update.OutboundMessage) => Effect.Effect<void, ReplyError>
}

export type Handler<P = unknown, E = unknown> = (ctx: HandlerContext<P>) => Effect.Effect<void, E, Scope.Scope>

/** A handler run took longer than its deadline and was interrupted. */
export class HandlerTimeout extends Data.TaggedError("HandlerTimeout")<{
  readonly bot: string
  readonly task: string
  readonly updateId: string
  readonly timeout: Duration.Duration
}> {
  override get message(): string {
    return `handler ${this.task} of bot ${this.bot} timed out after ${Duration.format(this.timeout)} on update ${this.updateId}; it was interrupted and its resources released`
  }
}

export type Outcome = "success" | "failure" | "defect" | "timeout" | "interrupted"

const BOUNDARIES = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30]
const OUTCOMES: ReadonlyArray<Outcome> = ["success", "failure", "defect", "timeout", "interrupted"]

/**
 * The handler metrics of one bot and task, kept as plain numbers and read by the metric registry
 * when it is exported (`Metric.registerUnsafe`). An update through Effect's metrics looks the
 * series up in the registry every time: twice per handler run, that was a tenth of the run.
 */
export class Series {
  readonly runs: Record<Outcome, number> = { success: 0, failure: 0, defect: 0, timeout: 0, interrupted: 0 }
  readonly buckets = new Uint32Array(BOUNDARIES.length + 1)
  count = 0
  sum = 0
  min = Number.MAX_VALUE
  max = -Number.MAX_VALUE

  constructor(bot: string, task: string, context: Context.Context<never>) {
    for (const outcome of OUTCOMES) {
      Metric.registerUnsafe(
        Metric.counter("fiberbot_handler_runs_total", {
          description: "Handler runs by bot, task and outcome",
          incremental: true,
          attributes: { bot, task, outcome }
        }),
        context,
        { get: () => ({ count: this.runs[outcome], incremental: true }), update: () => {}, modify: () => {} }
      )
    }
    Metric.registerUnsafe(
      Metric.histogram("fiberbot_handler_duration_seconds", { description: "Handler run time", boundaries: BOUNDARIES, attributes: { bot, task } }),
      context,
      {
        get: () => {
          let cumulated = 0
          const buckets = BOUNDARIES.map((boundary, i): [number, number] => [boundary, cumulated += this.buckets[i]!])
          return { buckets, count: this.count, min: this.min, max: this.max, sum: this.sum }
        },
        update: () => {},
        modify: () => {}
      }
    )
  }

  record(outcome: Outcome, seconds: number): void {
    this.runs[outcome]++
    let i = 0
    while (i < BOUNDARIES.length && seconds > BOUNDARIES[i]!) i++
    this.buckets[i]!++
    this.count++
    this.sum += seconds
    if (seconds < this.min) this.min = seconds
    if (seconds > this.max) this.max = seconds
  }
}

// One series per metric registry, bot and task, made once. Keyed by registry (tests and apps may
// have their own), then bot, then task: look-ups of objects and strings that already exist.
const series = new WeakMap<object, Map<string, Map<string, Series>>>()
const SERIES_MAX = 10_000

/** The handler metrics of `bot` and `task` in the metric registry of `context`. */
export const seriesFor = (bot: string, task: string, context: Context.Context<never>): Series => {
  const registry = Context.get(context, Metric.MetricRegistry)
  let ofRegistry = series.get(registry)
  if (ofRegistry === undefined) {
    ofRegistry = new Map()
    series.set(registry, ofRegistry)
  }
  let ofBot = ofRegistry.get(bot)
  if (ofBot === undefined) {
    if (ofRegistry.size >= SERIES_MAX) ofRegistry.clear() // bounded: bot names come from configuration
    ofBot = new Map()
    ofRegistry.set(bot, ofBot)
  }
  let found = ofBot.get(task)
  if (found === undefined) {
    if (ofBot.size >= SERIES_MAX) ofBot.clear() // bounded: task names come from routes, not from input
    found = new Series(bot, task, context)
    ofBot.set(task, found)
  }
  return found
}

/** A run's outcome from its exit; `timedOut`: the caller interrupted it for passing its deadline. */
export const outcomeOf = (exit: Exit.Exit<unknown, unknown>, timedOut: boolean): Outcome =>
  Exit.isSuccess(exit)
    ? "success"
    : Cause.hasInterruptsOnly(exit.cause)
    ? (timedOut ? "timeout" : "interrupted")
    : Cause.hasFails(exit.cause)
    ? "failure"
    : "defect"

/** Logs a run that failed, died or timed out, annotated with the update and the outcome. */
export const report = (outcome: Outcome, cause: Cause.Cause<unknown>, updateId: string): Effect.Effect<void> =>
  Effect.logError(outcome === "timeout" ? "handler timed out" : outcome === "failure" ? "handler failed" : "handler died", cause)
    .pipe(Effect.annotateLogs({ update: updateId, outcome }))
