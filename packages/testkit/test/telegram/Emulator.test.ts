import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import * as Http from "node:http"
import { Emulator } from "@fiberbot/testkit/telegram"

const api = (emu: Emulator.Emulator, method: string, params: unknown = {}, init: RequestInit = {}) =>
  Effect.promise(async (signal) => {
    const r = await fetch(`${emu.apiRoot}/bot${emu.token}/${method}`, {
      method: "POST",
      signal,
      headers: { "content-type": "application/json" },
      body: JSON.stringify(params),
      ...init
    })
    const text = await r.text()
    let json: any
    try {
      json = JSON.parse(text)
    } catch {
      json = undefined
    }
    return { status: r.status, text, json }
  })

describe("Telegram emulator", () => {
  it.live("getMe answers the bot user; a wrong token gets 401, an unknown method 404", () =>
    Effect.scoped(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      const me = yield* api(emu, "getMe")
      assert.strictEqual(me.json.ok, true)
      assert.strictEqual(me.json.result.is_bot, true)
      const bad = yield* Effect.promise(() => fetch(`${emu.apiRoot}/bot1:wrong/getMe`, { method: "POST" }).then((r) => r.json() as Promise<any>))
      assert.deepStrictEqual(bad, { ok: false, error_code: 401, description: "Unauthorized" })
      const missing = yield* api(emu, "noSuchMethod")
      assert.strictEqual(missing.status, 404)
      const badJson = yield* api(emu, "sendMessage", undefined, { body: "{nope" })
      assert.strictEqual(badJson.status, 400)
    })))

  it.live("getUpdates confirms by offset, respects limit, and a long poll wakes on a new update", () =>
    Effect.scoped(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      emu.sendMessage({ chatId: 1, text: "a" })
      emu.sendMessage({ chatId: 2, text: "b" })
      emu.sendMessage({ chatId: 1, text: "c" })
      const first = yield* api(emu, "getUpdates", { limit: 2 })
      assert.deepStrictEqual(first.json.result.map((u: any) => u.message.text), ["a", "b"])
      const again = yield* api(emu, "getUpdates", {})
      assert.strictEqual(again.json.result.length, 3, "nothing confirmed yet")
      const rest = yield* api(emu, "getUpdates", { offset: 3 })
      assert.deepStrictEqual(rest.json.result.map((u: any) => u.update_id), [3])
      assert.strictEqual(emu.confirmed(), 2)
      const poll = yield* Effect.forkChild(api(emu, "getUpdates", { offset: 4, timeout: 5 }))
      yield* Effect.sleep("50 millis")
      const t0 = Date.now()
      emu.sendCommand(5, "start", "x")
      const woke = yield* Fiber.join(poll)
      assert.isBelow(Date.now() - t0, 1000)
      assert.strictEqual(woke.json.result[0].message.text, "/start x")
      assert.strictEqual(woke.json.result[0].message.entities[0].type, "bot_command")
    })))

  it.live("a second concurrent getUpdates gets 409, and so does polling while a webhook is set", () =>
    Effect.scoped(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      const poll = yield* Effect.forkChild(api(emu, "getUpdates", { timeout: 2 }))
      yield* Effect.sleep("50 millis")
      const second = yield* api(emu, "getUpdates", { timeout: 0 })
      assert.strictEqual(second.status, 409)
      assert.match(second.json.description, /terminated by other getUpdates/)
      yield* Fiber.interrupt(poll)
      yield* Effect.sleep("50 millis")
      const after = yield* api(emu, "getUpdates", { timeout: 0 })
      assert.strictEqual(after.status, 200, "an aborted long poll no longer counts")
      yield* api(emu, "setWebhook", { url: "http://127.0.0.1:9/none" })
      const hooked = yield* api(emu, "getUpdates", {})
      assert.strictEqual(hooked.status, 409)
      assert.match(hooked.json.description, /webhook is active/)
    })))

  it.live("sendMessage, editMessageText, deleteMessage and answerCallbackQuery keep real semantics", () =>
    Effect.scoped(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      const sent = yield* api(emu, "sendMessage", { chat_id: 7, text: "hello" })
      const id = sent.json.result.message_id
      assert.strictEqual(sent.json.result.chat.id, 7)
      const empty = yield* api(emu, "sendMessage", { chat_id: 7, text: "" })
      assert.strictEqual(empty.json.description, "Bad Request: message text is empty")
      const same = yield* api(emu, "editMessageText", { chat_id: 7, message_id: id, text: "hello" })
      assert.match(same.json.description, /message is not modified/)
      const edited = yield* api(emu, "editMessageText", { chat_id: 7, message_id: id, text: "bye" })
      assert.strictEqual(edited.json.result.text, "bye")
      const cb = emu.sendCallback({ chatId: 7, data: "yes" })
      assert.strictEqual(cb.callback_query?.message?.message_id, id)
      const ok = yield* api(emu, "answerCallbackQuery", { callback_query_id: cb.callback_query!.id, text: "done" })
      assert.strictEqual(ok.json.result, true)
      const twice = yield* api(emu, "answerCallbackQuery", { callback_query_id: cb.callback_query!.id })
      assert.strictEqual(twice.status, 400)
      assert.strictEqual((yield* api(emu, "deleteMessage", { chat_id: 7, message_id: id })).json.result, true)
      assert.strictEqual((yield* api(emu, "deleteMessage", { chat_id: 7, message_id: id })).status, 400)
      assert.deepStrictEqual(emu.sent(7).map((m) => [m.method, m.text]), [["sendMessage", "hello"], ["editMessageText", "bye"]])
      assert.isAbove(emu.calls().length, 7)
    })))

  it.live("sendPhoto and sendDocument accept multipart uploads", () =>
    Effect.scoped(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      const form = new FormData()
      form.append("chat_id", "9")
      form.append("caption", "pic")
      form.append("photo", new Blob([new Uint8Array(1234)]), "a.png")
      const r = yield* Effect.promise(() => fetch(`${emu.apiRoot}/bot${emu.token}/sendPhoto`, { method: "POST", body: form }).then((x) => x.json() as Promise<any>))
      assert.strictEqual(r.ok, true)
      assert.strictEqual(r.result.caption, "pic")
      assert.deepStrictEqual(emu.calls("sendPhoto")[0]!.params.photo, { file: "a.png", size: 1234, type: "application/octet-stream" })
      const noFile = yield* api(emu, "sendDocument", { chat_id: 9 })
      assert.strictEqual(noFile.status, 400)
    })))

  it.live("injected faults: 429 with retry_after, 502 HTML, malformed JSON, dropped and hung connections", () =>
    Effect.scoped(Effect.gen(function*() {
      const emu = yield* Emulator.make()
      emu.inject("getMe", { _tag: "TooManyRequests", retryAfter: 3 })
      emu.inject("getMe", { _tag: "ServerError" })
      emu.inject("getMe", { _tag: "MalformedJson" })
      const a = yield* api(emu, "getMe")
      assert.deepStrictEqual([a.status, a.json.parameters], [429, { retry_after: 3 }])
      const b = yield* api(emu, "getMe")
      assert.strictEqual(b.status, 502)
      assert.match(b.text, /<html>/)
      const c = yield* api(emu, "getMe")
      assert.strictEqual(c.json, undefined)
      emu.inject("getMe", { _tag: "Drop" })
      const dropped = yield* Effect.promise(() => fetch(`${emu.apiRoot}/bot${emu.token}/getMe`, { method: "POST" }).then(() => "answered", () => "dropped"))
      assert.strictEqual(dropped, "dropped")
      emu.inject("getMe", { _tag: "Hang" })
      const hung = yield* Effect.promise(() =>
        fetch(`${emu.apiRoot}/bot${emu.token}/getMe`, { method: "POST", signal: AbortSignal.timeout(200) }).then(() => "answered", () => "timed out")
      )
      assert.strictEqual(hung, "timed out")
      assert.strictEqual((yield* api(emu, "getMe")).status, 200, "faults are used up")
      assert.deepStrictEqual(emu.calls("getMe").map((c) => c.outcome), ["TooManyRequests", "ServerError", "MalformedJson", "Drop", "Hang", 200])
    })))

  it.live("webhook delivery sends the secret header and retries until the bot answers 2xx", () =>
    Effect.scoped(Effect.gen(function*() {
      const emu = yield* Emulator.make({ webhookRetryBase: "10 millis" })
      const seen: Array<{ secret: string | undefined; body: string }> = []
      let failFirst = 2
      const server = Http.createServer((req, res) => {
        let body = ""
        req.on("data", (c) => (body += c))
        req.on("end", () => {
          seen.push({ secret: req.headers["x-telegram-bot-api-secret-token"] as string | undefined, body })
          res.writeHead(failFirst-- > 0 ? 500 : 200).end()
        })
      })
      yield* Effect.acquireRelease(
        Effect.promise(() => new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()))),
        () => Effect.promise(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()) }))
      )
      const port = (server.address() as { port: number }).port
      const set = yield* api(emu, "setWebhook", { url: `http://127.0.0.1:${port}/hook`, secret_token: "s3cret" })
      assert.strictEqual(set.json.result, true)
      const badSecret = yield* api(emu, "setWebhook", { url: `http://127.0.0.1:${port}/hook`, secret_token: "no spaces!" })
      assert.strictEqual(badSecret.status, 400)
      emu.sendMessage({ chatId: 3, text: "hook" })
      for (let i = 0; i < 100 && emu.pending() > 0; i++) yield* Effect.sleep("10 millis")
      assert.strictEqual(emu.pending(), 0)
      assert.strictEqual(seen.length, 3)
      assert.ok(seen.every((s) => s.secret === "s3cret"))
      assert.strictEqual(JSON.parse(seen[2]!.body).message.text, "hook")
      const info = yield* api(emu, "getWebhookInfo")
      assert.match(info.json.result.last_error_message, /500/)
    })))
})
