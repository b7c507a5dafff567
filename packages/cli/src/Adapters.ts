/**
 * Adapters: what each adapter adds to a scaffolded project. `start` uses the real service when its
 * token is set and the testkit emulator otherwise, so a new project runs offline at once.
 */
import type { AdapterKind, AdapterTemplate } from "./Templates.ts"

const telegram: AdapterTemplate = {
  kind: "telegram",
  mainImports: [
    `import { Telegram } from "@fiberbot/adapters/telegram"`,
    `import { Emulator as TelegramEmulator } from "@fiberbot/testkit/telegram"`
  ],
  mainSetup: `    // Telegram: the Bot API with TELEGRAM_BOT_TOKEN, otherwise the offline emulator with one user.
    const telegramToken = process.env.TELEGRAM_BOT_TOKEN
    const telegram = telegramToken !== undefined && telegramToken !== ""
      ? Telegram.make({ token: Redacted.make(telegramToken), apiRoot: process.env.TELEGRAM_API_ROOT })
      : yield* Effect.gen(function*() {
        const emulator = yield* TelegramEmulator.make()
        yield* Effect.logInfo(\`telegram: no TELEGRAM_BOT_TOKEN, running against the emulator at \${emulator.apiRoot}\`)
        emulator.sendMessage({ chatId: 1, text: "/start" })
        return Telegram.make({ token: emulator.token, apiRoot: emulator.apiRoot })
      })
    const telegramAdapter = telegram.adapter
`,
  env: [
    ["TELEGRAM_BOT_TOKEN", "Telegram bot token from @BotFather (empty: the offline emulator)"],
    ["TELEGRAM_API_ROOT", "Bot API root, e.g. a local Bot API server (default https://api.telegram.org)"]
  ],
  readme: `## Telegram

Set \`TELEGRAM_BOT_TOKEN\` (from @BotFather) to talk to the real Bot API; without it \`start\` runs against
the testkit's Telegram emulator. Long polling by default; see \`@fiberbot/adapters/telegram\` for webhooks.
`,
  test: `import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { BotManager } from "@fiberbot/core"
import { LeakCheck } from "@fiberbot/core/testing"
import { Telegram } from "@fiberbot/adapters/telegram"
import { Emulator } from "@fiberbot/testkit/telegram"
import { makeBot } from "../src/bot.ts"

describe("bot on Telegram", () => {
  it.live("answers /start and echoes over the Bot API emulator", () =>
    LeakCheck.verify(Effect.scoped(Effect.gen(function*() {
      const manager = yield* BotManager
      const emulator = yield* Emulator.make()
      const telegram = Telegram.make({ token: emulator.token, apiRoot: emulator.apiRoot, polling: { timeout: 1 } })
      yield* manager.start(makeBot([telegram.adapter]))
      emulator.sendMessage({ chatId: 7, text: "/start" })
      emulator.sendMessage({ chatId: 7, text: "hi" })
      const sent = yield* emulator.waitForSent(2, { chatId: 7, timeout: "5 seconds" })
      assert.include(sent[0]!.text, "Hello")
      assert.strictEqual(sent[1]!.text, "echo: hi")
      const report = yield* manager.stop("bot")
      assert.isTrue(report.withinDeadline)
    }))).pipe(Effect.provide(BotManager.layer)))
})
`
}

const discord: AdapterTemplate = {
  kind: "discord",
  mainImports: [
    `import { Discord } from "@fiberbot/adapters/discord"`,
    `import { DiscordEmulator } from "@fiberbot/testkit/discord"`
  ],
  mainSetup: `    // Discord: the gateway with DISCORD_TOKEN, otherwise the offline emulator.
    // Intents: GUILDS | GUILD_MESSAGES | MESSAGE_CONTENT (enable the last one in the developer portal).
    const intents = (1 << 0) | (1 << 9) | (1 << 15)
    const discordToken = process.env.DISCORD_TOKEN
    const discord = discordToken !== undefined && discordToken !== ""
      ? Discord.make({ token: Redacted.make(discordToken), intents })
      : yield* Effect.gen(function*() {
        const emulator = yield* DiscordEmulator.make()
        yield* Effect.logInfo(\`discord: no DISCORD_TOKEN, running against the emulator at \${emulator.gatewayUrl}\`)
        return Discord.make({ token: Redacted.make(emulator.token), intents, restUrl: emulator.restUrl })
      })
    const discordAdapter = discord.adapter
`,
  env: [["DISCORD_TOKEN", "Discord bot token from the developer portal (empty: the offline emulator)"]],
  readme: `## Discord

Set \`DISCORD_TOKEN\` to connect to the Discord gateway; without it \`start\` runs against the testkit's
Discord emulator. Messages arrive as \`message\` updates keyed by channel; slash commands as \`interaction\`.
`,
  test: `import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { BotManager } from "@fiberbot/core"
import { LeakCheck } from "@fiberbot/core/testing"
import { Discord } from "@fiberbot/adapters/discord"
import { DiscordEmulator } from "@fiberbot/testkit/discord"
import { makeBot } from "../src/bot.ts"

describe("bot on Discord", () => {
  it.live("echoes a message over the gateway and REST emulator", () =>
    LeakCheck.verify(Effect.scoped(Effect.gen(function*() {
      const manager = yield* BotManager
      const emulator = yield* DiscordEmulator.make()
      const discord = Discord.make({ token: Redacted.make(emulator.token), intents: 1 << 9, restUrl: emulator.restUrl })
      yield* manager.start(makeBot([discord.adapter]))
      emulator.messageCreate({ channelId: "100", content: "hi" })
      for (let i = 0; i < 100 && emulator.rest.messages.size === 0; i++) yield* Effect.sleep("50 millis")
      assert.deepStrictEqual([...emulator.rest.messages.values()].map((m) => m.content), ["echo: hi"])
      const report = yield* manager.stop("bot")
      assert.isTrue(report.withinDeadline)
    }))).pipe(Effect.provide(BotManager.layer)))
})
`
}

const websocket: AdapterTemplate = {
  kind: "websocket",
  mainImports: [`import { Server as WebSocketServer } from "@fiberbot/adapters/websocket"`],
  mainSetup: `    // WebSocket: a server on 127.0.0.1, port WS_PORT (default 8080; 0 lets the OS pick one).
    const websocket = WebSocketServer.make({ port: Number(process.env.WS_PORT ?? 8080) })
    const websocketAdapter = websocket.adapter
`,
  env: [["WS_PORT", "Port of the WebSocket server on 127.0.0.1 (default 8080)"]],
  readme: `## WebSocket

\`start\` listens on ws://127.0.0.1:8080 (\`WS_PORT\` to change it); every text message is a
\`message\` update keyed by its connection, and \`ctx.reply\` answers on that connection. Try it with
any WebSocket client, e.g. \`npx wscat -c ws://127.0.0.1:8080\`.
`,
  test: `import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { BotManager } from "@fiberbot/core"
import { LeakCheck } from "@fiberbot/core/testing"
import { Server } from "@fiberbot/adapters/websocket"
import { makeBot } from "../src/bot.ts"

/** Connects, sends \`text\`, resolves with the first answer. */
const ask = (url: string, text: string) =>
  Effect.callback<string, Error>((resume) => {
    const socket = new WebSocket(url)
    socket.onopen = () => socket.send(text)
    socket.onmessage = (event) => {
      socket.close()
      resume(Effect.succeed(String(event.data)))
    }
    socket.onerror = () => resume(Effect.fail(new Error(\`cannot talk to \${url}\`)))
    return Effect.sync(() => socket.close())
  })

describe("bot on WebSocket", () => {
  it.live("echoes a message on its connection", () =>
    LeakCheck.verify(Effect.gen(function*() {
      const manager = yield* BotManager
      const websocket = Server.make({ port: 0 })
      yield* manager.start(makeBot([websocket.adapter]))
      const reply = yield* ask(websocket.url()!, "hi").pipe(Effect.timeout("5 seconds"))
      assert.strictEqual(reply, "echo: hi")
      const report = yield* manager.stop("bot")
      assert.isTrue(report.withinDeadline)
    })).pipe(Effect.provide(BotManager.layer)))
})
`
}

export const templates: Partial<Record<AdapterKind, AdapterTemplate>> = { websocket, telegram, discord }
