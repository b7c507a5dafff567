import { assert, describe, it } from "@effect/vitest"
import { Effect, type Scope } from "effect"
import { BotManager } from "@fiberbot/core"
import { runTelegramBot } from "../src/telegram-bot.ts"
import { LeakCheck } from "@fiberbot/core/testing"

const withManager = <A, E>(effect: Effect.Effect<A, E, BotManager | Scope.Scope>) =>
  LeakCheck.verify(Effect.scoped(effect)).pipe(Effect.provide(BotManager.layer))

const until = (predicate: () => boolean, ms: number, what: string): Effect.Effect<void> =>
  Effect.gen(function*() {
    const t0 = Date.now()
    while (!predicate()) {
      if (Date.now() - t0 > ms) return yield* Effect.die(new Error(`${what} not reached within ${ms} ms`))
      yield* Effect.sleep("10 millis")
    }
  })

describe("Telegram example bot", () => {
  it.live("runs against the emulator with a simulated user: commands, echo, menu, button, edit", () =>
    withManager(Effect.gen(function*() {
      const saved = process.env.TELEGRAM_BOT_TOKEN
      delete process.env.TELEGRAM_BOT_TOKEN
      const lines: Array<string> = []
      const tg = yield* runTelegramBot({ conversations: 1, every: "10 millis", log: (l) => lines.push(l) })
      if (saved !== undefined) process.env.TELEGRAM_BOT_TOKEN = saved
      yield* until(() => lines.some((l) => l.includes("(edit)")), 5000, "the conversation")
      assert.ok(lines.some((l) => l.includes("echo: hello there")), lines.join("\n"))
      assert.ok(lines.some((l) => l.includes("you picked blue")), lines.join("\n"))
      assert.strictEqual(tg.status().mode, "polling")
      const manager = yield* BotManager
      yield* manager.stop("telegram-echo", { deadline: "2 seconds" })
    })))
})
