import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Bot, BotManager, Router } from "@fiberbot/core"
import { Server } from "@fiberbot/adapters/websocket"
import { LoadGen } from "@fiberbot/testkit/websocket"
import { sleep, withManager } from "./helpers.ts"

describe("leak churn (5-second version of the ws-leak benchmark)", () => {
  it.live("1,000 churned connections (clean, destroyed, never reading, not answering pings) leave no fiber and no socket", () =>
    withManager(Effect.scoped(Effect.gen(function*() {
      const manager = yield* BotManager
      const ws = Server.make({
        heartbeat: "1 second",
        closeTimeout: "1 second",
        outbound: { policy: "close", capacity: 64, grace: "1 second", highWaterMark: 256 * 1024 }
      })
      yield* manager.start(Bot.make({
        name: "churn",
        adapters: [ws.adapter],
        router: Router.empty.on("message", (ctx) => Effect.ignore(ctx.reply(ctx.text ?? "")))
      }))
      const fibers = () => manager.registry.snapshot({ bot: "churn" }).total
      const base = fibers()
      const load = yield* LoadGen.spawn({ url: ws.url()!, mode: "churn", connections: 1000, seconds: 5, rate: 4, lifeMs: [200, 2000] })
      const result = yield* load.result
      const started = performance.now()
      while ((ws.stats().open > 0 || ws.stats().sockets > 0 || fibers() > base) && performance.now() - started < 10_000) yield* sleep(50)
      const stats = ws.stats()
      assert.isAbove(stats.opened, 1000)
      assert.isAbove(stats.messagesOut, 1000)
      for (const ending of ["clean", "destroy", "never-read", "no-pong"]) assert.isAbove(Number(result[ending]), 0, ending)
      assert.strictEqual(stats.open, 0, "residual connections")
      assert.strictEqual(stats.sockets, 0, "residual sockets")
      assert.strictEqual(fibers() - base, 0, "residual fibers")
      const report = yield* manager.stop("churn", { deadline: "3 seconds" })
      assert.isTrue(report.withinDeadline)
    }))), 40_000)
})
