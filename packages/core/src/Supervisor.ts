/**
 * Supervisor: OTP-style supervision of a bot's long-running workers.
 *
 * Vocabulary and semantics follow Erlang/OTP's `supervisor`:
 * - strategies `one_for_one` (restart the child that ended), `one_for_all` (stop the others, restart
 *   all), `rest_for_one` (stop the children started after it, restart it and them);
 * - restart types `permanent` (always), `transient` (only after a failure or defect; a child that
 *   returns is done), `temporary` (never, not even when a sibling's restart stopped it);
 * - intensity/period: more than `intensity` restarts within `period` and the supervisor stops all
 *   children (reverse start order) and fails with `SupervisorEscalation`, which the bot reports;
 * - a shutdown timeout per child: past it the child is abandoned and named in the stop report.
 *
 * Deviations from OTP, on purpose: restarts wait an exponential backoff with jitter (Akka's
 * `restartWithBackoff`; a bot's workers talk to remote APIs and must not hammer them), reset once a
 * child has run for `resetAfter`; and an interrupted child (the bot stopping) is a shutdown, never
 * a failure. A JavaScript fiber cannot be killed the way `brutal_kill` kills a process, so a child
 * that ignores interruption is given up on after its shutdown timeout, with a warning, so the
 * other children still stop in time; it stays owned by the supervisor's scope, which ends only when
 * it does, and the bot's stop report names it if that is past the deadline.
 */
import { Cause, Data, Duration, Effect, Exit, Fiber, Queue, Random, Scope } from "effect"
import * as Task from "./Task.ts"

export type Strategy = "one_for_one" | "one_for_all" | "rest_for_one"
export type Restart = "permanent" | "transient" | "temporary"

export interface Backoff {
  readonly base: Duration.Input
  readonly factor: number
  readonly max: Duration.Input
  /** Each delay is multiplied by a random factor in `[1 - jitter, 1 + jitter]`. */
  readonly jitter: number
  /** A child that ran this long without ending starts again from `base`. */
  readonly resetAfter: Duration.Input
}

export interface Child {
  readonly name: string
  readonly run: Effect.Effect<unknown, unknown, Scope.Scope>
  readonly restart: Restart
  readonly shutdownTimeout: Duration.Input
}

export interface Spec {
  readonly strategy: Strategy
  readonly intensity: number
  readonly period: Duration.Input
  readonly backoff: Backoff
  readonly children: ReadonlyArray<Child>
}

export const defaultBackoff: Backoff = {
  base: "100 millis",
  factor: 2,
  max: "30 seconds",
  jitter: 0.2,
  resetAfter: "1 minute"
}

/** A child of a supervisor: OTP defaults (`permanent`, 5 s shutdown). */
export const child = (
  name: string,
  run: Effect.Effect<unknown, unknown, Scope.Scope>,
  options?: { readonly restart?: Restart | undefined; readonly shutdownTimeout?: Duration.Input | undefined }
): Child => ({
  name,
  run,
  restart: options?.restart ?? "permanent",
  shutdownTimeout: options?.shutdownTimeout ?? "5 seconds"
})

/** A child that runs `effect` on `schedule` for as long as the bot runs. */
export const periodic = (
  name: string,
  effect: Effect.Effect<unknown, unknown, Scope.Scope>,
  every: Duration.Input,
  options?: { readonly restart?: Restart | undefined; readonly shutdownTimeout?: Duration.Input | undefined }
): Child => child(name, Effect.forever(Effect.andThen(Effect.scoped(effect), Effect.sleep(every))), options)

/** Restarts went over `intensity` within `period`: the supervisor stopped all its children. */
export class SupervisorEscalation extends Data.TaggedError("SupervisorEscalation")<{
  readonly child: string
  readonly restarts: number
  readonly period: Duration.Duration
  readonly lastCause: string
}> {
  override get message(): string {
    return `worker ${this.child} needed ${this.restarts} restarts within ${Duration.format(this.period)}, over the supervisor's intensity; all workers were stopped. Last failure: ${this.lastCause}`
  }
}

interface Running {
  fiber: Fiber.Fiber<unknown, unknown> | undefined
  gen: number
  startedAt: number
  failures: number
}

interface ExitMessage {
  readonly index: number
  readonly gen: number
  readonly exit: Exit.Exit<unknown, unknown>
}

/** Whether a child that ended with `exit` is restarted, per its restart type. */
export const shouldRestart = (restart: Restart, exit: Exit.Exit<unknown, unknown>): boolean => {
  if (restart === "temporary") return false
  if (restart === "permanent") return true
  return Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause)
}

/** The delay before restart number `failures + 1` (no jitter applied). */
export const backoffDelay = (backoff: Backoff, failures: number): number =>
  Math.min(Duration.toMillis(Duration.fromInputUnsafe(backoff.max)), Duration.toMillis(Duration.fromInputUnsafe(backoff.base)) * Math.pow(backoff.factor, failures))

/**
 * Runs the supervisor in the calling fiber until it escalates (or is interrupted, which stops
 * every child in reverse start order).
 */
export const run = (
  spec: Spec,
  registry: Task.TaskRegistry
): Effect.Effect<never, SupervisorEscalation, Scope.Scope> =>
  Effect.gen(function*() {
    // Children live in their own scope, closed after `stopAll` (finalizers run last-in first-out):
    // stopAll stops them one by one, each bounded by its shutdown timeout.
    const scope = yield* Scope.fork(yield* Effect.scope, "sequential")
    const children = spec.children
    const exits = yield* Queue.bounded<ExitMessage>(Math.max(16, children.length * 4))
    const state: Array<Running> = children.map(() => ({ fiber: undefined, gen: 0, startedAt: 0, failures: 0 }))
    const period = Duration.fromInputUnsafe(spec.period)
    const resetAfter = Duration.toMillis(Duration.fromInputUnsafe(spec.backoff.resetAfter))
    let restarts: Array<number> = []

    const taskName = (i: number) => `worker/${children[i]!.name}`

    const start = (i: number) =>
      Effect.gen(function*() {
        const s = state[i]!
        const gen = ++s.gen
        s.startedAt = yield* Effect.clockWith((c) => c.currentTimeMillis)
        const fiber = yield* Task.forkIn(registry, scope, taskName(i), Effect.scoped(children[i]!.run), { kind: "worker" })
        s.fiber = fiber
        fiber.addObserver((exit) => {
          Queue.offerUnsafe(exits, { index: i, gen, exit })
        })
      })

    const stop = (i: number) =>
      Effect.gen(function*() {
        const s = state[i]!
        const fiber = s.fiber
        if (fiber === undefined) return
        s.gen++ // its exit message is now stale
        s.fiber = undefined
        fiber.interruptUnsafe()
        const done = yield* Effect.timeoutOption(Fiber.await(fiber), children[i]!.shutdownTimeout)
        if (done._tag === "None") {
          yield* Effect.logWarning(
            `worker ${children[i]!.name} did not stop within its shutdown timeout (${Duration.format(Duration.fromInputUnsafe(children[i]!.shutdownTimeout))}); abandoned. Make its finalizers interruptible or bound them with a timeout.`
          )
        }
        registry.setState(taskName(i), "stopped")
      })

    const stopAll = (indices: ReadonlyArray<number>) => Effect.forEach([...indices].reverse(), stop, { discard: true })
    const runningAfter = (i: number) => state.flatMap((s, j) => (j > i && s.fiber !== undefined ? [j] : []))

    yield* Effect.addFinalizer(() => stopAll(children.map((_, i) => i)))
    for (let i = 0; i < children.length; i++) yield* start(i)

    while (true) {
      const { index, gen, exit } = yield* Queue.take(exits)
      const s = state[index]!
      if (gen !== s.gen) continue
      s.fiber = undefined
      const c = children[index]!
      const failed = Exit.isFailure(exit)
      if (failed) {
        yield* Effect.logWarning(`worker ${c.name} ended`, exit.cause).pipe(Task.named(taskName(index)))
      }
      if (!shouldRestart(c.restart, exit)) {
        registry.setState(taskName(index), failed ? "failed" : "done")
        continue
      }

      const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
      restarts = restarts.filter((t) => now - t < Duration.toMillis(period))
      restarts.push(now)
      if (restarts.length > spec.intensity) {
        yield* stopAll(children.map((_, i) => i))
        return yield* new SupervisorEscalation({
          child: c.name,
          restarts: restarts.length,
          period,
          lastCause: failed ? Cause.pretty(exit.cause) : "returned (permanent workers must not return)"
        })
      }

      if (now - s.startedAt >= resetAfter) s.failures = 0
      const base = backoffDelay(spec.backoff, s.failures)
      s.failures++
      const jitter = spec.backoff.jitter === 0 ? 1 : 1 + spec.backoff.jitter * (2 * (yield* Random.next) - 1)
      const delay = Duration.millis(Math.round(base * jitter))

      let restartSet: ReadonlyArray<number> = [index]
      if (spec.strategy === "one_for_all") {
        const others = state.flatMap((x, j) => (j !== index && x.fiber !== undefined ? [j] : []))
        yield* stopAll(others)
        restartSet = [...others, index].sort((a, b) => a - b)
      } else if (spec.strategy === "rest_for_one") {
        const after = runningAfter(index)
        yield* stopAll(after)
        restartSet = [index, ...after]
      }
      // OTP: a temporary child stopped by a sibling's restart is not started again.
      restartSet = restartSet.filter((j) => j === index || children[j]!.restart !== "temporary")

      registry.setState(taskName(index), "restarting")
      yield* Effect.sleep(delay)
      for (const j of restartSet) {
        registry.restarted(taskName(j))
        yield* start(j)
      }
    }
  })
