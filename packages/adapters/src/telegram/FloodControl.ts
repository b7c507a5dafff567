/**
 * FloodControl: keeps outbound messages under Telegram's flood limits by queueing, not failing.
 *
 * Telegram asks for about 30 messages/s overall, 1/s into one chat and 20/min into one group;
 * past that it answers 429 and may ban for a while. Each send reserves the earliest slot that
 * respects all three limits and sleeps until then, so a burst into one chat is spread out while
 * other chats go on. The number of sends waiting is bounded: past `maxQueued`, `acquire` fails
 * with `FloodQueueFull` at once (the caller's error, not a silent pile-up).
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
  const perSecond = Math.max(1, options.perSecond ?? 30)
  const chatGap = ms(options.perChatInterval ?? "1 second")
  const perGroup = Math.max(1, options.perGroupPerMinute ?? 20)
  const maxQueued = options.maxQueued ?? 10_000
  // Slots already given out: overall (sorted, the last second and later), per chat (next free
  // time), per group (the last `perGroup`).
  const global: Array<number> = []
  const chatNext = new Map<string, number>()
  const groups = new Map<string, Array<number>>()
  let waiting = 0

  const countIn = (from: number, to: number) => {
    let n = 0
    for (const x of global) if (x > from && x < to) n++
    return n
  }

  const reserve = (chat: string, now: number): number => {
    while (global.length > 0 && global[0]! <= now - 1000) global.shift()
    let t = Math.max(now, chatNext.get(chat) ?? 0)
    const isGroup = chat.startsWith("-") || chat.startsWith("@")
    const window = isGroup ? groups.get(chat) ?? [] : undefined
    if (window !== undefined && window.length >= perGroup) t = Math.max(t, window[window.length - perGroup]! + 60_000)
    // Overall: no second-long window around the slot may hold `perSecond` sends already. Slots of
    // other chats may lie in the future (a chat waiting out its own limit), so look both ways.
    for (let guard = 0; guard < 1000; guard++) {
      if (countIn(t - 1000, t + 1) < perSecond && countIn(t - 1, t + 1000) < perSecond) break
      t = (global.find((x) => x > t - 1000) ?? t) + 1000
    }
    let i = global.length
    while (i > 0 && global[i - 1]! > t) i--
    global.splice(i, 0, t)
    chatNext.set(chat, t + chatGap)
    if (window !== undefined) {
      window.push(t)
      if (window.length > perGroup) window.splice(0, window.length - perGroup)
      groups.set(chat, window)
    }
    return t
  }

  // Chats idle for longer than a minute need no state; forget them so the maps stay bounded.
  const sweep = (now: number) => {
    if (chatNext.size < 1024) return
    for (const [chat, next] of chatNext) if (next + 60_000 < now) chatNext.delete(chat)
    for (const [chat, w] of groups) if ((w[w.length - 1] ?? 0) + 60_000 < now) groups.delete(chat)
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
