/**
 * The Telegram bot of the playground: echo, commands, an inline keyboard and its callbacks.
 *
 * `makeTelegramBot(tg)` builds the bot on a Telegram adapter instance. `runTelegramBot` starts it
 * in the current `BotManager`: against the real Bot API when `TELEGRAM_BOT_TOKEN` is set
 * (`TELEGRAM_API_ROOT` overrides the root, e.g. a local Bot API server), otherwise against the
 * testkit emulator with a simulated user who chats with it and prints what the bot answered.
 * Everything it starts is owned by the caller's scope and the manager.
 */
import { Duration, Effect, Redacted, Scope } from "effect"
import { Bot, BotManager, Router } from "@fiberbot/core"
import { Telegram } from "@fiberbot/adapters/telegram"
import { Emulator } from "@fiberbot/testkit/telegram"

export const makeTelegramBot = (tg: Telegram.Telegram, name = "telegram-echo") =>
  Bot.make({
    name,
    adapters: [tg.adapter],
    router: Router.empty
      .command("start", (ctx) => ctx.reply(`hi${ctx.command?.args ? ` (${ctx.command.args})` : ""}! send me text and I echo it; /menu shows buttons`))
      .command("help", (ctx) => ctx.reply("/start, /menu, or any text"))
      .command("menu", (ctx) =>
        Effect.gen(function*() {
          yield* tg.chatAction(ctx)
          yield* tg.send(ctx, "pick a colour", {
            reply_markup: { inline_keyboard: [[{ text: "red", callback_data: "colour:red" }, { text: "blue", callback_data: "colour:blue" }]] }
          })
        }))
      .callback(/^colour:(\w+)$/, (ctx) =>
        Effect.gen(function*() {
          yield* tg.answerCallback(ctx, `${ctx.match?.[1]} it is`)
          yield* tg.editText(ctx, `you picked ${ctx.match?.[1]}`)
        }))
      .on("message", (ctx) => ctx.reply(`echo: ${ctx.text ?? "(no text)"}`)),
    options: { handlerTimeout: "10 seconds", concurrency: 100 }
  })

export interface RunOptions {
  /** How often the simulated user starts a new conversation (default 5 s). */
  readonly every?: Duration.Input | undefined
  /** Conversations before the simulated user rests (default: forever). */
  readonly conversations?: number | undefined
  readonly log?: ((line: string) => void) | undefined
}

/** One conversation of the simulated user: a command, a text, the menu and a button press. */
export const converse = (emu: Emulator.Emulator, chatId: number, log: (line: string) => void) =>
  Effect.gen(function*() {
    const before = emu.sent(chatId).length
    const say = (text: string) => {
      log(`user ${chatId} → bot: ${text}`)
      emu.sendMessage({ chatId, text })
    }
    say("/start playground")
    say("hello there")
    say("/menu")
    const menu = yield* emu.waitForSent(before + 3, { chatId, timeout: "5 seconds" })
    log(`user ${chatId} ← bot: ${menu.slice(before).map((m) => m.text).join(" | ")}`)
    log(`user ${chatId} presses "blue"`)
    emu.sendCallback({ chatId, data: "colour:blue", messageId: menu[menu.length - 1]!.messageId })
    const edited = yield* emu.waitForSent(before + 4, { chatId, timeout: "5 seconds" })
    log(`user ${chatId} ← bot (edit): ${edited[edited.length - 1]!.text}`)
  })

/** Starts the bot: real API with `TELEGRAM_BOT_TOKEN`, else the emulator and a simulated user. */
export const runTelegramBot = (options: RunOptions = {}): Effect.Effect<Telegram.Telegram, unknown, BotManager | Scope.Scope> =>
  Effect.gen(function*() {
    const manager = yield* BotManager
    const log = options.log ?? ((line: string) => console.log(`[telegram] ${line}`))
    const token = process.env.TELEGRAM_BOT_TOKEN
    if (token !== undefined && token !== "") {
      const tg = Telegram.make({ token: Redacted.make(token), apiRoot: process.env.TELEGRAM_API_ROOT })
      yield* manager.start(makeTelegramBot(tg))
      log("connected to the Bot API; talk to your bot in Telegram")
      return tg
    }
    const emu = yield* Emulator.make()
    const tg = Telegram.make({ token: emu.token, apiRoot: emu.apiRoot, polling: { timeout: 10 } })
    yield* manager.start(makeTelegramBot(tg))
    log(`running against the emulator at ${emu.apiRoot} with a simulated user`)
    const every = Duration.fromInputUnsafe(options.every ?? "5 seconds")
    const user = Effect.gen(function*() {
      for (let n = 0; options.conversations === undefined || n < options.conversations; n++) {
        yield* converse(emu, 1000 + (n % 3), log).pipe(Effect.catch((e) => Effect.sync(() => log(`simulated user: ${e.message}`))))
        yield* Effect.sleep(every)
      }
    })
    yield* Effect.forkScoped(user)
    return tg
  })
