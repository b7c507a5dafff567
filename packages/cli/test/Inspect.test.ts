import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { Bot, BotManager, DebugServer, Router, Supervisor } from "@fiberbot/core"
import { LeakCheck, TestAdapter } from "@fiberbot/core/testing"
import { Inspect } from "fiberbot"

const startBot = Effect.gen(function*() {
  const manager = yield* BotManager
  const chat = yield* TestAdapter.make()
  yield* manager.start(Bot.make({
    name: "shop",
    adapters: [chat.adapter],
    router: Router.empty.on("message", () => Effect.never),
    workers: [Supervisor.child("sync", Effect.never)]
  }))
  yield* chat.message("c1", "hang")
  yield* chat.message("c2", "hang")
  return manager
})

describe("fiberbot inspect", () => {
  it.live("reads bots, tasks and fibers grouped by task from a running process's debug server", () =>
    LeakCheck.verify(Effect.scoped(Effect.gen(function*() {
      const manager = yield* startBot
      const server = yield* DebugServer.make({ snapshotEvery: false })
      const snap = yield* Inspect.snapshot(server.url)
      assert.deepStrictEqual(snap.bots.map((b) => [b.name, b.state, b.inFlight]), [["shop", "running", 2]])
      assert.includeMembers(snap.bots[0]!.tasks.map((t) => t.name), ["supervisor", "worker/sync"])
      const handlerGroup = snap.fibers.groups.find((g) => g.bot === "shop" && g.task === "handler/message")
      assert.isAtLeast(handlerGroup?.count ?? 0, 2)
      const screen = Inspect.render(snap)
      assert.match(screen, /^shop\s+running/m)
      assert.include(screen, "worker/sync")
      assert.match(screen, /live fibers: \d+/)
      yield* manager.stop("shop", { deadline: "1 second" })
    }))).pipe(Effect.provide(BotManager.layer)))

  it.live("says clearly when nothing answers at the URL", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Inspect.snapshot("http://127.0.0.1:1", { timeout: "2 seconds" }))
      assert.strictEqual(error._tag, "InspectError")
      assert.include(error.message, "is the bot running with its debug server")
    }))

  it.live("asks for a token when the server wants one, and says when it is wrong", () =>
    LeakCheck.verify(Effect.scoped(Effect.gen(function*() {
      // 127.0.0.2 is loopback on Linux but not to the server's allowlist: it then needs a token everywhere
      const server = yield* DebugServer.make({ host: "127.0.0.2", token: Redacted.make("s3cret"), snapshotEvery: false })
      const missing = yield* Effect.flip(Inspect.snapshot(server.url))
      assert.include(missing.message, "pass --token")
      const wrong = yield* Effect.flip(Inspect.snapshot(server.url, { token: Redacted.make("nope") }))
      assert.include(wrong.message, "refused the token")
      const ok = yield* Inspect.snapshot(server.url, { token: Redacted.make("s3cret") })
      assert.deepStrictEqual(ok.bots, [])
    }))).pipe(Effect.provide(BotManager.layer)))
})
