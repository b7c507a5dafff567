import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Redacted } from "effect"
import { Bot, BotManager, Router } from "@fiberbot/core"
import { Client, InputFile, Telegram } from "@fiberbot/adapters/telegram"
import { Emulator } from "@fiberbot/testkit/telegram"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { until, withManager } from "./helpers.ts"

describe("Telegram context helpers", () => {
  it.live("answerCallback, editText, chatAction, send with a keyboard, data replies as documents, unknown kinds routed", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      const tg = Telegram.make({ token: emu.token, apiRoot: emu.apiRoot, flood: false, polling: { timeout: 1 } })
      const seenKinds: Array<string> = []
      const router = Router.empty
        .command("menu", (ctx) =>
          Effect.gen(function*() {
            if (!tg.forMe(ctx)) return
            yield* tg.chatAction(ctx)
            yield* tg.send(ctx, "pick one", { reply_markup: { inline_keyboard: [[{ text: "A", callback_data: "pick:a" }]] } })
          }))
        .callback(/^pick:(.+)$/, (ctx) =>
          Effect.gen(function*() {
            yield* tg.answerCallback(ctx, `you picked ${ctx.match?.[1]}`)
            yield* tg.editText(ctx, `picked ${ctx.match?.[1]}`)
          }))
        .command("file", (ctx) => ctx.reply({ text: "here", data: new Uint8Array([1, 2, 3]), extra: { filename: "f.bin" } }))
        .on("future_update_kind", (ctx) => Effect.sync(() => seenKinds.push(`${ctx.update.kind}@${ctx.update.key}`)))
      const manager = yield* BotManager
      yield* manager.start(Bot.make({ name: "ctx", adapters: [tg.adapter], router }))
      emu.sendMessage({ chatId: -9, text: "/menu@someone_else_bot" })
      emu.sendCommand(42, "menu@emulated_bot")
      const [menu] = yield* emu.waitForSent(1)
      assert.strictEqual(menu!.text, "pick one")
      assert.strictEqual(menu!.chatId, 42, "the command for another bot was ignored")
      assert.deepStrictEqual((menu!.params.reply_markup as any).inline_keyboard[0][0].callback_data, "pick:a")
      assert.strictEqual(emu.calls("sendChatAction")[0]!.params.action, "typing")
      emu.sendCallback({ chatId: 42, data: "pick:a" })
      const after = yield* emu.waitForSent(2)
      assert.deepStrictEqual([after[1]!.method, after[1]!.text, after[1]!.messageId], ["editMessageText", "picked a", menu!.messageId])
      assert.strictEqual(emu.callbackAnswers()[0]!.text, "you picked a")
      emu.sendCommand(42, "file")
      const withFile = yield* emu.waitForSent(3)
      assert.strictEqual(withFile[2]!.method, "sendDocument")
      const document = emu.calls("sendDocument")[0]!.params.document as { file: string; size: number }
      assert.deepStrictEqual([document.file, document.size], ["f.bin", 3])
      emu.pushUpdate({ future_update_kind: { user: { id: 77 }, whatever: [1, 2] } })
      yield* until(() => seenKinds.length === 1, 2000, "unknown kind routed")
      assert.deepStrictEqual(seenKinds, ["future_update_kind@77"])
      assert.strictEqual(emu.sent(-9).length, 0, "/menu@someone_else_bot was not for this bot")
      yield* manager.stop("ctx", { deadline: "2 seconds" })
    })))

  it.live("flood control: never more than one message per second into one chat, other chats not held up", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      const tg = Telegram.make({ token: emu.token, apiRoot: emu.apiRoot, polling: { timeout: 1 } })
      const manager = yield* BotManager
      yield* manager.start(Bot.make({
        name: "flood",
        adapters: [tg.adapter],
        router: Router.empty
          .text("burst", (ctx) => Effect.all([ctx.reply("1"), ctx.reply("2"), ctx.reply("3")], { concurrency: "unbounded" }))
          .text("single", (ctx) => ctx.reply("quick"))
      }))
      emu.sendMessage({ chatId: 1, text: "burst" })
      yield* emu.waitForSent(1, { chatId: 1 })
      emu.sendMessage({ chatId: 2, text: "single" })
      const quick = yield* emu.waitForSent(1, { chatId: 2, timeout: "900 millis" })
      const burst = yield* emu.waitForSent(3, { chatId: 1, timeout: "4 seconds" })
      const gaps = burst.slice(1).map((m, i) => m.at - burst[i]!.at)
      assert.ok(gaps.every((g) => g >= 980), `gaps ${gaps.join(", ")} ms`)
      assert.isBelow(quick[0]!.at - burst[0]!.at, 900, "chat 2 did not wait behind chat 1")
      yield* manager.stop("flood", { deadline: "2 seconds" })
    })))
})

describe("Telegram client", () => {
  it.live("retries by class: 5xx a bounded number of times, 400 never, keeps the token out of every error; uploads bytes, paths and streams", () =>
    Effect.scoped(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      const client = yield* Client.make({
        token: Redacted.make(emu.token),
        apiRoot: emu.apiRoot,
        retry: { maxAttempts: 3, baseDelay: "5 millis", maxDelay: "20 millis" }
      })
      emu.inject("getMe", { _tag: "ServerError" }, 5)
      const exit = yield* Effect.exit(client.call("getMe"))
      assert.isTrue(Exit.isFailure(exit))
      assert.strictEqual(emu.calls("getMe").length, 3)
      const bad = yield* Effect.flip(client.call("sendMessage", { chat_id: 1, text: "" }))
      assert.strictEqual(bad._tag, "TelegramError")
      assert.strictEqual(bad._tag === "TelegramError" ? bad.error_code : 0, 400)
      assert.strictEqual(emu.calls("sendMessage").length, 1, "400 is not retried")
      const dead = yield* Client.make({ token: Redacted.make(emu.token), apiRoot: "http://127.0.0.1:1", retry: { maxAttempts: 1 } })
      const refused = yield* Effect.flip(dead.call("getMe"))
      assert.notInclude(JSON.stringify(refused) + refused.message + String(refused), emu.token)
      const photo = yield* client.call("sendPhoto", { chat_id: 5, photo: new InputFile(new Uint8Array(10), "p.png"), caption: "c" })
      assert.strictEqual(photo.caption, "c")
      const dir = mkdtempSync(join(tmpdir(), "tg-"))
      const path = join(dir, "report.txt")
      writeFileSync(path, "x".repeat(321))
      yield* client.call("sendDocument", { chat_id: 5, document: new InputFile(path) })
      async function* chunks() {
        yield new Uint8Array(100)
        yield new Uint8Array(23)
      }
      yield* client.call("sendDocument", { chat_id: 5, document: new InputFile(chunks(), "stream.bin") })
      rmSync(dir, { recursive: true })
      const docs = emu.calls("sendDocument").map((c) => c.params.document as { file: string; size: number })
      assert.deepStrictEqual(docs.map((d) => [d.file, d.size]), [["report.txt", 321], ["stream.bin", 123]])
    })))
})
