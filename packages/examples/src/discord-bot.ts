/**
 * The Discord bot of the playground: ping/echo on messages plus `/ping` and `/echo` slash commands.
 *
 * `makeDiscordBot` builds the adapter and the bot. `runWithEmulator` starts it against the testkit's
 * Discord emulator together with a `discord-users` bot whose worker plays users (messages and slash
 * commands) and logs what the bot answered: no token, no network. `runFromEnv` uses real Discord
 * when `DISCORD_TOKEN` is set (`DISCORD_GATEWAY_URL`, `DISCORD_REST_URL`, `DISCORD_PUBLIC_KEY` +
 * `DISCORD_INTERACTIONS_PORT` optional), and the emulator otherwise.
 */
import { Duration, Effect, Redacted, Scope, Schedule } from "effect"
import { Bot, BotManager, Router, Supervisor } from "@fiberbot/core"
import { Discord } from "@fiberbot/adapters/discord"
import { DiscordEmulator } from "@fiberbot/testkit/discord"

/** GUILDS | GUILD_MESSAGES | MESSAGE_CONTENT (privileged: enable it in the developer portal). */
export const INTENTS = (1 << 0) | (1 << 9) | (1 << 15)

export interface DiscordBotOptions {
  readonly token: Redacted.Redacted<string>
  readonly name?: string | undefined
  readonly gatewayUrl?: string | undefined
  readonly restUrl?: string | undefined
  readonly compress?: boolean | undefined
  readonly interactions?: { readonly publicKey: string; readonly port?: number | undefined } | undefined
}

export interface DiscordBot {
  readonly bot: Bot.Bot
  readonly discord: Discord.DiscordAdapter
}

const fromBot = (ctx: { readonly update: { readonly payload: unknown } }) =>
  (ctx.update.payload as Discord.DiscordPayload).d?.author?.bot === true

export const makeDiscordBot = (options: DiscordBotOptions): DiscordBot => {
  const discord = Discord.make({
    token: options.token,
    intents: INTENTS,
    gatewayUrl: options.gatewayUrl,
    restUrl: options.restUrl,
    compress: options.compress ?? true,
    interactions: options.interactions
  })
  const router = Router.empty
    // our own messages come back as MESSAGE_CREATE too: never answer a bot
    .filter((u) => u.kind === "message" && fromBot({ update: u }), () => Effect.void, { name: "ignore-bots" })
    .filter((u) => u.kind === "message" && u.text === "!ping", (ctx) => ctx.reply("pong"), { name: "ping" })
    .filter((u) => u.kind === "interaction" && u.text?.startsWith("/ping") === true, (ctx) => ctx.reply("pong"), { name: "slash/ping" })
    .filter((u) => u.kind === "interaction" && u.text?.startsWith("/echo") === true, (ctx) =>
      Effect.gen(function*() {
        // answer "thinking..." at once, then edit it: the way to outlive the 3 s interaction window
        yield* discord.defer(ctx)
        yield* Effect.sleep("300 millis")
        yield* ctx.reply(`you said: ${ctx.text?.slice("/echo".length).trim() || "nothing"}`)
      }), { name: "slash/echo" })
    .on("message", (ctx) => ctx.reply(`echo: ${ctx.text ?? ""}`))
  const bot = Bot.make({
    name: options.name ?? "discord",
    adapters: [discord.adapter],
    router,
    options: { handlerTimeout: "10 seconds", startTimeout: "2 minutes" }
  })
  return { bot, discord }
}

const texts = ["hello", "!ping", "how are you?", "bye"]

/**
 * Starts an emulator, the Discord bot on it, and `discord-users`, whose worker sends a message or a
 * slash command every `every` and logs the answers. The emulator lives as long as `Scope`.
 */
export const runWithEmulator = (
  options: { readonly every?: Duration.Input; readonly name?: string } = {}
): Effect.Effect<{ readonly emulator: DiscordEmulator.DiscordEmulator; readonly discord: Discord.DiscordAdapter }, unknown, BotManager | Scope.Scope> =>
  Effect.gen(function*() {
    const manager = yield* BotManager
    const emu = yield* DiscordEmulator.make({ heartbeatInterval: 41_250 })
    const { bot, discord } = makeDiscordBot({ token: Redacted.make(emu.token), restUrl: emu.restUrl, name: options.name })
    yield* manager.start(bot)
    yield* Effect.logInfo(`discord bot connected to the emulator at ${emu.gatewayUrl}`)
    let n = 0
    let seenMessages = 0
    let seenInteractions = 0
    const users = Bot.make({
      name: `${bot.name}-users`,
      workers: [
        Supervisor.periodic("play", Effect.gen(function*() {
          const i = n++
          const channelId = String(100 + (i % 3))
          if (i % 4 === 3) {
            const name = i % 8 === 3 ? "ping" : "echo"
            emu.interactionCreate({ channelId, name, options: name === "echo" ? [{ name: "text", type: 3, value: `hi ${i}` }] : [] })
            yield* Effect.logInfo(`user in #${channelId} runs /${name}`)
          } else {
            const content = texts[i % texts.length]!
            emu.messageCreate({ channelId, content })
            yield* Effect.logInfo(`user in #${channelId} says ${JSON.stringify(content)}`)
          }
        }), options.every ?? "1 second"),
        Supervisor.child("watch", Effect.gen(function*() {
          const messages = [...emu.rest.messages.values()]
          for (const m of messages.slice(seenMessages)) yield* Effect.logInfo(`bot answered in #${m.channel_id}: ${JSON.stringify(m.content)}`)
          seenMessages = messages.length
          for (const r of emu.rest.interactionResponses.slice(seenInteractions)) {
            yield* Effect.logInfo(`bot interaction ${r.kind}: ${JSON.stringify(r.body)}`)
          }
          seenInteractions = emu.rest.interactionResponses.length
        }).pipe(Effect.repeat(Schedule.spaced("200 millis"))))
      ]
    })
    yield* manager.start(users)
    return { emulator: emu, discord }
  })

/** Real Discord when `DISCORD_TOKEN` is set, otherwise the emulator with simulated users. */
export const runFromEnv = (env: Record<string, string | undefined> = process.env): Effect.Effect<unknown, unknown, BotManager | Scope.Scope> =>
  Effect.gen(function*() {
    const token = env.DISCORD_TOKEN
    if (token === undefined || token.length === 0) return yield* runWithEmulator()
    const manager = yield* BotManager
    const { bot, discord } = makeDiscordBot({
      token: Redacted.make(token),
      gatewayUrl: env.DISCORD_GATEWAY_URL,
      restUrl: env.DISCORD_REST_URL,
      interactions: env.DISCORD_PUBLIC_KEY === undefined
        ? undefined
        : { publicKey: env.DISCORD_PUBLIC_KEY, port: Number(env.DISCORD_INTERACTIONS_PORT ?? 8787) }
    })
    yield* manager.start(bot)
    yield* Effect.logInfo(`discord bot online: ${discord.shards().length} shard(s)`)
    return { discord }
  })
