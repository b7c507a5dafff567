import { assert, describe, it } from "@effect/vitest"
import { connect } from "node:net"
import { type Duration, Effect } from "effect"
import { Bot, Router } from "@fiberbot/core"
import { Discord, Interactions } from "@fiberbot/adapters/discord"
import { DiscordEmulator } from "@fiberbot/testkit/discord"
import { adapterFor, pump, pumped, startBot, stopBot, withManager } from "./helpers.ts"

const slashBot = (discord: Discord.DiscordAdapter, handlerDelay?: Duration.Input) =>
  Bot.make({
    name: "slash",
    adapters: [discord.adapter],
    router: Router.empty
      .command("ping", (ctx) =>
        Effect.gen(function*() {
          if (handlerDelay !== undefined) yield* Effect.sleep(handlerDelay)
          yield* ctx.reply("pong")
          yield* ctx.reply("and a followup")
        }))
      .command("file", (ctx) => ctx.reply({ text: "here", data: new TextEncoder().encode("report"), extra: { filename: "r.txt" } }))
      .command("think", (ctx) =>
        Effect.gen(function*() {
          yield* discord.defer(ctx)
          yield* ctx.reply("thought about it")
        })),
    options: { startTimeout: "10 minutes", handlerTimeout: "30 seconds" }
  })

describe("Discord interactions", () => {
  it("verifies Ed25519 signatures over timestamp + body", () => {
    const verify = Interactions.makeVerifier("a".repeat(64).replace(/a/g, "0"))
    assert.isFalse(verify("00".repeat(64), "1", Buffer.from("{}")))
    assert.isFalse(verify("not hex", "1", Buffer.from("{}")))
    assert.throws(() => Interactions.makeVerifier("xyz"))
  })

  it.effect("gateway INTERACTION_CREATE: first reply is the callback, the next a followup", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const discord = adapterFor(emu)
      yield* startBot(slashBot(discord))
      const { id, token } = emu.interactionCreate({ channelId: "55", name: "ping" })
      yield* pump(() => emu.rest.interactionResponses.length === 2, { what: "responses" })
      const [callback, followup] = emu.rest.interactionResponses
      assert.strictEqual(callback!.kind, "callback")
      assert.strictEqual(callback!.path, `/interactions/${id}/${token}/callback`)
      assert.deepStrictEqual(callback!.body, { type: 4, data: { content: "pong" } })
      assert.strictEqual(followup!.kind, "followup")
      assert.strictEqual(followup!.path, `/webhooks/1000/${token}`)
      yield* stopBot("slash")
    })))

  it.effect("gateway: defer (type 5) then the reply edits the original response", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const discord = adapterFor(emu)
      yield* startBot(slashBot(discord))
      emu.interactionCreate({ channelId: "55", name: "think" })
      yield* pump(() => emu.rest.interactionResponses.length === 2, { what: "responses" })
      const [callback, edit] = emu.rest.interactionResponses
      assert.deepStrictEqual(callback!.body, { type: 5 })
      assert.strictEqual(edit!.kind, "edit")
      assert.deepStrictEqual(edit!.body, { content: "thought about it" })
      yield* stopBot("slash")
    })))

  it.effect("HTTP: good signature -> handler's reply is the HTTP response; bad -> 401; PING -> PONG; bad input -> 4xx", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const discord = adapterFor(emu, { interactions: { publicKey: emu.publicKey, bodyLimit: 4096 } })
      yield* startBot(slashBot(discord))
      const url = discord.interactionsUrl()!
      const ok = yield* pumped(emu.postInteraction(url, DiscordEmulator.slashCommand({ channelId: "9", name: "ping" })), "100 millis")
      assert.strictEqual(ok.status, 200)
      assert.deepStrictEqual(ok.body, { type: 4, data: { content: "pong" } })
      yield* pump(() => emu.rest.interactionResponses.length === 1, { what: "followup" })
      assert.strictEqual(emu.rest.interactionResponses[0]!.kind, "followup")

      const bad = yield* pumped(emu.postInteraction(url, DiscordEmulator.slashCommand({ channelId: "9", name: "ping" }), { badSignature: true }))
      assert.strictEqual(bad.status, 401)
      const body = DiscordEmulator.slashCommand({ channelId: "9", name: "ping" })
      const tampered = yield* pumped(emu.postInteraction(url, body, { sendInstead: JSON.stringify({ ...body, channel_id: "10" }) }))
      assert.strictEqual(tampered.status, 401, "the signature covers the exact body")
      const stale = yield* pumped(emu.postInteraction(url, body, { timestamp: "" }))
      assert.strictEqual(stale.status, 401)
      const ping = yield* pumped(emu.postInteraction(url, { type: 1, id: "1", application_id: "1000", token: "t" }))
      assert.deepStrictEqual(ping, { status: 200, body: { type: 1 } })
      const notJson = yield* pumped(emu.postInteraction(url, undefined, { raw: "{not json" }))
      assert.strictEqual(notJson.status, 400)
      const wrongShape = yield* pumped(emu.postInteraction(url, { type: 99, id: 5 }))
      assert.strictEqual(wrongShape.status, 400)
      const huge = yield* pumped(emu.postInteraction(url, { type: 2, padding: "x".repeat(10_000) }))
      assert.strictEqual(huge.status, 413)
      assert.strictEqual(emu.rest.interactionResponses.length, 1, "nothing reached a handler")
      yield* stopBot("slash")
    })))

  it.effect("HTTP: a request target that is not a URL gets 400, and the endpoint goes on", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const discord = adapterFor(emu, { interactions: { publicKey: emu.publicKey } })
      yield* startBot(slashBot(discord))
      const url = new URL(discord.interactionsUrl()!)
      // raw, because no HTTP client sends this target
      const raw = (target: string) =>
        Effect.promise(() =>
          new Promise<string>((resolve, reject) => {
            const socket = connect(Number(url.port), url.hostname, () => {
              socket.end(`POST ${target} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`)
            })
            let answer = ""
            socket.setEncoding("utf8")
            socket.on("data", (chunk: string) => (answer += chunk))
            socket.on("end", () => resolve(answer))
            socket.on("error", reject)
          })
        )
      const answer = yield* pumped(raw("http://["), "100 millis")
      assert.match(answer, /^HTTP\/1\.1 400 /)
      const ok = yield* pumped(emu.postInteraction(url.href, DiscordEmulator.slashCommand({ channelId: "9", name: "ping" })), "100 millis")
      assert.strictEqual(ok.status, 200)
      yield* stopBot("slash")
    })))

  it.effect("HTTP: a slow handler gets a deferred response before the 3 s deadline, its reply edits the original", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const discord = adapterFor(emu, { interactions: { publicKey: emu.publicKey } })
      yield* startBot(slashBot(discord, "5 seconds"))
      const res = yield* pumped(emu.postInteraction(discord.interactionsUrl()!, DiscordEmulator.slashCommand({ channelId: "9", name: "ping" })), "250 millis")
      assert.deepStrictEqual(res, { status: 200, body: { type: 5 } })
      yield* pump(() => emu.rest.interactionResponses.length === 2, { step: "500 millis", what: "edit and followup" })
      assert.deepStrictEqual(emu.rest.interactionResponses.map((r) => r.kind), ["edit", "followup"])
      yield* stopBot("slash")
    })))

  it.effect("HTTP: a reply with a file is acknowledged (type 5) and sent as a multipart edit", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const discord = adapterFor(emu, { interactions: { publicKey: emu.publicKey } })
      yield* startBot(slashBot(discord))
      const res = yield* pumped(emu.postInteraction(discord.interactionsUrl()!, DiscordEmulator.slashCommand({ channelId: "9", name: "file" })), "100 millis")
      assert.deepStrictEqual(res, { status: 200, body: { type: 5 } })
      yield* pump(() => emu.rest.interactionResponses.length === 1, { what: "edit" })
      assert.strictEqual(emu.rest.interactionResponses[0]!.kind, "edit")
      assert.deepStrictEqual(emu.rest.interactionResponses[0]!.body, { content: "here" })
      const req = emu.requests().find((r) => r.method === "PATCH")!
      assert.deepStrictEqual(req.files, ["r.txt"])
      yield* stopBot("slash")
    })))
})
