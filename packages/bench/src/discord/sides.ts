/**
 * The three clients the Discord benchmarks compare, each connected to the emulator, fed `events`
 * MESSAGE_CREATE dispatches by `feed`, and timed until its handler has seen them all (answers
 * dispatches per second; `onHandled` is called right then, before the client is stopped):
 * - `fiberbot`: a fiberbot bot (shard -> Update -> intake -> dispatcher -> handler fiber) with the
 *   shared no-op counting handler;
 * - `shardOnly`: fiberbot's gateway layer alone, one shard whose dispatch callbacks count, driven
 *   as the Discord adapter drives its shards (see there);
 * - `discordjs`: @discordjs/ws's WebSocketManager with a counting `dispatch` listener, its nearest
 *   equivalent.
 */
import { CompressionMethod, WebSocketManager, WebSocketShardEvents } from "@discordjs/ws"
import { Deferred, Effect, Fiber, Layer, Redacted } from "effect"
import { Bot, BotManager } from "@fiberbot/core"
import { Discord, DiscordShard, IdentifyThrottler, SessionStore } from "@fiberbot/adapters/discord"
import type { DiscordEmulator } from "@fiberbot/testkit/discord"
import { countingRouter } from "../counting.ts"

export const fiberbot = (emu: DiscordEmulator.DiscordEmulator, compress: boolean, events: number, feed: Effect.Effect<void>, onHandled: () => void = () => {}): Effect.Effect<number, unknown> =>
  Effect.gen(function*() {
    const manager = yield* BotManager
    const { done, router } = yield* countingRouter(events)
    const discord = Discord.make({
      token: Redacted.make(emu.token),
      intents: 513,
      restUrl: emu.restUrl,
      compress,
      store: SessionStore.memory(),
      ignore: ["RESUMED", "READY", "GUILD_CREATE"]
    })
    const bot = Bot.make({
      name: "bench",
      adapters: [discord.adapter],
      router,
      options: { concurrency: 500, intake: { capacity: 1000, policy: "backpressure" } }
    })
    yield* manager.start(bot)
    const started = performance.now()
    yield* feed
    yield* Deferred.await(done)
    onHandled()
    const seconds = (performance.now() - started) / 1000
    const report = yield* manager.stop("bench", { deadline: "5 seconds" })
    if (!report.withinDeadline) throw new Error(`bench bot did not stop: ${report.unfinished.join(", ")}`)
    return events / seconds
  }).pipe(Effect.provide(Layer.fresh(BotManager.layer)))

/**
 * The gateway layer alone: one fiberbot shard whose dispatch callbacks are the no-op handler. Like
 * the adapter, it takes the shard's fast path (`onDispatchNow`, in the socket's callback) and the
 * reader fiber (`onDispatch`) for what queued behind. Its fast path never refuses, so this is the
 * gateway's best case: the bot's case for a MESSAGE_CREATE it has room for. (With only the reader
 * fiber, a path the adapter's shards take where the fast path does not apply, it measured
 * 0.90–0.94× @discordjs/ws.)
 */
export const shardOnly = (emu: DiscordEmulator.DiscordEmulator, compress: boolean, events: number, feed: Effect.Effect<void>, onHandled: () => void = () => {}): Effect.Effect<number, unknown> =>
  Effect.scoped(Effect.gen(function*() {
    const done = yield* Deferred.make<void>()
    let handled = 0
    const see = (p: DiscordShard.GatewayPayload) => {
      if (p.t === "MESSAGE_CREATE" && ++handled === events) Deferred.doneUnsafe(done, Effect.void)
    }
    const throttler = yield* IdentifyThrottler.make({ maxConcurrency: 1, remaining: 1000 })
    const shard = yield* DiscordShard.make({
      id: 0,
      count: 1,
      token: Redacted.make(emu.token),
      intents: 513,
      gatewayUrl: emu.gatewayUrl,
      compress,
      openTimeoutMs: 15_000,
      helloTimeoutMs: 20_000,
      readyTimeoutMs: 30_000,
      closeTimeoutMs: 2_000,
      backoffBaseMs: 1_000,
      backoffMaxMs: 60_000,
      stableAfterMs: 60_000,
      maxResumeFailures: 2,
      inboxHighWater: 1024,
      store: SessionStore.memory(),
      throttler,
      onDispatch: (p) => Effect.sync(() => see(p)),
      // the fast path the Discord adapter gives its shards: a dispatch with nothing ahead of it is
      // handed over in the socket's callback, the reader fiber takes the rest
      onDispatchNow: (p) => {
        see(p)
        return true
      }
    })
    const fiber = yield* Effect.forkScoped(shard.run)
    yield* shard.ready
    const started = performance.now()
    yield* feed
    yield* Deferred.await(done)
    onHandled()
    const seconds = (performance.now() - started) / 1000
    yield* Fiber.interrupt(fiber)
    return events / seconds
  }))

export const discordjs = (emu: DiscordEmulator.DiscordEmulator, compress: boolean, events: number, feed: Effect.Effect<void>, onHandled: () => void = () => {}): Effect.Effect<number, unknown> =>
  Effect.gen(function*() {
    let handled = 0
    let resolveDone!: () => void
    const done = new Promise<void>((resolve) => {
      resolveDone = resolve
    })
    // WebSocketManager only reads /gateway/bot through its REST client; hand it the emulator's answer
    const rest = {
      get: async () => ({
        url: emu.gatewayUrl,
        shards: 1,
        session_start_limit: { total: 1000, remaining: 1000, reset_after: 0, max_concurrency: 1 }
      })
    }
    const manager = new WebSocketManager({
      token: emu.token,
      intents: 513 as never,
      rest: rest as never,
      compression: compress ? CompressionMethod.ZlibNative : null
    })
    let ready!: () => void
    const isReady = new Promise<void>((resolve) => {
      ready = resolve
    })
    manager.on(WebSocketShardEvents.Ready, () => ready())
    manager.on(WebSocketShardEvents.Dispatch, (payload) => {
      if (payload.t === "MESSAGE_CREATE" && ++handled === events) resolveDone()
    })
    yield* Effect.promise(() => manager.connect())
    yield* Effect.promise(() => isReady)
    const started = performance.now()
    yield* feed
    yield* Effect.promise(() => done)
    onHandled()
    const seconds = (performance.now() - started) / 1000
    yield* Effect.promise(async () => manager.destroy())
    return events / seconds
  })
