/**
 * FiberRegistry: every live fiber a bot runs, with its task name and owner.
 *
 * Effect 4 has no public fiber registry, so we install a `Tracer` whose `context` hook sees each
 * fiber on the first operation it evaluates; we record it there and drop it when it exits. The
 * tracer is installed per bot by the `BotManager`, so every fiber a bot forks, even deep inside a
 * handler or a library, is known with the `CurrentTask` and `CurrentBot` it inherited.
 *
 * A `snapshot` groups live fibers by bot and task with counts, largest first, like Go's pprof
 * goroutine profile (`debug=1`); `fibers` lists each one (`debug=2`).
 */
import { Context, Effect, Fiber, Layer, Tracer } from "effect"
import { CurrentBot, CurrentTask } from "./Task.ts"

/** The key of `Tracer.EffectPrimitive`'s evaluate method (see effect/Tracer). */
const EVALUATE = "~effect/Effect/evaluate"

export interface LiveFiber {
  readonly id: number
  readonly bot: string
  readonly task: string
  readonly span: string | undefined
  readonly startedAt: number
  readonly ageMs: number
  /** The fiber that forked this one, when it was still alive at the fork. */
  readonly parent?: number | undefined
  /** `running` while it evaluates right now, else `suspended` (waiting on a timer, a queue, I/O ...). */
  readonly state?: "running" | "suspended" | undefined
}

export interface FiberGroup {
  readonly bot: string
  readonly task: string
  readonly count: number
  readonly ids: ReadonlyArray<number>
}

export interface Snapshot {
  readonly takenAt: number
  readonly total: number
  readonly groups: ReadonlyArray<FiberGroup>
}

interface Entry {
  readonly fiber: Fiber.Fiber<unknown, unknown>
  readonly startedAt: number
  readonly parent: number | undefined
}

/** Effect's fiber keeps these internals; read defensively, as they are not public API. */
interface FiberInternals {
  readonly _parent?: { readonly id: number } | undefined
  readonly _running?: boolean
}

type Marked = Fiber.Fiber<unknown, unknown>

export class FiberRegistryImpl {
  readonly #live = new Map<number, Entry>()
  #started = 0
  // The hook runs for every operation of every fiber; consecutive operations are mostly the same
  // fiber's, so anything happens only when the running fiber changes. Most fibers (a quick handler
  // run) end within their first stretch of operations, before anything else runs: a fiber is only
  // recorded when it is still alive as the next fiber takes over (or when a reader looks), so a
  // fiber that ends at once costs a comparison and no record at all.
  #last: Marked | undefined = undefined
  /** `#last` runs its first stretch and is not recorded yet. */
  #lastNew = false
  /** Fiber ids only grow: an id above every id seen is a new fiber, no look-up needed. */
  #maxSeen = -1
  /** The older fiber most recently found in `#live` (the one new fibers usually alternate with). */
  #lastOld: Marked | undefined = undefined

  /** Fibers seen since the registry was made. */
  get started(): number {
    return this.#started
  }

  get size(): number {
    this.#settle()
    return this.#live.size
  }

  #record(fiber: Marked): void {
    const live = this.#live
    const id = fiber.id
    live.set(id, { fiber, startedAt: Date.now(), parent: (fiber as unknown as FiberInternals)._parent?.id })
    fiber.addObserver(() => live.delete(id))
  }

  /** Records the fiber of the current stretch if it is new and alive: before every read. */
  #settle(): void {
    if (!this.#lastNew) return
    this.#lastNew = false
    const last = this.#last!
    if (last.pollUnsafe() === undefined) this.#record(last)
  }

  #see(fiber: Marked): void {
    if (fiber === this.#last) return
    this.#settle()
    this.#last = fiber
    const id = fiber.id
    if (id > this.#maxSeen) {
      this.#maxSeen = id
      this.#started++
      this.#lastNew = true
      return
    }
    if (fiber === this.#lastOld || this.#live.has(id)) {
      this.#lastOld = fiber
      return
    }
    // an older fiber running its first operation now (it was forked before a newer one ran)
    this.#started++
    this.#lastNew = true
  }

  /**
   * A tracer that records fibers and delegates spans to `base`. A fiber is looked up by id rather
   * than marked with a property: adding a property to every fiber object changes its shape, which
   * cost the whole run loop a few percent.
   */
  tracer(base: Tracer.Tracer): Tracer.Tracer {
    const baseContext = base.context
    return Tracer.make({
      span: (options) => base.span(options),
      context: baseContext
        ? (primitive, fiber) => {
          this.#see(fiber as Marked)
          return baseContext(primitive, fiber)
        }
        : (primitive, fiber) => {
          this.#see(fiber as Marked)
          return (primitive as unknown as Record<string, (f: unknown) => never>)[EVALUATE]!(fiber)
        }
    })
  }

  /**
   * Live fibers counted by bot and by bot + task, without building a record per fiber: what the
   * watchdog and the metrics read every few seconds. Keys of `byTask` are `bot\u0000task`.
   */
  counts(): { readonly total: number; readonly byBot: ReadonlyMap<string, number>; readonly byTask: ReadonlyMap<string, number> } {
    const byBot = new Map<string, number>()
    const byTask = new Map<string, number>()
    let total = 0
    this.#settle()
    for (const { fiber } of this.#live.values()) {
      if (fiber.pollUnsafe() !== undefined) continue
      total++
      const bot = fiber.getRef(CurrentBot)
      byBot.set(bot, (byBot.get(bot) ?? 0) + 1)
      const key = `${bot}\u0000${fiber.getRef(CurrentTask)}`
      byTask.set(key, (byTask.get(key) ?? 0) + 1)
    }
    return { total, byBot, byTask }
  }

  /** Every live fiber, oldest first. */
  fibers(filter?: { readonly bot?: string | undefined }): ReadonlyArray<LiveFiber> {
    const now = Date.now()
    const out: Array<LiveFiber> = []
    this.#settle()
    for (const { fiber, startedAt, parent } of this.#live.values()) {
      if (fiber.pollUnsafe() !== undefined) continue
      const bot = fiber.getRef(CurrentBot)
      if (filter?.bot !== undefined && bot !== filter.bot) continue
      out.push({
        id: fiber.id,
        bot,
        task: fiber.getRef(CurrentTask),
        span: spanName(fiber),
        startedAt,
        ageMs: now - startedAt,
        parent,
        state: (fiber as unknown as FiberInternals)._running === true ? "running" : "suspended"
      })
    }
    return out
  }

  /** Live fibers grouped by bot and task, largest group first. */
  snapshot(filter?: { readonly bot?: string | undefined }): Snapshot {
    const groups = new Map<string, { bot: string; task: string; ids: Array<number> }>()
    const fibers = this.fibers(filter)
    for (const f of fibers) {
      const key = `${f.bot}\u0000${f.task}`
      const group = groups.get(key)
      if (group) group.ids.push(f.id)
      else groups.set(key, { bot: f.bot, task: f.task, ids: [f.id] })
    }
    return {
      takenAt: Date.now(),
      total: fibers.length,
      groups: [...groups.values()]
        .map((g) => ({ bot: g.bot, task: g.task, count: g.ids.length, ids: g.ids }))
        .sort((a, b) => b.count - a.count || a.bot.localeCompare(b.bot) || a.task.localeCompare(b.task))
    }
  }
}

const spanName = (fiber: Fiber.Fiber<unknown, unknown>): string | undefined => {
  const span = fiber.cache.span
  return span?._tag === "Span" ? span.name : undefined
}

/** Renders a snapshot like pprof's `debug=1`: a total line, then `count @ bot task` per group. */
export const format = (snapshot: Snapshot): string =>
  [
    `fiber profile: total ${snapshot.total}`,
    ...snapshot.groups.map((g) => `${g.count} @ bot=${g.bot} task=${g.task}`)
  ].join("\n")

export class FiberRegistry extends Context.Service<FiberRegistry, FiberRegistryImpl>()("fiberbot/FiberRegistry") {
  static readonly layer = Layer.sync(FiberRegistry, () => new FiberRegistryImpl())
}

/** Tracks every fiber `effect` starts (itself included) in `registry`. */
export const track = (registry: FiberRegistryImpl) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(Effect.tracer, (base) => Effect.withTracer(effect, registry.tracer(base)))
