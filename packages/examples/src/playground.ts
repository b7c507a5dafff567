// fiberbot:edge the playground process entry point
/**
 * The playground: what `pnpm start` runs. Needs no token and no network beyond 127.0.0.1.
 *
 * Under one BotManager:
 * - `echo` on an in-memory adapter, with `users`, whose workers play chat users talking to it;
 * - `telegram-echo` against the testkit's Telegram Bot API emulator, with a simulated user
 *   (the real Bot API when TELEGRAM_BOT_TOKEN is set);
 * - `discord` against the testkit's Discord gateway + REST emulator, with simulated users
 *   (real Discord when DISCORD_TOKEN is set);
 * - a status line every second: bots, handled updates, live fibers by task;
 * - the debug server (watchdog, /metrics, /debug/fibers, /debug/tasks) on 127.0.0.1.
 *
 * Ctrl-C (or SIGTERM) stops every bot within 5 s and prints the stop reports; it also stops by
 * itself after FIBERBOT_DEMO_SECONDS (or `--seconds N`).
 */
import { Duration, Effect } from "effect"
import { Bot, BotManager, DebugServer, FiberDump, Main, Supervisor } from "@fiberbot/core"
import { TestAdapter } from "@fiberbot/core/testing"
import { runFromEnv as runDiscord } from "./discord-bot.ts"
import { makeEcho } from "./echo.ts"
import { runTelegramBot } from "./telegram-bot.ts"

const secondsArg = process.argv.indexOf("--seconds")
const seconds = Number(secondsArg >= 0 ? process.argv[secondsArg + 1] : process.env.FIBERBOT_DEMO_SECONDS ?? Number.NaN)
const stopAfter = Number.isFinite(seconds) && seconds > 0 ? seconds : undefined
const debugPort = Number(process.env.FIBERBOT_DEBUG_PORT ?? 0)

const texts = ["hello", "/start", "how are you?", "/slow", "bye"]

Main.runMain(
  Effect.gen(function*() {
    const manager = yield* BotManager
    const chat = yield* TestAdapter.make({ name: "memory" })
    yield* manager.start(makeEcho(chat.adapter))

    let n = 0
    yield* manager.start(Bot.make({
      name: "users",
      workers: [
        Supervisor.periodic("send", Effect.gen(function*() {
          const user = `user-${n % 3}`
          const text = texts[n++ % texts.length]!
          yield* Effect.logInfo(`${user} says ${JSON.stringify(text)}`)
          yield* chat.message(user, text)
        }), "700 millis"),
        Supervisor.child("read", Effect.forever(Effect.gen(function*() {
          const reply = yield* chat.nextReply
          yield* Effect.logInfo(`echo answered ${reply.update.key}: ${JSON.stringify(reply.message.text)}`)
        })))
      ]
    }))

    yield* runTelegramBot({ every: "3 seconds" })
    yield* runDiscord()

    // The status line: a supervised worker like any other, so it stops with everything else.
    yield* manager.start(Bot.make({
      name: "status",
      workers: [Supervisor.periodic("line", Effect.gen(function*() {
        const bots = yield* manager.status()
        const handled = bots.map((b) => `${b.name} ${b.outcomes.success + b.outcomes.failure + b.outcomes.defect + b.outcomes.timeout}`).join(", ")
        const profile = FiberDump.profile(manager.registry)
        const top = profile.groups.slice(0, 4).map((g) => `${g.task} ${g.count}`).join(", ")
        yield* Effect.logInfo(`status: ${bots.length} bots; handled: ${handled}; live fibers ${profile.total} (${top})`)
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
