// fiberbot:edge the playground process entry point
/**
 * The playground: what `pnpm start` runs. Needs no token and no network.
 *
 * Two bots under one BotManager: `echo` (the example bot, on an in-memory adapter) and `users`,
 * whose supervised worker plays a few chat users sending messages to echo and logging the replies.
 * Ctrl-C stops both within the shutdown deadline and prints the stop reports. With `--seconds N`
 * it stops by itself after N seconds.
 */
import { Duration, Effect } from "effect"
import { Bot, BotManager, Main, Supervisor } from "@fiberbot/core"
import { TestAdapter } from "@fiberbot/core/testing"
import { makeEcho } from "./echo.ts"

const secondsArg = process.argv.indexOf("--seconds")
const seconds = secondsArg >= 0 ? Number(process.argv[secondsArg + 1]) : undefined

const texts = ["hello", "/start", "how are you?", "/slow", "bye"]

Main.runMain(
  Effect.gen(function*() {
    const manager = yield* BotManager
    const chat = yield* TestAdapter.make({ name: "memory" })
    yield* manager.start(makeEcho(chat.adapter))

    let n = 0
    const users = Bot.make({
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
    })
    yield* manager.start(users)
    if (seconds !== undefined && Number.isFinite(seconds)) {
      yield* Effect.logInfo(`stopping by itself in ${seconds}s`)
      yield* Effect.sleep(Duration.seconds(seconds))
    }
  }),
  {
    shutdownDeadline: "5 seconds",
    stopWhenDone: seconds !== undefined,
    onStopped: (reports) => console.log(JSON.stringify(reports.map((r) => ({ bot: r.bot, durationMs: r.durationMs, withinDeadline: r.withinDeadline, drained: r.drained, interrupted: r.interrupted.length }))))
  }
)
