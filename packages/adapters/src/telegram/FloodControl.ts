/**
 * FloodControl: keeps outbound messages under Telegram's flood limits by queueing, not failing.
 *
 * Telegram asks for about 30 messages/s overall, 1/s into one chat and 20/min into one group;
 * past that it answers 429 and may ban for a while. Each send reserves the earliest slot that
 * respects all three limits and sleeps until then, so a burst into one chat is spread out while
 * other chats go on. The number of sends waiting is bounded: past `maxQueued`, `acquire` fails
 * with `FloodQueueFull` at once (the caller's error, not a silent pile-up).
 *
 * The overall limit is exact: no 1000 ms window ever holds more than `perSecond` slots. Slots are
 * kept in one-second buckets, and a bucket that holds `perSecond` already is full (it is such a
 * window itself), so a search for the next free slot skips runs of full buckets through
 * path-compressed links and only looks closely at the few slots around a candidate. A burst of n
 * sends into distinct chats costs O(n) overall, not O(n²) as a scan of every reserved slot did.
 */
import { Data, Duration, Effect } from "effect"

export interface Options {
  /** Messages per second overall (default 30). */
  readonly perSecond?: number | undefined
  /** Minimum spacing between messages into one chat (default 1 s). */
  readonly perChatInterval?: Duration.Input | undefined
  /** Messages per minute into one group, chat ids below 0 (default 20). */
  readonly perGroupPerMinute?: number | undefined
  /** Sends that may wait at once (default 10,000). */
  readonly maxQueued?: number | undefined
}

export class FloodQueueFull extends Data.TaggedError("FloodQueueFull")<{ readonly waiting: number }> {
  override get message(): string {
    return `telegram outbox: ${this.waiting} sends already waiting for flood limits; this one was refused`
  }
}

export interface FloodControl {
  /** Waits until a message into `chatId` may be sent. */
  readonly acquire: (chatId: number | string) => Effect.Effect<void, FloodQueueFull>
  readonly waiting: () => number
}

const ms = (d: Duration.Input) => Duration.toMillis(Duration.fromInputUnsafe(d))

export const make = (options: Options = {}): FloodControl => {
  const perSecond = Math.max(1, Math.floor(options.perSecond ?? 30))
  // whole milliseconds, so every slot is an integer and "the next millisecond" is well defined
  const chatGap = Math.max(0, Math.ceil(ms(options.perChatInterval ?? "1 second")))
  const perGroup = Math.max(1, Math.floor(options.perGroupPerMinute ?? 20))
  const maxQueued = options.maxQueued ?? 10_000
  // Overall: slots by second (`floor(t / 1000)`), each bucket's slots ascending. `full` links a
  // full bucket to a later bucket that may not be (path-compressed: a run of full buckets is
  // crossed in about one step). Buckets older than the last second are dropped.
  const buckets = new Map<number, Array<number>>()
  const full = new Map<number, number>()
  let oldest = Number.POSITIVE_INFINITY
  // Per chat: when its next message may go. Per group: its last `perGroup` slots, ascending.
  const chatNext = new Map<string, number>()
  const groups = new Map<string, Array<number>>()
  let sweepAt = 1024
  let lastSweep = 0
  let waiting = 0

  const bucketOf = (t: number) => Math.floor(t / 1000)

  const nonFull = (b: number): number => {
    let end = b
    while (full.has(end)) end = full.get(end)!
    // compress the path walked, so the next search jumps straight to `end`
    while (b !== end) {
      const next = full.get(b)!
      full.set(b, end)
      b = next
    }
    return end
  }

  const forget = (now: number) => {
    const keep = bucketOf(now) - 1
    if (oldest >= keep) return
    if (keep - oldest > buckets.size + full.size) {
      for (const b of buckets.keys()) if (b < keep) buckets.delete(b)
      for (const b of full.keys()) if (b < keep) full.delete(b)
    } else {
      for (let b = oldest; b < keep; b++) {
        buckets.delete(b)
        full.delete(b)
      }
    }
    oldest = keep
  }

  /**
   * `undefined` when a slot at `t` keeps every 1000 ms window at most `perSecond`, else a later
   * time to try. The windows holding `t` start in `(t - 1000, t]`, and the fullest of them starts
   * at `t` itself or at one of the slots in that range; all lie in `(t - 1000, t + 1000)`, which
   * spans at most three buckets of at most `perSecond` slots each, so this is O(perSecond).
   */
  const blockedUntil = (t: number): number | undefined => {
    const near: Array<number> = []
    for (let b = bucketOf(t - 999); b <= bucketOf(t + 999); b++) {
      for (const x of buckets.get(b) ?? []) if (x > t - 1000 && x < t + 1000) near.push(x)
    }
    // windows starting at a slot before `t`: `j` runs ahead to the first slot past each window
    let j = 0
    let i = 0
    for (; i < near.length && near[i]! <= t; i++) {
      while (j < near.length && near[j]! < near[i]! + 1000) j++
      if (j - i >= perSecond) return near[i]! + 1000
    }
    // the window starting at `t`: it empties only as `t` passes slots, so skip past enough of them
    const ahead = near.length - i
    if (ahead >= perSecond) return near[i + ahead - perSecond]! + 1
    return undefined
  }

  /** The earliest slot at or after `from` that the overall limit allows. */
  const globalSlot = (from: number): number => {
    let t = from
    while (true) {
      const b = nonFull(bucketOf(t))
      if (b !== bucketOf(t)) t = b * 1000
      const later = blockedUntil(t)
      if (later === undefined) return t
      t = later
    }
  }

  const take = (t: number) => {
    const b = bucketOf(t)
    let slots = buckets.get(b)
    if (slots === undefined) {
      slots = []
      buckets.set(b, slots)
      if (b < oldest) oldest = b
    }
    let i = slots.length
    while (i > 0 && slots[i - 1]! > t) i--
    slots.splice(i, 0, t)
    if (slots.length >= perSecond) full.set(b, b + 1)
  }

  const reserve = (chat: string, now: number): number => {
    forget(now)
    let t = Math.max(now, chatNext.get(chat) ?? 0)
    const isGroup = chat.startsWith("-") || chat.startsWith("@")
    const window = isGroup ? groups.get(chat) ?? [] : undefined
    if (window !== undefined && window.length >= perGroup) t = Math.max(t, window[window.length - perGroup]! + 60_000)
    t = globalSlot(t)
    take(t)
    chatNext.set(chat, t + chatGap)
    if (window !== undefined) {
      window.push(t)
      if (window.length > perGroup) window.shift()
      groups.set(chat, window)
    }
    return t
  }

  // Chats idle for longer than a minute need no state. A sweep reads every chat, so it runs only
  // once the map doubled since the last one (or a minute passed): O(1) per send, amortized.
  const sweep = (now: number) => {
    if (chatNext.size < sweepAt && now - lastSweep < 60_000) return
    lastSweep = now
    for (const [chat, next] of chatNext) if (next + 60_000 < now) chatNext.delete(chat)
    for (const [chat, w] of groups) if ((w[w.length - 1] ?? 0) + 60_000 < now) groups.delete(chat)
    sweepAt = Math.max(1024, chatNext.size * 2)
  }

  const acquire = (chatId: number | string) =>
    Effect.clockWith((clock) =>
      Effect.suspend(() => {
        const now = clock.currentTimeMillisUnsafe()
        if (waiting >= maxQueued) return Effect.fail(new FloodQueueFull({ waiting }))
        sweep(now)
        const at = reserve(String(chatId), now)
        if (at <= now) return Effect.void
        waiting++
        return Effect.sleep(Duration.millis(at - now)).pipe(Effect.ensuring(Effect.sync(() => {
          waiting--
        })))
      })
    )

  return { acquire, waiting: () => waiting }
}
