import { assert, describe, it } from "@effect/vitest"
import { Data, Effect, Layer, Redacted } from "effect"
import { Bot, BotManager, Logging, Router } from "@fiberbot/core"
import { LeakCheck, TestAdapter } from "@fiberbot/core/testing"
import { settle } from "./helpers.ts"

class Declined extends Data.TaggedError("Declined")<{ readonly reason: string }> {}

const capture = () => {
  const lines: Array<Record<string, unknown>> = []
  const destination = { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) }
  return { lines, layer: Logging.layer({ level: "debug", destination }) }
}

describe("Logging", () => {
  it.effect("every line carries bot, task and fiber id; handler failures are logged with the task name", () => {
    const { lines, layer } = capture()
    return LeakCheck.verify(Effect.gen(function*() {
      const manager = yield* BotManager
      const test = yield* TestAdapter.make()
      yield* manager.start(Bot.make({
        name: "logbot",
        adapters: [test.adapter],
        router: Router.empty
          .command("fail", () => Effect.fail(new Declined({ reason: "card expired" })))
          .on("message", () => Effect.logInfo("handling"))
      }))
      yield* test.message("a", "hello")
      yield* test.message("a", "/fail")
      yield* settle()
      yield* manager.stop("logbot")
      const handling = lines.find((l) => l.msg === "handling")
      assert.strictEqual(handling?.bot, "logbot")
      assert.strictEqual(handling?.task, "handler/message")
      assert.isNumber(handling?.fiber)
      const failed = lines.find((l) => l.msg === "handler failed")
      assert.strictEqual(failed?.task, "handler/command/fail")
      assert.strictEqual(failed?.level, 50)
      assert.deepStrictEqual(failed?.error, { _tag: "Declined", reason: "card expired" })
      assert.isTrue(lines.some((l) => l.task === "stop/logbot" && String(l.msg).startsWith("bot stopped")))
    })).pipe(Effect.provide(BotManager.layer), Effect.provide(layer))
  })

  it.effect("secrets never reach the output: Redacted values and secret-named fields", () => {
    const { lines, layer } = capture()
    return Effect.gen(function*() {
      const token = Redacted.make("123456:SECRET-TOKEN")
      yield* Effect.logInfo("connecting").pipe(Effect.annotateLogs({ token: "123456:SECRET-TOKEN", auth: { authorization: "Bot abc.def" }, key: token }))
      yield* Effect.logInfo("with", { password: "hunter2" }, token)
      const out = JSON.stringify(lines)
      assert.notInclude(out, "SECRET-TOKEN")
      assert.notInclude(out, "abc.def")
      assert.strictEqual(lines.length, 2)
      assert.strictEqual(lines[0]?.token, "<redacted>")
    }).pipe(Effect.provide(layer))
  })

  it.effect("the level filters lines", () => {
    const lines: Array<string> = []
    const quiet = Logging.layer({ level: "warn", destination: { write: (l: string) => void lines.push(l) } })
    return Effect.gen(function*() {
      yield* Effect.logDebug("no")
      yield* Effect.logInfo("no")
      yield* Effect.logWarning("yes")
      assert.strictEqual(lines.length, 1)
    }).pipe(Effect.provide(quiet))
  })
})
