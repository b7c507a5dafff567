/**
 * Offsets: which update ids may be confirmed to Telegram, for at-least-once polling.
 *
 * `getUpdates(offset)` confirms every update below `offset`, so the offset may only move past an
 * update once its handler finished, and past every earlier one too. Updates of different chats
 * finish out of order, so the tracker keeps the ids fetched in this run in order and the offset
 * is the oldest one not finished (or one past the newest fetched when all finished). Telegram
 * re-sends what is not confirmed; `seen` recognises those re-sends (ids in flight, and a bounded
 * window of finished ids that survives a restart of the bot in the same process), so no update is
 * handled twice.
 */
import { Deferred, Effect, Exit } from "effect"

export interface Tracker {
  /** A fetched id that is in flight, or finished within the window. */
  readonly seen: (id: number) => boolean
  /** Notes a fetched id about to be offered; ids arrive in ascending order within a run. */
  readonly track: (id: number) => void
  /** Notes an id in flight without ordering it (webhooks: nothing to confirm, only to dedupe). */
  readonly begin: (id: number) => void
  /** Notes an id that was already finished (a re-send): the offset may move past it. */
  readonly skip: (id: number) => void
  /** The handler of `id` finished (`handled`) or was interrupted (stays unconfirmed). */
  readonly finish: (id: number, handled: boolean) => void
  /** The offset to confirm with: everything below it finished. `undefined` before the first fetch. */
  readonly offset: () => number | undefined
  /** One past the newest id fetched (confirms everything fetched), `undefined` before the first. */
  readonly next: () => number | undefined
  /** Ids fetched and not yet below the offset. */
  readonly outstanding: () => number
  /** Ids tracked or begun and not finished yet (handed to the bot, or waiting to be). */
  readonly inFlight: () => number
  /** Completes at the next move of the offset. */
  readonly progress: () => Effect.Effect<void>
  /** Completes once at most `n` ids are outstanding (one wake-up, not one per move of the offset). */
  readonly drainedTo: (n: number) => Effect.Effect<void>
  /** Forgets in-flight state (a new run); the finished window is kept. */
  readonly reset: () => void
}

export const make = (options: { readonly window?: number | undefined } = {}): Tracker => {
  const windowSize = options.window ?? 10_000
  const finished = new Set<number>()
  const finishedOrder: Array<number> = []
  let order: Array<number> = []
  let head = 0
  let inFlight = new Set<number>()
  let highest = 0
  let moved = Deferred.makeUnsafe<void>()
  let drained: Deferred.Deferred<void> | undefined
  let drainTarget = 0

  const remember = (id: number) => {
    if (finished.has(id)) return
    finished.add(id)
    finishedOrder.push(id)
    if (finishedOrder.length > windowSize * 2) {
      for (const old of finishedOrder.splice(0, finishedOrder.length - windowSize)) finished.delete(old)
    }
  }

  const advance = () => {
    const before = head
    while (head < order.length && finished.has(order[head]!)) head++
    if (head === before) return
    if (head > 1024 && head * 2 > order.length) {
      order = order.slice(head)
      head = 0
    }
    const d = moved
    moved = Deferred.makeUnsafe<void>()
    Deferred.doneUnsafe(d, Exit.void)
    if (drained !== undefined && order.length - head <= drainTarget) {
      const w = drained
      drained = undefined
      Deferred.doneUnsafe(w, Exit.void)
    }
  }

  return {
    seen: (id) => inFlight.has(id) || finished.has(id),
    track: (id) => {
      inFlight.add(id)
      order.push(id)
      if (id > highest) highest = id
    },
    begin: (id) => {
      inFlight.add(id)
    },
    skip: (id) => {
      if (id > highest) highest = id
      advance()
    },
    finish: (id, handled) => {
      if (!inFlight.delete(id)) return
      if (!handled) return
      remember(id)
      advance()
    },
    offset: () => (head < order.length ? order[head]! : highest > 0 ? highest + 1 : undefined),
    next: () => (highest > 0 ? highest + 1 : undefined),
    outstanding: () => order.length - head,
    inFlight: () => inFlight.size,
    progress: () => Deferred.await(moved),
    drainedTo: (n) =>
      Effect.suspend(() => {
        if (order.length - head <= n) return Effect.void
        drainTarget = n
        drained ??= Deferred.makeUnsafe<void>()
        return Deferred.await(drained)
      }),
    reset: () => {
      order = []
      head = 0
      inFlight = new Set()
      highest = 0
      drained = undefined
    }
  }
}
