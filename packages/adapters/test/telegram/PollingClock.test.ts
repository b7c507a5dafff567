import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Exit } from "effect"
import { Bot, BotManager, Router } from "@fiberbot/core"
import { Telegram } from "@fiberbot/adapters/telegram"
import { Emulator } from "@fiberbot/testkit/telegram"
import { pump, pumped, withManagerPumped } from "./helpers.ts"

// Under TestClock: waits that the API asks for are measured in test time, so an absurd one shows
// up as a bounded number of pump rounds that run out, not as a test that hangs.

const adapterFor = (emu: Emulator.Emulator, extra: Partial<Telegram.Options> = {}) =>
  Telegram.make({
    token: emu.token,
    apiRoot: emu.apiRoot,
    flood: false,
    polling: { timeout: 1, backoffBase: "20 millis", backoffMax: "100 millis", conflictTimeout: "3 seconds" },
    client: { retry: { baseDelay: "10 millis", maxDelay: "50 millis", maxRetryAfter: "5 seconds" }, longPollMargin: "300 millis" },
    ...extra
  })

const echoBot = (tg: Telegram.Telegram, name = "echo") =>
  Bot.make({ name, adapters: [tg.adapter], router: Router.empty.text(/.*/, (ctx) => ctx.reply(`echo: ${ctx.text}`)) })

const tooMany = (retryAfter: string) =>
  ({ _tag: "Raw", status: 429, body: `{"ok":false,"error_code":429,"description":"Too Many Requests","parameters":{"retry_after":${retryAfter}}}` }) as const

describe("Telegram polling: retry_after from the network is bounded", () => {
  for (const [label, retryAfter] of [["1e9", "1e9"], ["1e400 (Infinity)", "1e400"]] as const) {
    it.effect(`a 429 with retry_after ${label} in the poll loop waits maxRetryAfter, then polls again`, () =>
      withManagerPumped(Effect.gen(function*() {
        const emu = yield* Emulator.make()
        const tg = adapterFor(emu)
        const manager = yield* BotManager
        yield* pumped(manager.start(echoBot(tg)))
        emu.inject("getUpdates", tooMany(retryAfter))
        yield* pump(() => emu.calls("getUpdates").some((c) => c.outcome === "Raw"), { step: "200 millis", what: "the 429" })
        const t0 = yield* Clock.currentTimeMillis
        const before = emu.calls("getUpdates").length
        // 200 rounds of 200 ms: 40 s of test time, far past the 5 s cap
        yield* pump(() => emu.calls("getUpdates").length > before, { step: "200 millis", rounds: 200, what: "the poll after the 429" })
        const waited = (yield* Clock.currentTimeMillis) - t0
        assert.isAtLeast(waited, 4800, "the cap is waited out, not skipped")
        assert.isAtMost(waited, 6000)
        emu.sendMessage({ chatId: 1, text: "after the ban" })
        yield* pump(() => emu.sent().length === 1, { step: "200 millis", what: "the echo" })
        assert.strictEqual(emu.sent()[0]!.text, "echo: after the ban")
        yield* pumped(manager.stop("echo", { deadline: "2 seconds" }))
      })))
  }

  it.effect("a 429 with an enormous retry_after at start is waited only until conflictTimeout, then start fails", () =>
    withManagerPumped(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      emu.inject("getUpdates", { _tag: "TooManyRequests", retryAfter: 1e9 }, 1000)
      // maxRetryAfter (60 s) is above the start's deadline: the deadline must bound the wait itself
      const tg = adapterFor(emu, { client: { retry: { maxRetryAfter: "60 seconds" }, longPollMargin: "300 millis" } })
      const manager = yield* BotManager
      const t0 = yield* Clock.currentTimeMillis
      // 100 rounds of 500 ms: 50 s of test time
      const exit = yield* pumped(Effect.exit(manager.start(echoBot(tg, "throttled"))), "500 millis", 100)
      const elapsed = (yield* Clock.currentTimeMillis) - t0
      assert.isTrue(Exit.isFailure(exit))
      assert.match(String(Exit.isFailure(exit) ? exit.cause : ""), /getUpdates kept failing for \d+ ms.*429/)
      assert.isAtLeast(elapsed, 3000)
      assert.isAtMost(elapsed, 4500)
      assert.isAtMost(emu.calls("getUpdates").length, 4, "no spin: one try at the deadline, not one per round")
    })))
})
