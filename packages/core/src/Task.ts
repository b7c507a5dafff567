/**
 * Tasks: named fibers in a bot's scope.
 *
 * Every fiber a bot starts carries its task name (`telegram/poll`, `handler/message`,
 * `worker/cleanup`) and its bot in two fiber references, so that logs, metrics and fiber
 * dumps can say who a fiber belongs to. Child fibers inherit both.
 *
 * A `TaskRegistry` lists the long-lived tasks of each bot (adapters' loops, workers) with their
 * state and restart count; short-lived handler runs are counted, not listed.
 */
import { Cause, Context, Effect, Exit, Fiber, Scope } from "effect"

/** The task name of the running fiber; inherited by the fibers it forks. */
export const CurrentTask = Context.Reference<string>("fiberbot/CurrentTask", { defaultValue: () => "-" })

/** The bot that owns the running fiber; inherited by the fibers it forks. */
export const CurrentBot = Context.Reference<string>("fiberbot/CurrentBot", { defaultValue: () => "-" })

export type TaskKind = "adapter" | "worker" | "supervisor" | "dispatcher" | "handler" | "system"

export type TaskState = "running" | "restarting" | "stopped" | "failed" | "done"

export interface TaskInfo {
  readonly name: string
  readonly bot: string
  readonly kind: TaskKind
  readonly state: TaskState
  readonly startedAt: number
  readonly restarts: number
  readonly fiberId: number | undefined
}

interface MutableTask {
  name: string
  bot: string
  kind: TaskKind
  state: TaskState
  startedAt: number
  restarts: number
  fiber: Fiber.Fiber<unknown, unknown> | undefined
}

/**
 * The tasks of one bot. Plain mutable state: it is only touched from fibers of the same
 * JavaScript thread, and reads take a copy.
 */
export class TaskRegistry {
  readonly #tasks = new Map<string, MutableTask>()
  readonly bot: string
  constructor(bot: string) {
    this.bot = bot
  }

  register(name: string, kind: TaskKind, fiber?: Fiber.Fiber<unknown, unknown>): void {
    const existing = this.#tasks.get(name)
    if (existing) {
      existing.state = "running"
      existing.fiber = fiber
      existing.startedAt = Date.now()
      return
    }
    this.#tasks.set(name, { name, bot: this.bot, kind, state: "running", startedAt: Date.now(), restarts: 0, fiber })
  }

  setState(name: string, state: TaskState): void {
    const task = this.#tasks.get(name)
    if (task) task.state = state
  }

  restarted(name: string): void {
    const task = this.#tasks.get(name)
    if (task) task.restarts++
  }

  attach(name: string, fiber: Fiber.Fiber<unknown, unknown>): void {
    const task = this.#tasks.get(name)
    if (task) task.fiber = fiber
  }

  /** Names of tasks whose fiber has not ended. */
  live(): ReadonlyArray<string> {
    const out: Array<string> = []
    for (const task of this.#tasks.values()) {
      if (task.fiber !== undefined && task.fiber.pollUnsafe() === undefined) out.push(task.name)
    }
    return out
  }

  list(): ReadonlyArray<TaskInfo> {
    return [...this.#tasks.values()].map((t) => ({
      name: t.name,
      bot: t.bot,
      kind: t.kind,
      state: t.state,
      startedAt: t.startedAt,
      restarts: t.restarts,
      fiberId: t.fiber?.id
    }))
  }
}

/**
 * Runs `effect` as the task `name`: the fiber and its children carry the name, and every log
 * line they write is annotated with it.
 */
export const named = (name: string) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  effect.pipe(Effect.provideService(CurrentTask, name))

/** Runs `effect` as part of bot `bot`. */
export const ownedBy = (bot: string) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  effect.pipe(Effect.provideService(CurrentBot, bot))

export interface ForkOptions {
  readonly kind?: TaskKind | undefined
}

/**
 * Forks `effect` as a named task into `scope` and lists it in `registry`. The fiber ends when
 * the scope closes, so it can never outlive its bot.
 */
export const forkIn = <A, E, R>(
  registry: TaskRegistry,
  scope: Scope.Scope,
  name: string,
  effect: Effect.Effect<A, E, R>,
  options?: ForkOptions
): Effect.Effect<Fiber.Fiber<A, E>, never, R> =>
  Effect.gen(function*() {
    const kind = options?.kind ?? "system"
    registry.register(name, kind)
    const fiber = yield* effect.pipe(
      Effect.onExit((exit) =>
        Effect.sync(() => registry.setState(name, Exit.isSuccess(exit) ? "done" : Cause.hasInterruptsOnly(exit.cause) ? "stopped" : "failed"))
      ),
      named(name),
      ownedBy(registry.bot),
      Effect.forkIn(scope, { startImmediately: true })
    )
    registry.attach(name, fiber)
    return fiber
  })

