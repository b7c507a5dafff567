// fiberbot:edge the playground process entry point
/**
 * The playground: what `pnpm start` runs. Needs no token and no network beyond 127.0.0.1.
 *
 * Under one BotManager:
 * - `ws-echo` on the WebSocket server adapter (127.0.0.1, an OS-assigned port), and `ws-users`, a
 *   bot on the WebSocket client adapter whose worker plays a user typing to it;
 * - `telegram-echo` against the testkit's Telegram Bot API emulator, with a simulated user
 *   (the real Bot API when TELEGRAM_BOT_TOKEN is set);
 * - `discord` against the testkit's Discord gateway + REST emulator, with simulated users
 *   (real Discord when DISCORD_TOKEN is set);
 * - a status line every second: connections, messages/s, handled updates, live fibers by task;
 * - the debug server (watchdog, /metrics, /debug/fibers, /debug/tasks) on 127.0.0.1.
 *
 * Ctrl-C (or SIGTERM) stops every bot within 5 s and prints the stop reports; it also stops by
 * itself after FIBERBOT_DEMO_SECONDS (or `--seconds N`).
 */
import { Duration, Effect } from "effect"
import { Bot, BotManager, DebugServer, FiberDump, Main, Router, Supervisor } from "@fiberbot/core"
import { Client } from "@fiberbot/adapters/websocket"
import { runFromEnv as runDiscord } from "./discord-bot.ts"
import { runTelegramBot } from "./telegram-bot.ts"
import { makeWebSocketEcho } from "./websocket-echo.ts"

const secondsArg = process.argv.indexOf("--seconds")
const seconds = Number(secondsArg >= 0 ? process.argv[secondsArg + 1] : process.env.FIBERBOT_DEMO_SECONDS ?? Number.NaN)
const stopAfter = Number.isFinite(seconds) && seconds > 0 ? seconds : undefined
const debugPort = Number(process.env.FIBERBOT_DEBUG_PORT ?? 0)

const texts = ["hello", "/rtt", "how are you?", "/all hi everyone", "bye"]

Main.runMain(
  Effect.gen(function*() {
    const manager = yield* BotManager
    const ws = makeWebSocketEcho({ port: Number(process.env.FIBERBOT_WS_PORT ?? 0) })
    yield* manager.start(ws.bot)
    const url = ws.server.url()
    if (url === undefined) return yield* Effect.die(new Error("ws-echo started without an address"))
    yield* Effect.logInfo(`ws-echo listening on ${url}: try it with any WebSocket client`)

    // The built-in client is a bot too: the WebSocket client adapter, its replies through a handler.
    const client = Client.make({ url, name: "ws-client" })
    let n = 0
    yield* manager.start(Bot.make({
      name: "ws-users",
      adapters: [client.adapter],
      router: Router.empty.on("message", (ctx) => Effect.logInfo(`ws-echo answered: ${JSON.stringify(ctx.text)}`)),
      workers: [
        Supervisor.periodic("type", Effect.gen(function*() {
          const text = texts[n++ % texts.length]!
          yield* Effect.logInfo(`user types ${JSON.stringify(text)}`)
          yield* client.send(text)
        }), "700 millis")
      ]
    }))

    yield* runTelegramBot({ every: "3 seconds" })
    yield* runDiscord()

    // The status line: a supervised worker like any other, so it stops with everything else.
    let lastIn = 0
    yield* manager.start(Bot.make({
      name: "status",
      workers: [Supervisor.periodic("line", Effect.gen(function*() {
        const stats = ws.server.stats()
        const rate = stats.messagesIn - lastIn
        lastIn = stats.messagesIn
        const bots = yield* manager.status()
        const handled = bots.map((b) => `${b.name} ${b.outcomes.success + b.outcomes.failure + b.outcomes.defect + b.outcomes.timeout}`).join(", ")
        const profile = FiberDump.profile(manager.registry)
        const top = profile.groups.slice(0, 4).map((g) => `${g.task} ${g.count}`).join(", ")
        yield* Effect.logInfo(`status: ws connections ${stats.open}, ${rate} msg/s; handled: ${handled}; live fibers ${profile.total} (${top})`)
      }), "1 second")]
    }))

    if (stopAfter !== undefined) {
      yield* Effect.logInfo(`stopping by itself in ${stopAfter}s`)
      yield* Effect.sleep(Duration.seconds(stopAfter))
    }
  }),
  {
    shutdownDeadline: "5 seconds",
    stopWhenDone: stopAfter !== undefined,
    services: DebugServer.layerGuarded({ port: debugPort }),
    onStopped: (reports) =>
      console.log(JSON.stringify(reports.map((r) => ({
        bot: r.bot,
        durationMs: r.durationMs,
        withinDeadline: r.withinDeadline,
        drained: r.drained,
        interrupted: r.interrupted.length,
        unfinished: r.unfinished
      }))))
  }
)
