import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as KeyValueStore from "effect/persistence/KeyValueStore"
import { SessionStore } from "@fiberbot/adapters/discord"

describe("SessionStore", () => {
  it.effect("fromKeyValueStore round-trips resume state per shard and forgets on clear", () =>
    Effect.gen(function*() {
      const kv = yield* KeyValueStore.KeyValueStore
      const store = SessionStore.fromKeyValueStore(kv)
      const state = { sessionId: "abc", seq: 42, resumeUrl: "wss://resume.example" }
      yield* store.set(3, 8, state)
      assert.deepStrictEqual(yield* store.get(3, 8), state)
      assert.strictEqual(yield* store.get(3, 16), undefined, "keyed by shard and count")
      yield* store.clear(3, 8)
      assert.strictEqual(yield* store.get(3, 8), undefined)
    }).pipe(Effect.provide(KeyValueStore.layerMemory)))

  it.effect("an unreadable entry means no session (identify), never a crash", () =>
    Effect.gen(function*() {
      const kv = yield* KeyValueStore.KeyValueStore
      const store = SessionStore.fromKeyValueStore(kv)
      yield* kv.set("fiberbot-discord-session-0-1", "{not json")
      assert.strictEqual(yield* store.get(0, 1), undefined)
      yield* kv.set("fiberbot-discord-session-0-1", JSON.stringify({ sessionId: 5 }))
      assert.strictEqual(yield* store.get(0, 1), undefined)
    }).pipe(Effect.provide(KeyValueStore.layerMemory)))
})
