import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { BotManager } from "@fiberbot/core"
import { LeakCheck } from "@fiberbot/core/testing"
import { runWithEmulator } from "../src/discord-bot.ts"

describe("Discord example bot", () => {
  it.live("answers simulated users' messages and slash commands on the emulator", () =>
    LeakCheck.verify(Effect.scoped(Effect.gen(function*() {
      const manager = yield* BotManager
      const { emulator } = yield* runWithEmulator({ every: "50 millis" })
      // wait (bounded) until the users have sent a few messages and one slash command was answered
      for (let i = 0; i < 100 && (emulator.rest.messages.size < 3 || emulator.rest.interactionResponses.length < 1); i++) {
        yield* Effect.sleep("50 millis")
      }
      const contents = [...emulator.rest.messages.values()].map((m) => m.content)
      assert.include(contents, "echo: hello")
      assert.include(contents, "pong")
      assert.isAtLeast(emulator.rest.interactionResponses.length, 1)
      const reports = yield* manager.stopAll({ deadline: "2 seconds" })
      assert.isTrue(reports.every((r) => r.withinDeadline))
    }))).pipe(Effect.provide(BotManager.layer)))
})
