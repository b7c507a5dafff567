/**
 * Handlers: `(ctx) => Effect<void, E, Scope>`.
 *
 * Each run gets its own scope (what a handler acquires is released when the run ends: on success,
 * failure, timeout or stop) and a deadline: past it the run is interrupted and reported as a typed
 * `HandlerTimeout`. Failures never escape a run: typed errors, defects and timeouts go to the
 * bot's error boundary, which logs them with the task name and counts them.
 */
import { Cause, Data, Duration, Effect, Exit, Metric, Scope } from "effect"
import type { ReplyError } from "./Adapter.ts"
import type * as Update from "./Update.ts"
import * as Task from "./Task.ts"

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

const handlerRuns = Metric.counter("fiberbot_handler_runs_total", {
  description: "Handler runs by bot, task and outcome",
  incremental: true
})
const handlerSeconds = Metric.histogram("fiberbot_handler_duration_seconds", {
  description: "Handler run time",
  boundaries: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30]
})

interface Series {
  readonly runs: Record<Outcome, Metric.Metric<number, unknown>>
  readonly seconds: Metric.Metric<number, unknown>
}

// One labelled series per bot and task, made once: building a labelled metric computes its key
// from the labels, which cost a third of dispatch throughput when done for every run.
const series = new Map<string, Series>()
const SERIES_MAX = 10_000

const seriesFor = (bot: string, task: string): Series => {
  const key = `${bot}\u0000${task}`
  let found = series.get(key)
  if (found === undefined) {
    if (series.size >= SERIES_MAX) series.clear() // bounded: task names come from routes, not from input
    const runs = (outcome: Outcome) => Metric.withAttributes(handlerRuns, { bot, task, outcome })
    found = {
      runs: {
        success: runs("success"),
        failure: runs("failure"),
        defect: runs("defect"),
        timeout: runs("timeout"),
        interrupted: runs("interrupted")
      },
      seconds: Metric.withAttributes(handlerSeconds, { bot, task })
    }
    series.set(key, found)
  }
  return found
}

export interface RunOptions {
  readonly bot: string
  readonly task: string
  readonly timeout: Duration.Duration
  readonly onOutcome: (outcome: Outcome) => void
  readonly metrics: boolean
  /**
   * When the caller enforces the deadline (the dispatcher interrupts runs past it), whether this
   * run's interruption was that. Without it the run enforces `timeout` itself.
   */
  readonly timedOut?: (() => boolean) | undefined
}

/**
 * Runs one handler under its scope, deadline and the error boundary. Never fails; interruption
 * (the bot stopping) still propagates so the caller sees it.
 */
export const run = <P>(
  handler: Handler<P>,
  ctx: HandlerContext<P>,
  options: RunOptions
): Effect.Effect<void> => {
  const started = performance.now()
  const record = (outcome: Outcome) =>
    Effect.suspend(() => {
      options.onOutcome(outcome)
      if (!options.metrics) return Effect.void
      const series = seriesFor(options.bot, options.task)
      const seconds = (performance.now() - started) / 1000
      // One effect for both updates (Metric.update is an effect each): this runs once per update.
      return Effect.withFiber((fiber) => {
        series.runs[outcome].updateUnsafe(1, fiber.context)
        series.seconds.updateUnsafe(seconds, fiber.context)
        return Effect.void
      })
    })
  const timeoutError = () => new HandlerTimeout({ bot: options.bot, task: options.task, updateId: ctx.update.id, timeout: options.timeout })
  const report = (cause: Cause.Cause<unknown>) => {
    const timeout = cause.reasons.some((r) => Cause.isFailReason(r) && r.error instanceof HandlerTimeout)
    const outcome: Outcome = timeout ? "timeout" : Cause.hasFails(cause) ? "failure" : "defect"
    return Effect.andThen(
      record(outcome),
      Effect.logError(timeout ? "handler timed out" : outcome === "failure" ? "handler failed" : "handler died", cause)
        .pipe(Effect.annotateLogs({ update: ctx.update.id, outcome }))
    )
  }
  const timedOut = options.timedOut
  if (timedOut !== undefined) {
    // The deadline is the caller's: the outcome is recorded as the run ends (a finalizer, so it
    // still runs when the run is interrupted), and failures end here.
    return Effect.scoped(Effect.suspend(() => handler(ctx))).pipe(
      Effect.onExit((exit) => {
        if (Exit.isSuccess(exit)) return record("success")
        if (!Cause.hasInterruptsOnly(exit.cause)) return report(exit.cause)
        return timedOut() ? report(Cause.fail(timeoutError())) : record("interrupted")
      }),
      Effect.catchCause(() => Effect.void),
      Task.named(options.task)
    )
  }
  return Effect.scoped(Effect.suspend(() => handler(ctx))).pipe(
    Effect.timeoutOrElse({ duration: options.timeout, orElse: () => Effect.fail(timeoutError()) }),
    Effect.matchCauseEffect({
      onSuccess: () => record("success"),
      onFailure: (cause) =>
        Cause.hasInterruptsOnly(cause) ? Effect.andThen(record("interrupted"), Effect.failCause(cause)) : report(cause)
    }),
    Task.named(options.task),
    Effect.asVoid
  ) as Effect.Effect<void>
}
