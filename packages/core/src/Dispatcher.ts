/**
 * Dispatcher: takes updates from the intake and runs their handlers.
 *
 * Updates with one ordering key run one after another in arrival order; different keys run in
 * parallel. At most `concurrency` updates are admitted at once (running, or waiting behind an
 * earlier update of their key), so nothing between intake and handlers grows without bound and
 * a full dispatcher pushes back on the intake. The state of a key lives exactly as long as it
 * has updates: the last one to finish removes it.
 */
import { Deferred, Effect, Exit, FiberSet, Scope, Semaphore } from "effect"
import type { Intake } from "./Intake.ts"
import * as Task from "./Task.ts"
import type { Update } from "./Update.ts"

/** What the dispatcher runs for an update: the task name (for reports) and the run itself. */
export interface Job {
  readonly task: string
  readonly run: Effect.Effect<void>
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

export const make = (options: {
  readonly intake: Intake
  readonly concurrency: number
  readonly prepare: (update: Update) => Job
}): Effect.Effect<Dispatcher, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { intake, concurrency, prepare } = options
    const permits = yield* Semaphore.make(concurrency)
    const workers = yield* FiberSet.make<void, never>()
    const pending = new Map<string, Array<Update>>()
    const current = new Map<string, string>()
    const idle = Deferred.makeUnsafe<void>()
    let admitted = 0
    let completed = 0
    let loopDone = false

    const checkIdle = () => {
      if (loopDone && pending.size === 0) Deferred.doneUnsafe(idle, Exit.void)
    }

    const runOne = (key: string, update: Update): Effect.Effect<void> =>
      Effect.suspend(() => {
        const job = prepare(update)
        current.set(key, job.task)
        return job.run.pipe(
          Effect.onExit((exit) => Effect.sync(() => update.onDone?.(Exit.isSuccess(exit)))),
          Effect.ensuring(Effect.suspend(() => {
            current.delete(key)
            admitted--
            completed++
            return permits.release(1)
          }))
        )
      })

    // One fiber per active key: drains that key's updates in order, then forgets the key.
    const keyWorker = (key: string, first: Update): Effect.Effect<void> =>
      Effect.gen(function*() {
        let next: Update | undefined = first
        while (next !== undefined) {
          yield* runOne(key, next)
          const queue = pending.get(key)!
          next = queue.shift()
          if (next === undefined) {
            pending.delete(key)
            checkIdle()
          }
        }
      })

    const admit = (update: Update): Effect.Effect<void> =>
      Effect.suspend(() => {
        admitted++
        const queue = pending.get(update.key)
        if (queue !== undefined) {
          queue.push(update)
          return Effect.void
        }
        pending.set(update.key, [])
        return Effect.asVoid(FiberSet.run(workers, keyWorker(update.key, update)))
      })

    const loop = Effect.gen(function*() {
      while (true) {
        yield* permits.take(1)
        const taken = yield* Effect.result(intake.take)
        if (taken._tag === "Failure") {
          yield* permits.release(1)
          return
        }
        yield* admit(taken.success)
      }
    }).pipe(
      Effect.ensuring(Effect.sync(() => {
        loopDone = true
        checkIdle()
      })),
      Task.named("dispatcher")
    )
    yield* Effect.forkScoped(loop, { startImmediately: true })

    return {
      inFlight: () => admitted,
      keys: () => pending.size,
      running: () => [...current.values()],
      idle: Deferred.await(idle),
      completed: () => completed
    }
  })
