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

// Each series is a metric of its own with its labels built in: a labelled view
// (`Metric.withAttributes`) adds the labels to the context on every update, which costs an
// allocation and more look-ups per run.
const runsOf = (bot: string, task: string, outcome: Outcome) =>
  Metric.counter("fiberbot_handler_runs_total", {
    description: "Handler runs by bot, task and outcome",
    incremental: true,
    attributes: { bot, task, outcome }
  })
const secondsOf = (bot: string, task: string) =>
  Metric.histogram("fiberbot_handler_duration_seconds", {
    description: "Handler run time",
    boundaries: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    attributes: { bot, task }
  })

interface Series {
  readonly runs: Record<Outcome, Metric.Metric<number, unknown>>
  readonly seconds: Metric.Metric<number, unknown>
}

// One labelled series per bot and task, made once: building a labelled metric computes its key
// from the labels, which cost a third of dispatch throughput when done for every run. Keyed by bot,
// then task: two look-ups of strings that already exist, no key string built per run.
const series = new Map<string, Map<string, Series>>()
const SERIES_MAX = 10_000

const seriesFor = (bot: string, task: string): Series => {
  let ofBot = series.get(bot)
  if (ofBot === undefined) {
    if (series.size >= SERIES_MAX) series.clear() // bounded: bot names come from configuration
    ofBot = new Map()
    series.set(bot, ofBot)
  }
  let found = ofBot.get(task)
  if (found === undefined) {
    if (ofBot.size >= SERIES_MAX) ofBot.clear() // bounded: task names come from routes, not from input
    found = {
      runs: {
        success: runsOf(bot, task, "success"),
        failure: runsOf(bot, task, "failure"),
        defect: runsOf(bot, task, "defect"),
        timeout: runsOf(bot, task, "timeout"),
        interrupted: runsOf(bot, task, "interrupted")
      },
      seconds: secondsOf(bot, task)
    }
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

/** Counts a finished run in the handler metrics (`context`: where the metrics live, e.g. the run's). */
export const recordMetrics = (bot: string, task: string, outcome: Outcome, seconds: number, context: Context.Context<never>): void => {
  const s = seriesFor(bot, task)
  s.runs[outcome].updateUnsafe(1, context)
  s.seconds.updateUnsafe(seconds, context)
}

/** Logs a run that failed, died or timed out, annotated with the update and the outcome. */
export const report = (outcome: Outcome, cause: Cause.Cause<unknown>, updateId: string): Effect.Effect<void> =>
  Effect.logError(outcome === "timeout" ? "handler timed out" : outcome === "failure" ? "handler failed" : "handler died", cause)
    .pipe(Effect.annotateLogs({ update: updateId, outcome }))
