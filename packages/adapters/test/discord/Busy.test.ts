import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import { Bot, BotManager, Metrics, Router } from "@fiberbot/core"
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
      // each shed dispatch was offered once: the intake refused exactly as many as were shed
      yield* refresh
      assert.strictEqual(status?.intake.rejected, discord.shed())
      yield* Deferred.succeed(gate, undefined)
      const report = yield* stopBot("slow")
      // the stop report carries the count too (other dispatches may have arrived while busy)
      assert.isAtLeast(discord.shed(), 3)
      assert.strictEqual((report.adapters?.discord as { readonly shed: number } | undefined)?.shed, discord.shed())
    })))

  it.effect("a burst over a bot with little room: dispatches go straight in or through the reader, and each channel keeps its order", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const discord = adapterFor(emu)
      const seen = new Map<string, Array<number>>()
      let handled = 0
      yield* startBot(Bot.make({
        name: "burst",
        adapters: [discord.adapter],
        // every third run waits a turn, so the bot fills up and the shard falls back to its reader
        router: Router.empty.on("message", (ctx) =>
          Effect.andThen(Number(ctx.text) % 3 === 0 ? Effect.yieldNow : Effect.void, Effect.sync(() => {
            const channel = ctx.update.key
            seen.set(channel, [...(seen.get(channel) ?? []), Number(ctx.text)])
            handled++
          }))),
        options: { concurrency: 2, intake: { capacity: 2, policy: "backpressure" }, startTimeout: "10 minutes" }
      }))
      const total = 2000
      for (let i = 0; i < total; i++) emu.messageCreate({ channelId: String(i % 7), content: String(i) })
      yield* pump(() => handled === total, { what: "all handled", rounds: 2000 })
      for (const [channel, order] of seen) {
        const sent = Array.from({ length: total }, (_, i) => i).filter((i) => String(i % 7) === channel)
        assert.deepStrictEqual(order, sent, `channel ${channel} out of order`)
      }
      assert.strictEqual(discord.shed(), 0)
      // every payload is counted, whichever way it went (the counter is per shard for the process)
      const metrics = yield* Metrics.makeCollector(yield* BotManager).render
      const payloads = Number(metrics.split("\n").find((l) => l.startsWith(`fiberbot_discord_gateway_payloads_total{shard="0"} `))?.split(" ")[1])
      assert.isAtLeast(payloads, total)
      yield* stopBot("burst")
    })))
})
