/**
 * SendLimiter: Discord's 120 client events per 60 s per connection, with room kept for heartbeats.
 *
 * A sliding window of send times. Heartbeats, IDENTIFY and RESUME are "priority": they always go
 * and are counted; everything else waits once the window holds `limit - reserved` sends, so a flood
 * of presence updates can never push a connection over the limit (close 4008).
 */
import { Clock, Effect } from "effect"

export interface SendLimiter {
  readonly take: (priority: boolean) => Effect.Effect<void>
  readonly inWindow: () => number
}

export const WINDOW_MS = 60_000
export const LIMIT = 120

/** Heartbeats per window at `heartbeatInterval`, plus identify/resume and op 1 replies. */
export const reservedFor = (heartbeatInterval: number): number =>
  Math.ceil(WINDOW_MS / Math.max(1000, heartbeatInterval)) * 2 + 4

export const make = (options: { readonly limit?: number; readonly reserved: number }): SendLimiter => {
  const limit = options.limit ?? LIMIT
  const userLimit = Math.max(1, limit - options.reserved)
  const times: Array<number> = []
  const prune = (now: number) => {
    while (times.length > 0 && now - times[0]! >= WINDOW_MS) times.shift()
  }
  return {
    inWindow: () => times.length,
    take: (priority) =>
      Effect.gen(function*() {
        while (true) {
          const now = yield* Clock.currentTimeMillis
          prune(now)
          if (priority || times.length < userLimit) {
            times.push(now)
            return
          }
          yield* Effect.sleep(times[times.length - userLimit]! + WINDOW_MS - now)
        }
      })
  }
}
