import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import { Bot, BotManager, Router } from "@fiberbot/core"
import { DiscordEmulator } from "@fiberbot/testkit/discord"
import { adapterFor, pump, startBot, stopBot, withManager } from "./helpers.ts"

describe("Discord gateway when the bot is busy", () => {
  it.effect("keeps the shard up and sheds dispatches it cannot hand over, counted", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const discord = adapterFor(emu)
      const gate = yield* Deferred.make<void>()
      yield* startBot(Bot.make({
        name: "slow",
        adapters: [discord.adapter],
        router: Router.empty.on("message", () => Deferred.await(gate)),
        options: { concurrency: 1, intake: { capacity: 1, policy: "reject-busy" }, startTimeout: "10 minutes" }
      }))
      const manager = yield* BotManager
      let status = (yield* manager.status())[0]
      const refresh = Effect.map(manager.status(), (all) => {
        status = all[0]
      })
      // one runs, one waits in the intake, the other three are shed
      emu.messageCreate({ channelId: "7", content: "m0" })
      yield* pump(() => (Effect.runSync(refresh), status?.inFlight === 1 && status.intake.depth === 0), { what: "m0 running" })
      emu.messageCreate({ channelId: "7", content: "m1" })
      yield* pump(() => (Effect.runSync(refresh), status?.intake.depth === 1), { what: "m1 waiting" })
      for (let i = 2; i < 5; i++) emu.messageCreate({ channelId: "7", content: `m${i}` })
      yield* pump(() => discord.shed() >= 3, { what: "3 dispatches shed" })
      assert.strictEqual(discord.shards()[0]!.state, "ready")
      yield* Deferred.succeed(gate, undefined)
      const report = yield* stopBot("slow")
      // the stop report carries the count too (other dispatches may have arrived while busy)
      assert.isAtLeast(discord.shed(), 3)
      assert.strictEqual((report.adapters?.discord as { readonly shed: number } | undefined)?.shed, discord.shed())
    })))
})
