import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { BotManager } from "@fiberbot/core"
import { LeakCheck, TestAdapter } from "@fiberbot/core/testing"
import { makeEcho } from "../src/echo.ts"

describe("echo bot", () => {
  it.effect("echoes, answers /start, and /slow releases its connection when the bot stops", () =>
    LeakCheck.verify(Effect.gen(function*() {
      const manager = yield* BotManager
      const chat = yield* TestAdapter.make()
      yield* manager.start(makeEcho(chat.adapter))
      yield* chat.message("u1", "hello")
      assert.strictEqual((yield* chat.nextReply).message.text, "echo: hello")
      yield* chat.message("u1", "/start")
      assert.include((yield* chat.nextReply).message.text, "send me anything")
      yield* chat.message("u2", "/slow")
      yield* TestClock.adjust("1 second")
      const stopping = yield* Effect.forkChild(manager.stop("echo", { deadline: "4 seconds" }))
      yield* TestClock.adjust("1 second")
      const report = yield* Fiber.join(stopping)
      assert.strictEqual(report.drained, 1) // /slow finished while draining
      assert.strictEqual((yield* chat.nextReply).message.text, "that took a while")
    })).pipe(Effect.provide(BotManager.layer)))
})
