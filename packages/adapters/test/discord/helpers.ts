import { Clock, Duration, Effect, Fiber, Redacted, Scope } from "effect"
import { TestClock } from "effect/testing"
import { Bot, BotManager, Router, type StopReport } from "@fiberbot/core"
import { LeakCheck } from "@fiberbot/core/testing"
import { Discord, SessionStore } from "@fiberbot/adapters/discord"
import type { DiscordEmulator } from "@fiberbot/testkit/discord"

const liveClock = Clock.Clock.defaultValue()

/** Sleeps on the real clock (sockets need real time even under TestClock). */
export const realSleep = (ms: number) => Effect.sleep(Duration.millis(ms)).pipe(Effect.provideService(Clock.Clock, liveClock))

/**
 * Waits until `predicate` holds, letting real I/O happen between checks and moving the TestClock
 * by `step` each round (so heartbeats, backoffs and throttles progress). Dies after `rounds`.
 */
export const pump = (predicate: () => boolean, options: { readonly step?: Duration.Input; readonly rounds?: number; readonly what?: string } = {}) =>
  Effect.gen(function*() {
    const rounds = options.rounds ?? 400
    for (let i = 0; i < rounds; i++) {
      if (predicate()) return
      yield* realSleep(i < 20 ? 1 : 5)
      if (predicate()) return
      if (options.step !== undefined) yield* TestClock.adjust(options.step)
    }
    return yield* Effect.die(new Error(`condition not reached: ${options.what ?? "?"}`))
  })

/** Runs `effect` in a fiber while pumping (real time + TestClock steps) until it ends. */
export const pumped = <A, E, R>(effect: Effect.Effect<A, E, R>, step: Duration.Input = "1 second", rounds = 400) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(effect, { startImmediately: true })
    yield* pump(() => fiber.pollUnsafe() !== undefined, { step, rounds, what: "effect to finish" })
    return yield* Fiber.join(fiber)
  })

/**
 * Runs a test with a BotManager and the leak assertion. Bots still running when the test ends
 * (a failed assertion) are stopped with time pumped, so a failure reports instead of hanging.
 */
export const withManager = <A, E>(effect: Effect.Effect<A, E, BotManager | Scope.Scope>) =>
  LeakCheck.verify(Effect.scoped(Effect.gen(function*() {
    const manager = yield* BotManager
    return yield* effect.pipe(Effect.onExit(() => Effect.ignore(pumped(manager.stopAll({ deadline: "5 seconds", drain: "1 second" }), "100 millis"))))
  }))).pipe(Effect.provide(BotManager.layer))

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
