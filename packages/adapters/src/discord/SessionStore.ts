/**
 * SessionStore: where a shard keeps what it needs to RESUME (session id, last sequence, resume URL).
 *
 * The default keeps it in memory, which survives reconnects. To survive a process restart (a
 * rolling deploy that resumes instead of identifying again), use `fromKeyValueStore` with Effect's
 * `KeyValueStore` (files, Redis ...) and stop the adapter in "resumable" mode.
 */
import { Effect } from "effect"
import type * as KeyValueStore from "effect/persistence/KeyValueStore"

export interface ResumeState {
  readonly sessionId: string
  readonly seq: number
  readonly resumeUrl: string
}

export interface SessionStore {
  readonly get: (shard: number, count: number) => Effect.Effect<ResumeState | undefined>
  readonly set: (shard: number, count: number, state: ResumeState) => Effect.Effect<void>
  readonly clear: (shard: number, count: number) => Effect.Effect<void>
}

const key = (shard: number, count: number) => `fiberbot-discord-session-${shard}-${count}`

/** In-process store; pass one instance to two adapters to hand a session over. */
export const memory = (): SessionStore & { readonly entries: Map<string, ResumeState> } => {
  const entries = new Map<string, ResumeState>()
  return {
    entries,
    get: (shard, count) => Effect.sync(() => entries.get(key(shard, count))),
    set: (shard, count, state) => Effect.sync(() => void entries.set(key(shard, count), state)),
    clear: (shard, count) => Effect.sync(() => void entries.delete(key(shard, count)))
  }
}

const isState = (u: unknown): u is ResumeState =>
  typeof u === "object" && u !== null &&
  typeof (u as ResumeState).sessionId === "string" &&
  typeof (u as ResumeState).seq === "number" &&
  typeof (u as ResumeState).resumeUrl === "string"

/** A store on Effect's KeyValueStore. Unreadable entries count as "no session" (identify). */
export const fromKeyValueStore = (kv: KeyValueStore.KeyValueStore): SessionStore => ({
  get: (shard, count) =>
    kv.get(key(shard, count)).pipe(
      Effect.map((raw) => {
        if (raw === undefined) return undefined
        try {
          const parsed: unknown = JSON.parse(raw)
          return isState(parsed) ? parsed : undefined
        } catch {
          return undefined
        }
      }),
      Effect.catch((e) => Effect.as(Effect.logWarning("discord session store read failed", e), undefined))
    ),
  set: (shard, count, state) =>
    kv.set(key(shard, count), JSON.stringify(state)).pipe(
      Effect.catch((e) => Effect.logWarning("discord session store write failed", e))
    ),
  clear: (shard, count) =>
    kv.remove(key(shard, count)).pipe(
      Effect.catch((e) => Effect.logWarning("discord session store remove failed", e))
    )
})
