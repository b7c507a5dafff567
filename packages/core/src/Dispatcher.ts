/**
 * Dispatcher: takes updates from the intake and runs their handlers.
 *
 * Updates with one ordering key run one after another in arrival order; different keys run in
 * parallel. At most `concurrency` updates are admitted at once (running, or waiting behind an
 * earlier update of their key), so nothing between intake and handlers grows without bound and
 * a full dispatcher pushes back on the intake. The state of a key lives exactly as long as it
 * has updates: the last one to finish removes it.
 *
 * Each run is one fiber, and its deadline costs no fiber: one sweeper per dispatcher sleeps until
 * the earliest deadline and interrupts the runs past theirs (runs with the same timeout expire in
 * start order, so a FIFO per distinct timeout keeps the earliest at hand). A finished run queues
 * the next update of its key, so a key needs no worker of its own.
 *
 * Where runs start: an update an adapter hands over directly (`Intake.setDirect`, while this
 * dispatcher waits on an empty intake) starts at once, in the adapter's callback; every other
 * run starts in a batch on the scheduler (one task per batch). A run that finishes while it
 * starts needs no observer, deadline or bookkeeping at all.
 */
import { Cause, Clock, Context, Deferred, Duration, Effect, Exit, Fiber, Scheduler, Scope } from "effect"
import type { Intake } from "./Intake.ts"
import * as Task from "./Task.ts"
import { notifyDone, type Update } from "./Update.ts"

/**
 * What the dispatcher runs for an update: the task name (for reports and the fiber's name), its
 * deadline, the run itself, and what to do once the run's fiber has ended.
 */
export interface Job {
  readonly task: string
  /** Interrupt the run after this many milliseconds (none: no deadline). */
  readonly timeoutMs?: number | undefined
  /** The run; its `Scope` is the run's own, closed when the run ends (see `start`). */
  readonly effect: Effect.Effect<void, unknown, Scope.Scope>
  /**
   * Called once the run has ended and its scope is closed, with its exit and whether the deadline
   * interrupted it. What it returns (reporting a failure, say) runs as a fiber of the same task.
   */
  readonly done: (exit: Exit.Exit<void, unknown>, timedOut: boolean, context: Context.Context<never>) => Effect.Effect<void> | undefined
}

export interface Dispatcher {
  /** Updates admitted and not finished. */
  readonly inFlight: () => number
  /** Ordering keys with updates admitted. */
  readonly keys: () => number
  /** Task names of the handler runs in progress right now. */
  readonly running: () => ReadonlyArray<string>
  /** Completes when the intake is closed and every admitted update has finished. */
  readonly idle: Effect.Effect<void>
  readonly completed: () => number
}

interface Run {
  readonly deadline: number
  readonly timeoutMs: number
  timedOut: boolean
  /** What the deadline interrupts: the run's fiber, then the fiber releasing its scope. */
  fiber: Fiber.Fiber<void, unknown>
}

/** Deadlines of the runs in progress, one insertion-ordered FIFO per distinct timeout. */
class Deadlines {
  readonly #fifos = new Map<number, Set<Run>>()

  add(run: Run): void {
    let fifo = this.#fifos.get(run.timeoutMs)
    if (fifo === undefined) {
      fifo = new Set()
      this.#fifos.set(run.timeoutMs, fifo)
    }
    fifo.add(run)
  }

  remove(run: Run): void {
    this.#fifos.get(run.timeoutMs)?.delete(run)
  }

  earliest(): number | undefined {
    let min: number | undefined
    for (const fifo of this.#fifos.values()) {
      for (const run of fifo) {
        if (min === undefined || run.deadline < min) min = run.deadline
        break
      }
    }
    return min
  }

  /** Removes and returns the runs whose deadline is at or before `now`. */
  expire(now: number): Array<Run> {
    const out: Array<Run> = []
    for (const fifo of this.#fifos.values()) {
      for (const run of fifo) {
        if (run.deadline > now) break
        fifo.delete(run)
        out.push(run)
      }
    }
    return out
  }
}

const NONE: Array<Update> = []

/** Starts fibers of one task: its context, and a fork from it. */
interface Forker {
  readonly context: Context.Context<never>
  readonly fork: <A, E>(effect: Effect.Effect<A, E>) => Fiber.Fiber<A, E>
}

/**
 * A run's scope: an ordinary `Scope.Closeable` (the interface is public: a strategy, a parent and a
 * state the `Scope` functions update), made by a class. `Scope.makeUnsafe` builds an object literal
 * with computed keys, which V8 defines through its runtime, property by property, on every call:
 * measurable at one scope per update.
 */
class RunScope implements Scope.Closeable {
  declare readonly ["~effect/Scope"]: "~effect/Scope"
  declare readonly ["~effect/Scope/Closeable"]: "~effect/Scope/Closeable"
  readonly strategy = "sequential" as const
  readonly parent = undefined
  state: Scope.State.Open | Scope.State.Closed | Scope.State.Empty = EMPTY
}
const EMPTY: Scope.State.Empty = { _tag: "Empty" }
// the type ids live on the prototype: `Scope.isScope` and friends look them up with `in`
Object.defineProperties(RunScope.prototype, {
  "~effect/Scope": { value: "~effect/Scope" },
  "~effect/Scope/Closeable": { value: "~effect/Scope/Closeable" }
})

/**
 * Closes a run's scope once its fiber has ended. Most runs add no finalizer: then nothing is left
 * to run (`undefined`). Otherwise the finalizers' effect, to run uninterruptibly before the run
 * counts as finished.
 */
const closeScope = (scope: Scope.Closeable, exit: Exit.Exit<void, unknown>): Effect.Effect<void> | undefined => {
  const finalize = Scope.closeUnsafe(scope, exit)
  return finalize === undefined ? undefined : Effect.uninterruptible(finalize)
}

/**
 * The run's exit with its finalizers' failure, if any, added as `Effect.scoped` adds it: a run
 * that failed and whose release also failed has both causes, and when one of them is a defect,
 * its typed failures count as defects too (the run died).
 */
const withFinalizers = (exit: Exit.Exit<void, unknown>, finalized: Exit.Exit<void, unknown>): Exit.Exit<void, unknown> => {
  if (Exit.isSuccess(finalized)) return exit
  if (Exit.isSuccess(exit)) return finalized
  const cause = Cause.combine(exit.cause, finalized.cause)
  if (!Cause.hasDies(cause) || !Cause.hasFails(cause)) return Exit.failCause(cause)
  return Exit.failCause(Cause.fromReasons(cause.reasons.map((reason) =>
    Cause.isFailReason(reason) && !Cause.isDone(reason.error) ? Cause.makeDieReason(reason.error) : reason
  )))
}

/** Runs started in one scheduled task at most; more wait for the next, so I/O gets its turn. */
const BATCH_MAX = 1024

export const make = (options: {
  readonly intake: Intake
  readonly concurrency: number
  readonly prepare: (update: Update) => Job
}): Effect.Effect<Dispatcher, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { intake, concurrency, prepare } = options
    const clock = yield* Clock.Clock
    // Every run is a fiber of this set; closing the dispatcher's scope interrupts and awaits them.
    // (Our own set rather than a FiberSet: the run's exit observer below already does the bookkeeping.)
    const runs = new Set<Fiber.Fiber<void, unknown>>()
    let closed = false
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        closed = true
        // a run that ends here still closes its scope: finalizers that cannot finish at once join
        // `runs` as the run goes, so this waits until nothing is left
        while (runs.size > 0) yield* Fiber.interruptAll([...runs])
      })
    )
    // A run's fiber starts from a context made once per task name: naming the fiber costs nothing per run.
    const base = yield* Effect.context<never>()
    const forks = new Map<string, Forker>()
    const forkerFor = (task: string) => {
      let found = forks.get(task)
      if (found === undefined) {
        if (forks.size >= 10_000) forks.clear() // bounded: task names come from routes
        // Flat (one map, no overlays): each run adds its scope as one cheap overlay. On a context
        // already at its overlay depth limit, that add copied the whole map for every run, the
        // largest allocation per update.
        const context = Context.makeUnsafe<never>(new Map(Context.add(base, Task.CurrentTask, task).mapUnsafe))
        found = { context, fork: Effect.runForkWith(context) } // fiberbot:owned runs still going are in `runs`, interrupted when this scope closes
        forks.set(task, found)
      }
      return found
    }
    // Per key with updates admitted: those waiting behind the running one. Most keys never have
    // one waiting, so they share the empty `NONE` until a second update arrives.
    const pending = new Map<string, Array<Update>>()
    const deadlines = new Deadlines()
    const idle = Deferred.makeUnsafe<void>()
    let capacity: Deferred.Deferred<void> | undefined
    let wake = Deferred.makeUnsafe<void>()
    let sleepingUntil = Number.POSITIVE_INFINITY
    let admitted = 0
    let completed = 0
    let loopDone = false

    const checkIdle = () => {
      if (loopDone && pending.size === 0) Deferred.doneUnsafe(idle, Exit.void)
    }

    const finish = (key: string, update: Update, handled: boolean): void => {
      admitted--
      completed++
      notifyDone(update, handled)
      if (capacity !== undefined && admitted < concurrency) Deferred.doneUnsafe(capacity, Exit.void)
      const waiting = pending.get(key)
      const next = waiting === undefined || waiting === NONE ? undefined : waiting.shift()
      if (next !== undefined) {
        startSoon(key, next)
      } else {
        if (waiting !== undefined) pending.delete(key)
        checkIdle()
      }
    }

    // Runs start in batches on the scheduler, not inside the caller (the dispatcher taking from the
    // intake, or the previous run of the key ending): one scheduled task starts every run that is
    // ready, instead of one trip through the scheduler per run. A run that ends at once queues its
    // key's next update into the same batch; a batch is bounded, the rest goes in the next one.
    const scheduler = Context.get(base, Scheduler.Scheduler).makeDispatcher()
    const readyKeys: Array<string> = []
    const readyUpdates: Array<Update> = []
    let batchScheduled = false
    /** The key of the run being started right now, if any (a start never nests: see `admit`). */
    let startingKey: string | undefined
    const startSoon = (key: string, update: Update): void => {
      readyKeys.push(key)
      readyUpdates.push(update)
      if (!batchScheduled) {
        batchScheduled = true
        scheduler.scheduleTask(startBatch, 0)
      }
    }
    const startBatch = (): void => {
      let i = 0
      for (; i < readyKeys.length && i < BATCH_MAX; i++) start(readyKeys[i]!, readyUpdates[i]!)
      readyKeys.splice(0, i)
      readyUpdates.splice(0, i)
      if (readyKeys.length > 0) scheduler.scheduleTask(startBatch, 0)
      else batchScheduled = false
    }

    const complete = (
      key: string,
      update: Update,
      job: Job,
      forker: Forker,
      exit: Exit.Exit<void, unknown>,
      timedOut: boolean
    ): void => {
      const after = job.done(exit, timedOut, forker.context)
      if (after !== undefined && !closed) {
        const reporter = forker.fork(after)
        runs.add(reporter)
        reporter.addObserver(() => runs.delete(reporter))
      }
      finish(key, update, Exit.isSuccess(exit) || timedOut || !Cause.hasInterruptsOnly(exit.cause))
    }

    /**
     * The run's fiber has ended: close its scope, then complete it. Finalizers that cannot finish
     * at once run in a fiber of the same task, uninterruptibly; until they are done the key stays
     * busy, the run's deadline still counts (a release past it makes the run a timeout, as it did
     * inside the run's fiber), and a stop waits for them (the fiber is in `runs`). `run` is the
     * run's deadline entry, when it has one.
     */
    const ended = (
      key: string,
      update: Update,
      job: Job,
      forker: Forker,
      scope: Scope.Closeable,
      exit: Exit.Exit<void, unknown>,
      run: Run | undefined
    ): void => {
      const finalize = closeScope(scope, exit)
      if (finalize === undefined) {
        // The sweeper is not woken when this was the last deadline: quick runs would wake it (and
        // make it set a timer again) once per run. Its timer finds nothing to do and it then idles.
        if (run !== undefined) deadlines.remove(run)
        return complete(key, update, job, forker, exit, run?.timedOut ?? false)
      }
      // busy before the finalizers start: one that offers an update of this key queues it behind
      if (!pending.has(key)) pending.set(key, NONE)
      const finalizer = forker.fork(finalize)
      const finalized = finalizer.pollUnsafe()
      if (finalized !== undefined) {
        if (run !== undefined) deadlines.remove(run)
        return complete(key, update, job, forker, withFinalizers(exit, finalized), run?.timedOut ?? false)
      }
      let deadline = run
      if (deadline !== undefined) {
        deadline.fiber = finalizer
      } else if (job.timeoutMs !== undefined) {
        // a run that ended while it started had no deadline entry: its release gets one now
        deadline = { deadline: clock.currentTimeMillisUnsafe() + job.timeoutMs, timeoutMs: job.timeoutMs, timedOut: false, fiber: finalizer }
        deadlines.add(deadline)
        if (deadline.deadline < sleepingUntil) Deferred.doneUnsafe(wake, Exit.void)
      }
      runs.add(finalizer)
      finalizer.addObserver((finalized) => {
        runs.delete(finalizer)
        if (deadline !== undefined) deadlines.remove(deadline)
        complete(key, update, job, forker, withFinalizers(exit, finalized), deadline?.timedOut ?? false)
      })
    }

    const start = (key: string, update: Update): void => {
      if (closed) return finish(key, update, false)
      const job = prepare(update)
      const forker = forkerFor(job.task)
      // Each run has its own scope, given to its fiber as the `Scope` service and closed from here
      // when the fiber ends: cheaper than `Effect.scoped` around every run (no extra primitive, exit
      // hook or context switch inside the fiber), with the same guarantee that what the handler
      // acquired is released, however the run ends, before the run counts as finished.
      const scope = new RunScope()
      startingKey = key
      let fiber: Fiber.Fiber<void, unknown>
      try {
        fiber = Effect.runForkWith(Context.addUnsafe<never, Scope.Scope, Scope.Scope>(forker.context, Scope.Scope.key, scope))(job.effect) // fiberbot:owned the run is in `runs` below (or already done), interrupted when this scope closes
      } finally {
        startingKey = undefined
      }
      // A run that finished while it was started (no I/O) needs no bookkeeping and no deadline.
      const exit = fiber.pollUnsafe()
      if (exit !== undefined) return ended(key, update, job, forker, scope, exit, undefined)
      // still running: its key is busy from now on (a direct start did not mark it)
      if (!pending.has(key)) pending.set(key, NONE)
      // The deadline counts from here: the run's synchronous start cannot be interrupted anyway.
      const timeoutMs = job.timeoutMs
      const run: Run = {
        deadline: timeoutMs === undefined ? Number.POSITIVE_INFINITY : clock.currentTimeMillisUnsafe() + timeoutMs,
        timeoutMs: timeoutMs ?? Number.POSITIVE_INFINITY,
        timedOut: false,
        fiber
      }
      runs.add(fiber)
      if (timeoutMs !== undefined) {
        deadlines.add(run)
        if (run.deadline < sleepingUntil) Deferred.doneUnsafe(wake, Exit.void)
      }
      fiber.addObserver((exit) => {
        runs.delete(fiber)
        ended(key, update, job, forker, scope, exit, run)
      })
    }

    /**
     * `now`: the update came straight from an adapter (see `Intake.setDirect`): its run starts
     * right here, in the adapter's callback, unless another run is being started (a handler
     * offering to its own bot), which would nest.
     */
    const admit = (update: Update, now: boolean): void => {
      admitted++
      const key = update.key
      const queue = pending.get(key)
      if (queue !== undefined) {
        if (queue === NONE) pending.set(key, [update])
        else queue.push(update)
        return
      }
      // a run of this key is starting right now (its handler offered to its own bot): wait behind it
      if (key === startingKey) {
        pending.set(key, [update])
        return
      }
      // A direct start marks its key busy only if the run outlives its start: a quick run never
      // touches the map (setting and deleting a key per update made the map re-allocate its table).
      if (now && startingKey === undefined) return start(key, update)
      pending.set(key, NONE)
      startSoon(key, update)
    }

    // Straight from the adapter only while the loop is parked on an empty intake with room to
    // admit: then the loop would have taken this very update next, so order is the same.
    let parked = false
    intake.setDirect((update) => {
      if (!parked || closed || loopDone || admitted >= concurrency) return false
      admit(update, true)
      return true
    })

    const loop = Effect.gen(function*() {
      while (true) {
        if (admitted >= concurrency) {
          capacity = Deferred.makeUnsafe<void>()
          yield* Deferred.await(capacity)
          capacity = undefined
        }
        // Taken and admitted in one synchronous step: an update is never out of the queue and not
        // yet admitted, which a direct offer could overtake.
        const next = intake.poll()
        if (next !== undefined) {
          admit(next, false)
          continue
        }
        if (intake.isClosed()) {
          // sources that were waiting for room when the intake closed still deliver: take the
          // rest the waiting way until the intake says it is done (no direct offers after close)
          const last = yield* Effect.result(intake.take)
          if (last._tag === "Failure") return
          admit(last.success, false)
          continue
        }
        parked = true
        yield* intake.awaitOffer
        parked = false
      }
    }).pipe(
      Effect.ensuring(Effect.sync(() => {
        loopDone = true
        checkIdle()
      })),
      Task.named("dispatcher")
    )

    // Sleeps until the earliest deadline (or until a run with an earlier one starts) and
    // interrupts every run past its deadline.
    const sweeper = Effect.gen(function*() {
      while (true) {
        const now = clock.currentTimeMillisUnsafe()
        for (const run of deadlines.expire(now)) {
          run.timedOut = true
          run.fiber.interruptUnsafe()
        }
        const next = deadlines.earliest()
        wake = Deferred.makeUnsafe<void>()
        sleepingUntil = next ?? Number.POSITIVE_INFINITY
        if (next === undefined) yield* Deferred.await(wake)
        else yield* Effect.raceFirst(Effect.sleep(Duration.millis(next - now)), Deferred.await(wake))
      }
    }).pipe(Task.named("dispatcher/deadlines"))

    yield* Effect.forkScoped(loop, { startImmediately: true })
    yield* Effect.forkScoped(sweeper, { startImmediately: true })

    return {
      inFlight: () => admitted,
      keys: () => pending.size,
      running: () => [...runs].map((fiber) => fiber.getRef(Task.CurrentTask)),
      idle: Deferred.await(idle),
      completed: () => completed
    }
  })
