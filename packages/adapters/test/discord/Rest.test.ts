import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Exit, Fiber, Logger, Redacted } from "effect"
import { DiscordRest, RestError } from "@fiberbot/adapters/discord"
import { TestClock } from "effect/testing"
import { DiscordEmulator } from "@fiberbot/testkit/discord"
import { pump, pumped, realSleep, withManager } from "./helpers.ts"

const restFor = (emu: DiscordEmulator.DiscordEmulator, options: Partial<DiscordRest.Options> = {}) =>
  DiscordRest.make({ token: Redacted.make(emu.token), baseUrl: emu.restUrl, ...options })

describe("Discord REST", () => {
  it("routeOf keeps the major parameter and collapses the rest", () => {
    assert.deepStrictEqual(DiscordRest.routeOf("POST", "/channels/123456789/messages"), { route: "POST /channels/123456789/messages", major: "123456789" })
    assert.deepStrictEqual(DiscordRest.routeOf("PATCH", "/channels/123456789/messages/987654321"), { route: "PATCH /channels/123456789/messages/:id", major: "123456789" })
    assert.strictEqual(DiscordRest.routeOf("PUT", "/channels/123456789/messages/987654321/reactions/%F0%9F%91%8D/@me").route, "PUT /channels/123456789/messages/:id/reactions/:reaction")
    assert.deepStrictEqual(DiscordRest.routeOf("POST", "/webhooks/111111/tok-en"), { route: "POST /webhooks/111111/:token", major: "111111/tok-en" })
    assert.strictEqual(DiscordRest.routeOf("POST", "/interactions/222222/tok/callback").route, "POST /interactions/:id/:token/callback")
    assert.strictEqual(DiscordRest.routeOf("GET", "/users/333333").route, "GET /users/:id")
  })

  it.effect("per-route buckets with major parameters: no 429 and channels do not wait for each other", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make({ bucketLimit: 3, bucketWindow: 5000 })
      const rest = yield* restFor(emu)
      const t0 = yield* Clock.currentTimeMillis
      const sends = Effect.forEach(["100001", "100002"], (channel) =>
        Effect.forEach(Array.from({ length: 10 }, (_, i) => i), (i) => rest.createMessage(channel, { content: `${channel}-${i}` }), { concurrency: "unbounded" }),
        { concurrency: "unbounded" })
      yield* pumped(sends, "250 millis", 2000)
      const elapsed = (yield* Clock.currentTimeMillis) - t0
      assert.strictEqual(emu.rest.rateLimited, 0)
      assert.strictEqual(emu.rest.messages.size, 20)
      // 10 requests at 3 per 5 s is 3 waits per channel; serialized channels would need twice that
      assert.isAtLeast(elapsed, 15_000)
      assert.isBelow(elapsed, 25_000)
    })))

  it.effect("global limit: requests to many routes stay under it", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make({ globalLimit: 5 })
      const rest = yield* restFor(emu, { globalPerSecond: 5 })
      const sends = Effect.forEach(Array.from({ length: 20 }, (_, i) => i), (i) => rest.createMessage(String(200000 + i), { content: "x" }), { concurrency: "unbounded" })
      yield* pumped(sends, "100 millis", 2000)
      assert.strictEqual(emu.rest.rateLimited, 0)
      assert.strictEqual(emu.rest.messages.size, 20)
    })))

  it.effect("a global 429 pauses every route for retry_after, then the request succeeds", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const rest = yield* restFor(emu)
      emu.script({ path: /messages$/, status: 429, body: { message: "rate limited", retry_after: 2.5, global: true }, headers: { "x-ratelimit-global": "true", "x-ratelimit-scope": "global" } })
      const first = yield* Effect.forkChild(rest.createMessage("300001", { content: "a" }), { startImmediately: true })
      yield* pump(() => emu.rest.rateLimited === 1, { what: "429" })
      const other = yield* Effect.forkChild(rest.createMessage("300002", { content: "b" }), { startImmediately: true })
      yield* pumped(Effect.void, "1 second")
      yield* pumped(Effect.void, "1 second")
      assert.strictEqual(emu.rest.messages.size, 0, "nothing goes out during a global pause")
      yield* pump(() => first.pollUnsafe() !== undefined && other.pollUnsafe() !== undefined, { step: "500 millis", what: "both done" })
      assert.strictEqual(emu.rest.messages.size, 2)
      assert.strictEqual(rest.invalidRequests(), 1)
    })))

  it.effect("a route 429 waits retry_after and retries; 'shared' 429s are not counted as invalid", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const rest = yield* restFor(emu)
      emu.script({ path: /messages$/, status: 429, body: { retry_after: 1.5, global: false }, headers: { "x-ratelimit-scope": "shared" } })
      const t0 = yield* Clock.currentTimeMillis
      const msg = yield* pumped(rest.createMessage("400001", { content: "a" }), "250 millis")
      assert.strictEqual(msg.content, "a")
      assert.isAtLeast((yield* Clock.currentTimeMillis) - t0, 1500)
      assert.strictEqual(rest.invalidRequests(), 0)
      emu.script({ path: /messages$/, status: 429, body: { retry_after: 0.5, global: false }, headers: { "x-ratelimit-scope": "user" }, times: 10 })
      const exit = yield* pumped(Effect.exit(rest.createMessage("400001", { content: "b" })), "250 millis")
      assert.isTrue(Exit.isFailure(exit), "429 retries are bounded")
      assert.strictEqual(rest.invalidRequests(), 6)
    })))

  it.effect("5xx is retried a bounded number of times", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const rest = yield* restFor(emu, { retries: 3 })
      emu.script({ path: /messages$/, status: 502, times: 2 })
      const msg = yield* pumped(rest.createMessage("500001", { content: "ok" }), "250 millis")
      assert.strictEqual(msg.content, "ok")
      emu.script({ path: /messages$/, status: 500, times: 100 })
      const before = emu.requests().length
      const error = yield* pumped(Effect.flip(rest.createMessage("500001", { content: "no" })), "250 millis")
      assert.instanceOf(error, RestError)
      assert.strictEqual(error.status, 500)
      assert.strictEqual(emu.requests().length - before, 4)
    })))

  it.effect("a hung request times out and is retried; an interrupted one gives its bucket back", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const rest = yield* restFor(emu, { timeout: "3 seconds" })
      emu.script({ path: /messages$/, status: 200, hang: true })
      const msg = yield* pumped(rest.createMessage("600001", { content: "after timeout" }), "500 millis")
      assert.strictEqual(msg.content, "after timeout")
      emu.script({ path: /messages$/, status: 200, hang: true })
      const stuck = yield* Effect.forkChild(rest.createMessage("600001", { content: "never" }), { startImmediately: true })
      yield* pump(() => emu.rest.hanging.size === 1, { what: "hanging request" })
      yield* Fiber.interrupt(stuck)
      const next = yield* pumped(rest.createMessage("600001", { content: "next" }), "100 millis", 50)
      assert.strictEqual(next.content, "next")
    })))

  it.effect("hostile rate-limit answers: a wait past maxRateLimitWait fails at once, and no bucket stalls for good", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const rest = yield* restFor(emu, { maxRateLimitWait: "30 seconds" })
      // a bucket told to wait a billion seconds: the request fails with a 429 saying so (the reset
      // is capped at an hour), instead of sleeping on it; other channels are not held up
      emu.script({ path: /channels\/810001\/messages$/, status: 429, body: { retry_after: 1e9, global: false }, headers: { "x-ratelimit-scope": "user" } })
      const e1 = yield* pumped(Effect.flip(rest.createMessage("810001", { content: "a" })), "100 millis", 50)
      assert.strictEqual(e1.status, 429)
      assert.include(e1.message, "would wait 3600 s")
      const e2 = yield* pumped(Effect.flip(rest.createMessage("810001", { content: "b" })), "100 millis", 50)
      assert.strictEqual(e2.status, 429, "the same bucket fails at once too")
      const other = yield* pumped(rest.createMessage("810002", { content: "c" }), "100 millis", 50)
      assert.strictEqual(other.content, "c")
      // after the capped hour the bucket works again
      yield* TestClock.adjust("61 minutes")
      const later = yield* pumped(rest.createMessage("810001", { content: "d" }), "100 millis", 50)
      assert.strictEqual(later.content, "d")
      // a global 429 with a hostile retry_after fails every route at once, as global says
      emu.script({ path: /messages$/, status: 429, body: { retry_after: 1e9, global: true }, headers: { "x-ratelimit-global": "true" } })
      const e3 = yield* pumped(Effect.flip(rest.createMessage("810003", { content: "e" })), "100 millis", 50)
      assert.include(e3.message, "(global)")
      const e4 = yield* pumped(Effect.flip(rest.editMessage("810004", "123456789", { content: "f" })), "100 millis", 50)
      assert.include(e4.message, "(global)")
      // reset headers that are not numbers change nothing
      yield* TestClock.adjust("61 minutes")
      emu.script({ path: /messages$/, status: 429, body: { retry_after: "soon" }, headers: { "retry-after": "NaN", "x-ratelimit-reset-after": "-5" } })
      const t0 = yield* Clock.currentTimeMillis
      const msg = yield* pumped(rest.createMessage("810005", { content: "g" }), "250 millis")
      assert.strictEqual(msg.content, "g")
      assert.isAtLeast((yield* Clock.currentTimeMillis) - t0, 1000, "an unreadable retry_after waits the default second")
    })))

  it.effect("a response body over maxResponseBytes is a failed attempt, not a memory hog", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const rest = yield* restFor(emu, { maxResponseBytes: 1000, retries: 0 })
      emu.script({ path: /messages$/, status: 200, body: { id: "1", content: "x".repeat(5000) } })
      const e = yield* pumped(Effect.flip(rest.createMessage("820001", { content: "a" })), "100 millis", 50)
      assert.include(e.message, "over 1000 bytes")
      const ok = yield* pumped(rest.createMessage("820001", { content: "small" }), "100 millis", 50)
      assert.strictEqual(ok.content, "small")
    })))

  it.effect("401 is a typed error, counted as invalid; 4xx errors carry Discord's code", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const bad = yield* DiscordRest.make({ token: Redacted.make("wrong"), baseUrl: emu.restUrl })
      const e1 = yield* pumped(Effect.flip(bad.createMessage("700001", { content: "x" })))
      assert.strictEqual(e1.status, 401)
      assert.strictEqual(bad.invalidRequests(), 1)
      assert.notInclude(e1.message, "wrong")
      const rest = yield* restFor(emu)
      const e2 = yield* pumped(Effect.flip(rest.editMessage("700001", "123456789", { content: "x" })))
      assert.strictEqual(e2.status, 404)
      assert.strictEqual(e2.code, 10008)
    })))

  it.effect("messages: create, edit, react, delete; attachments go as multipart", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const rest = yield* restFor(emu)
      const msg = yield* pumped(rest.createMessage("800001", { content: "with file" }, [{ name: "a.txt", data: new TextEncoder().encode("hello") }]))
      assert.deepStrictEqual(msg.attachments.map((a) => a.filename), ["a.txt"])
      const req = emu.requests().at(-1)!
      assert.match(req.headers["content-type"]!, /^multipart\/form-data/)
      assert.deepStrictEqual(req.body, { content: "with file" })
      yield* pumped(rest.editMessage("800001", msg.id, { content: "edited" }))
      yield* pumped(rest.addReaction("800001", msg.id, "👍"))
      assert.deepStrictEqual(emu.rest.messages.get(msg.id)!.reactions, ["👍"])
      assert.strictEqual(emu.rest.messages.get(msg.id)!.content, "edited")
      yield* pumped(rest.deleteMessage("800001", msg.id))
      assert.isTrue(emu.rest.messages.get(msg.id)!.deleted)
    })))

  it.effect("interaction callbacks bypass the global limit", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make({ globalLimit: 1 })
      const rest = yield* restFor(emu, { globalPerSecond: 1 })
      yield* pumped(rest.createMessage("900001", { content: "uses the only global slot" }))
      const callbacks = Effect.forEach(Array.from({ length: 5 }, (_, i) => i), (i) =>
        rest.createInteractionResponse(String(910000 + i), `tok${i}`, { type: 4, data: { content: "hi" } }), { concurrency: "unbounded" })
      const fiber = yield* Effect.forkChild(callbacks, { startImmediately: true })
      // no clock movement: callbacks must not wait for the global window
      yield* pump(() => fiber.pollUnsafe() !== undefined, { what: "callbacks" })
      assert.strictEqual(emu.rest.interactionResponses.length, 5)
      yield* realSleep(1)
    })))

  it.effect("invalid requests: a warning every `invalidWarnAt` within 10 minutes, far below Cloudflare's 10,000", () =>
    withManager(Effect.gen(function*() {
      const emu = yield* DiscordEmulator.make()
      const warnings: Array<string> = []
      const capture = Logger.make(({ logLevel, message }) => {
        if (logLevel === "Warn") warnings.push(String(Array.isArray(message) ? message[0] : message))
      })
      const bad = yield* DiscordRest.make({ token: Redacted.make("wrong"), baseUrl: emu.restUrl, invalidWarnAt: 3 })
      for (let i = 0; i < 7; i++) yield* pumped(Effect.ignore(bad.createMessage("710001", { content: "x" })).pipe(Effect.provide(Logger.layer([capture]))))
      assert.strictEqual(bad.invalidRequests(), 7)
      assert.strictEqual(warnings.length, 2)
      assert.include(warnings[0]!, "3 invalid requests")
      yield* TestClock.adjust("11 minutes")
      assert.strictEqual(bad.invalidRequests(), 0)
    })))
})
