import { type Duration, Effect, Redacted } from "effect"
import { Bot, BotManager, Router, type StopReport } from "@fiberbot/core"
import * as Pumping from "../pumping.ts"
import { Discord, SessionStore } from "@fiberbot/adapters/discord"
import type { DiscordEmulator } from "@fiberbot/testkit/discord"

export { pump, realSleep } from "../pumping.ts"

/** Runs `effect` in a fiber while pumping (real time + TestClock steps, 1 s by default) until it ends. */
export const pumped = <A, E, R>(effect: Effect.Effect<A, E, R>, step: Duration.Input = "1 second", rounds = 400) =>
  Pumping.pumped(effect, step, rounds)

/** A test with a BotManager and the leak assertion (see `withManagerPumped`). */
export const withManager = Pumping.withManagerPumped

export const adapterFor = (emu: DiscordEmulator.DiscordEmulator, overrides: Partial<Discord.Config> = {}) =>
  Discord.make({
    token: Redacted.make(emu.token),
    intents: 513,
    restUrl: emu.restUrl,
    compress: false,
    store: SessionStore.memory(),
    ...overrides
  })

export const echoBot = (discord: Discord.DiscordAdapter, name = "echo", router: Router.Router = Router.empty) =>
  Bot.make({
    name,
    adapters: [discord.adapter],
    router: router.on("message", (ctx) => ctx.reply(`echo: ${ctx.text ?? ""}`)),
    options: { handlerTimeout: "10 seconds", startTimeout: "10 minutes" }
  })

/** Starts `bot` (pumping time so identify throttles pass) and returns once it is ready. */
export const startBot = (bot: Bot.Bot, step: Duration.Input = "1 second"): Effect.Effect<void, unknown, BotManager> =>
  Effect.gen(function*() {
    const manager = yield* BotManager
    yield* pumped(manager.start(bot), step)
  })

export const stopBot = (name: string): Effect.Effect<StopReport, unknown, BotManager> =>
  Effect.gen(function*() {
    const manager = yield* BotManager
    return yield* pumped(manager.stop(name, { deadline: "5 seconds", drain: "1 second" }), "100 millis")
  })

/** Sequence numbers of the dispatches the emulator sent (per connection, in order). */
export const dispatchedSeqs = (emu: DiscordEmulator.DiscordEmulator, t?: string) =>
  emu.frames().filter((f) => f.direction === "out" && f.op === 0 && (t === undefined || f.t === t)).map((f) => f.s as number)
