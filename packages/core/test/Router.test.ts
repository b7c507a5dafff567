import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Bot, BotManager, Router, Update } from "@fiberbot/core"
import { LeakCheck, TestAdapter } from "@fiberbot/core/testing"
import * as fc from "fast-check"

const msg = (fields: Partial<Update.Update>): Update.Update => ({ adapter: "t", kind: "message", id: "1", key: "k", payload: {}, ...fields })

describe("Router", () => {
  it("tries routes in order and takes the first that matches", () => {
    const r = Router.empty
      .command("start", () => Effect.void)
      .text("hi", () => Effect.void, { name: "greeting" })
      .text(/^order (\d+)$/, () => Effect.void, { name: "order" })
      .callback(/^vote:(up|down)$/, () => Effect.void)
      .on("message", () => Effect.void)
      .filter((u) => u.kind === "reaction", () => Effect.void, { name: "reaction" })
    assert.strictEqual(r.resolve(msg({ text: "/start@my_bot now" }))?.name, "command/start")
    assert.strictEqual(r.resolve(msg({ text: "hi" }))?.name, "greeting")
    const order = r.resolve(msg({ text: "order 42" }))
    assert.strictEqual(order?.name, "order")
    assert.strictEqual(order?.match?.[1], "42")
    assert.strictEqual(r.resolve(msg({ kind: "callback", callbackData: "vote:up" }))?.match?.[1], "up")
    assert.strictEqual(r.resolve(msg({ text: "anything" }))?.name, "message")
    assert.strictEqual(r.resolve(msg({ kind: "reaction" }))?.name, "reaction")
    assert.isUndefined(r.resolve(msg({ kind: "open" })))
  })

  it("commands ignore case and the @botname suffix; /startx is not /start", () => {
    const r = Router.empty.command(["start", "help"], () => Effect.void)
    assert.isDefined(r.resolve(msg({ text: "/START" })))
    assert.isDefined(r.resolve(msg({ text: "/help@bot topic" })))
    assert.isUndefined(r.resolve(msg({ text: "/startx" })))
    assert.isUndefined(r.resolve(msg({ text: "start" })))
  })

  it("parseCommand never throws and only accepts well-formed commands", () => {
    fc.assert(fc.property(fc.string({ maxLength: 300 }), (text) => {
      const c = Update.parseCommand(text)
      if (c !== undefined) {
        assert.isTrue(text.startsWith("/"))
        assert.match(c.name, /^[a-z0-9_]{1,64}$/)
      }
    }))
    assert.isUndefined(Update.parseCommand("/" + "a".repeat(65)))
    assert.isUndefined(Update.parseCommand("/bad-name"))
    assert.deepStrictEqual(Update.parseCommand("/Echo@Bot  spaced  args "), { name: "echo", bot: "Bot", args: "spaced  args" })
  })

  it.effect("middleware wraps handlers outermost-first; sub-routers get their parent's middleware and their own", () =>
    LeakCheck.verify(Effect.gen(function*() {
      const trace: Array<string> = []
      const mw = (name: string): Router.Middleware => (_ctx, next) =>
        Effect.gen(function*() {
          trace.push(`${name}>`)
          yield* next
          trace.push(`<${name}`)
        })
      const admin = Router.empty.use(mw("admin")).command("ban", () => Effect.sync(() => trace.push("ban")))
      const router = Router.empty
        .use(mw("log"))
        .use(mw("auth"))
        .route(admin)
        .on("message", () => Effect.sync(() => trace.push("echo")))
      const manager = yield* BotManager
      const test = yield* TestAdapter.make()
      yield* manager.start(Bot.make({ name: "mw", adapters: [test.adapter], router }))
      yield* test.message("a", "/ban")
      yield* test.message("a", "hello")
      const report = yield* manager.stop("mw")
      assert.isTrue(report.withinDeadline)
      assert.deepStrictEqual(trace, ["log>", "auth>", "admin>", "ban", "<admin", "<auth", "<log", "log>", "auth>", "echo", "<auth", "<log"])
    })).pipe(Effect.provide(BotManager.layer)))

  it.effect("middleware can stop the chain", () =>
    LeakCheck.verify(Effect.gen(function*() {
      const onlyAdmins: Router.Middleware = (ctx, next) => (ctx.update.key === "admin" ? next : ctx.reply("not allowed"))
      const manager = yield* BotManager
      const test = yield* TestAdapter.make()
      yield* manager.start(Bot.make({ name: "guarded", adapters: [test.adapter], router: Router.empty.use(onlyAdmins).on("message", (ctx) => ctx.reply("done")) }))
      yield* test.message("guest", "x")
      assert.strictEqual((yield* test.nextReply).message.text, "not allowed")
      yield* test.message("admin", "x")
      assert.strictEqual((yield* test.nextReply).message.text, "done")
      yield* manager.stop("guarded")
    })).pipe(Effect.provide(BotManager.layer)))
})
