/**
 * Main: the process entry point. One of the few edge files allowed to start an Effect runtime
 * and to touch timers directly (see scripts/check-forks.ts).
 *
 * `runMain(program)` provides the `BotManager` and the pino logger, runs `program` (which starts
 * bots; what it acquires in its `Scope`, such as emulators or servers, lives until every bot
 * stopped), then waits for SIGINT or SIGTERM and calls `stopAll` with the shutdown deadline. A second
 * signal exits at once; if the shutdown itself overruns the deadline by a grace period, the process
 * exits anyway, so a hung finalizer can never keep a deploy waiting.
 */
import { Cause, Deferred, Duration, Effect, Exit, Layer, Scope } from "effect"
import { BotManager, type StopReport } from "./BotManager.ts"
import * as Logging from "./Logging.ts"
import * as Task from "./Task.ts"

export interface MainOptions {
  /** The deadline of `stopAll` on a signal (default 10 s). */
  readonly shutdownDeadline?: Duration.Input | undefined
  /** Extra time after the deadline before the process exits regardless (default 2 s). */
  readonly grace?: Duration.Input | undefined
  /** The logger (default: from `LOG_LEVEL` / `LOG_PRETTY`). */
  readonly logging?: Layer.Layer<never, unknown> | undefined
  /** Stop every bot as soon as `program` returns, instead of waiting for a signal. */
  readonly stopWhenDone?: boolean | undefined
  /** Called with the reports once every bot stopped. */
  readonly onStopped?: ((reports: ReadonlyArray<StopReport>) => void) | undefined
  /**
   * Services that live as long as the process, built before `program` and closed after every bot
   * stopped, e.g. `DebugServer.layerGuarded({ port: 9464 })` (watchdog + /metrics + /debug).
   */
  readonly services?: Layer.Layer<any, unknown, BotManager> | undefined
}

const SIGNALS = ["SIGINT", "SIGTERM"] as const

export const runMain = <E>(program: Effect.Effect<unknown, E, BotManager | Scope.Scope>, options: MainOptions = {}): void => {
  const deadline = Duration.fromInputUnsafe(options.shutdownDeadline ?? "10 seconds")
  const grace = Duration.fromInputUnsafe(options.grace ?? "2 seconds")
  const signalled = Deferred.makeUnsafe<string>()
  let signals = 0
  const onSignal = (signal: string) => {
    signals++
    if (signals > 1) {
      process.stderr.write(`fiberbot: second ${signal}, exiting now\n`)
      process.exit(130)
    }
    Deferred.doneUnsafe(signalled, Exit.succeed(signal))
    setTimeout(() => {
      process.stderr.write(`fiberbot: shutdown overran its deadline (${Duration.format(deadline)}) by ${Duration.format(grace)}, exiting\n`)
      process.exit(1)
    }, Duration.toMillis(deadline) + Duration.toMillis(grace)).unref()
  }
  for (const s of SIGNALS) process.on(s, onSignal)

  const main = Effect.gen(function*() {
    const manager = yield* BotManager
    if (options.services !== undefined) {
      const services = yield* Effect.exit(Layer.build(options.services))
      if (Exit.isFailure(services)) yield* Effect.logError("services did not start; bots start without them", services.cause)
    }
    const started = yield* Effect.exit(program)
    if (Exit.isFailure(started)) {
      yield* Effect.logError("start failed", started.cause)
    } else if (options.stopWhenDone === true) {
      yield* Effect.logInfo(`done: stopping every bot (deadline ${Duration.format(deadline)})`)
    } else {
      yield* Effect.logInfo("running; press Ctrl-C (SIGINT) or send SIGTERM to stop")
      const signal = yield* Deferred.await(signalled)
      yield* Effect.logInfo(`${signal}: stopping every bot (deadline ${Duration.format(deadline)})`)
    }
    const reports = yield* manager.stopAll({ deadline })
    for (const r of reports) {
      const line = `${r.bot}: stopped in ${r.durationMs} ms, drained ${r.drained}, interrupted ${r.interrupted.length}`
      if (r.withinDeadline) yield* Effect.logInfo(line)
      else yield* Effect.logWarning(`${line}; did not finish: ${r.unfinished.join("; ")}`)
    }
    options.onStopped?.(reports)
    return Exit.isFailure(started) ? 1 : 0
  }).pipe(
    Effect.scoped,
    Task.named("main"),
    Effect.provide(BotManager.layer),
    Effect.provide(options.logging ?? Logging.layerConfig)
  )

  const fiber = Effect.runFork(main as Effect.Effect<number, unknown>)
  fiber.addObserver((exit) => {
    for (const s of SIGNALS) process.off(s, onSignal)
    if (Exit.isSuccess(exit)) {
      process.exitCode = exit.value
    } else {
      if (!Cause.hasInterruptsOnly(exit.cause)) process.stderr.write(`${Cause.pretty(exit.cause)}\n`)
      process.exitCode = 1
    }
  })
}
