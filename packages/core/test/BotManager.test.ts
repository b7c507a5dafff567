import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Ref } from "effect"
import { TestClock } from "effect/testing"
import { Adapter, Bot, BotManager, Router, Supervisor } from "@fiberbot/core"
import { LeakCheck, TestAdapter } from "@fiberbot/core/testing"
import { eventually, settle } from "./helpers.ts"

const withManager = <A, E>(effect: Effect.Effect<A, E, BotManager>) =>
  LeakCheck.verify(effect).pipe(Effect.provide(BotManager.layer))

describe("BotManager", () => {
  it.effect("stop interrupts everything: workers, a heartbeat and 100 in-flight handlers release each resource once", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const test = yield* TestAdapter.make()
      const acquired = { n: 0 }
      const released = new Map<string, number>()
      const resource = (id: string) =>
        Effect.acquireRelease(
          Effect.sync(() => {
            acquired.n++
          }),
          () => Effect.sync(() => released.set(id, (released.get(id) ?? 0) + 1))
        )
      const beats = yield* Ref.make(0)
      const heartbeat: Adapter.Adapter = {
        name: "beat",
        start: (ctx) => Effect.asVoid(ctx.fork("beat/heartbeat", Effect.forever(Effect.andThen(Ref.update(beats, (n) => n + 1), Effect.sleep("1 second"))))),
        reply: () => Effect.void
      }
      const worker = (i: number) => Supervisor.child(`w${i}`, Effect.andThen(resource(`worker-${i}`), Effect.never))
      const bot = Bot.make({
        name: "busy",
        adapters: [test.adapter, heartbeat],
        router: Router.empty.on("message", (ctx) => Effect.andThen(resource(`handler-${ctx.update.id}`), Effect.never)),
        workers: [worker(1), worker(2), worker(3)]
      })
      yield* manager.start(bot)
      for (let i = 0; i < 100; i++) yield* test.message(`chat-${i}`, "work")
      yield* eventually(() => acquired.n === 103)
      yield* TestClock.adjust("3 seconds")
      assert.isAtLeast(yield* Ref.get(beats), 3)
      const status = (yield* manager.status())[0]!
      assert.strictEqual(status.inFlight, 100)
      assert.isAbove(manager.registry.snapshot({ bot: "busy" }).total, 100)

      const stopping = yield* Effect.forkChild(manager.stop("busy", { deadline: "2 seconds", drain: "500 millis" }))
      yield* settle()
      yield* TestClock.adjust("500 millis")
      yield* settle()
      yield* TestClock.adjust("1500 millis")
      const report = yield* Fiber.join(stopping)

      assert.isTrue(report.withinDeadline, report.unfinished.join(", "))
      assert.strictEqual(report.interrupted.length, 100)
      assert.isTrue(report.interrupted.every((t) => t === "handler/message"))
      assert.includeMembers([...report.stopped], ["beat/heartbeat", "supervisor", "worker/w1", "worker/w2", "worker/w3"])
      assert.strictEqual(released.size, 103)
      assert.isTrue([...released.values()].every((n) => n === 1))
      assert.strictEqual(manager.registry.snapshot({ bot: "busy" }).total, 0)
    })))

  it.effect("stop with a hanging finalizer returns by its deadline and names the culprit", () => {
    const gate = Deferred.makeUnsafe<void>()
    return withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const hanging: Adapter.Adapter = {
        name: "stuck",
        start: (ctx) =>
          Effect.gen(function*() {
            yield* ctx.fork("stuck/reader", Effect.never)
            yield* Effect.addFinalizer(() => Deferred.await(gate)) // a close that never answers
          }),
        reply: () => Effect.void
      }
      yield* manager.start(Bot.make({ name: "hangs", adapters: [hanging] }))
      const stopping = yield* Effect.forkChild(manager.stop("hangs", { deadline: "1 second" }))
      yield* settle()
      yield* TestClock.adjust("1 second")
      const report = yield* Fiber.join(stopping)
      assert.isFalse(report.withinDeadline)
      assert.deepStrictEqual(report.unfinished, ["adapter/stuck (its close did not finish)", "stuck/reader (still running)"])
      assert.strictEqual(report.durationMs, 1000)
    }).pipe(
      // The abandoned close is still owned by the manager; once it can finish, nothing is left.
      Effect.ensuring(Effect.suspend(() => Deferred.succeed(gate, undefined)))
    ))
  })

  it.effect("stop drains in-flight handlers before closing connections", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const test = yield* TestAdapter.make()
      yield* manager.start(Bot.make({
        name: "drainer",
        adapters: [test.adapter],
        router: Router.empty.on("message", (ctx) => Effect.andThen(Effect.sleep("200 millis"), ctx.reply(`done ${ctx.text}`)))
      }))
      for (let i = 0; i < 5; i++) yield* test.message(`c${i}`, String(i))
      yield* settle(10)
      const stopping = yield* Effect.forkChild(manager.stop("drainer", { deadline: "2 seconds" }))
      yield* settle(50)
      assert.strictEqual(yield* test.message("late", "x"), "closed")
      yield* TestClock.adjust("200 millis")
      const report = yield* Fiber.join(stopping)
      assert.strictEqual(report.drained, 5)
      assert.deepStrictEqual(report.interrupted, [])
      assert.strictEqual(test.replies().length, 5) // the adapter was still open for draining replies
    })))

  it.effect("stop is idempotent, start after stop works, unknown names fail with BotNotFound", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const test = yield* TestAdapter.make()
      const bot = Bot.make({ name: "again", adapters: [test.adapter], router: Router.empty.on("message", (ctx) => ctx.reply("pong")) })
      yield* manager.start(bot)
      const already = yield* Effect.flip(manager.start(bot))
      assert.strictEqual(already._tag, "BotAlreadyRunning")
      const [a, b] = yield* Effect.all([manager.stop("again"), manager.stop("again")], { concurrency: "unbounded" })
      assert.strictEqual(a, b)
      assert.strictEqual(yield* manager.stop("again"), a)
      yield* manager.start(bot)
      yield* test.message("c", "ping")
      assert.strictEqual((yield* test.nextReply).message.text, "pong")
      yield* manager.stop("again")
      const missing = yield* Effect.flip(manager.stop("nobody"))
      assert.strictEqual(missing._tag, "BotNotFound")
    })))

  it.effect("start fails with a typed error when an adapter fails, and leaves nothing running", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const good = yield* TestAdapter.make({ name: "good" })
      const bad: Adapter.Adapter = {
        name: "bad",
        start: (ctx) =>
          Effect.gen(function*() {
            yield* ctx.fork("bad/loop", Effect.never)
            return yield* new Adapter.AdapterError({ adapter: "bad", reason: "401 Unauthorized: check the token" })
          }),
        reply: () => Effect.void
      }
      const error = yield* Effect.flip(manager.start(Bot.make({ name: "broken", adapters: [good.adapter, bad] })))
      assert.strictEqual(error._tag, "BotStartError")
      assert.include(error.message, "401 Unauthorized")
      assert.strictEqual(yield* good.message("c", "x"), "closed")
      assert.deepStrictEqual(yield* manager.status(), [])
    })))

  it.effect("start fails when an adapter is not ready by the start timeout", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const slow: Adapter.Adapter = { name: "slow", start: () => Effect.never, reply: () => Effect.void }
      const starting = yield* Effect.forkChild(Effect.flip(manager.start(Bot.make({ name: "late", adapters: [slow], options: { startTimeout: "5 seconds" } }))))
      yield* TestClock.adjust("5 seconds")
      const error = yield* Fiber.join(starting)
      assert.strictEqual(error._tag, "BotStartError")
      assert.include(error.message, "not ready within 5s")
    })))

  it.effect("bad configuration fails at start with a clear message", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const error = yield* Effect.flip(manager.start(Bot.make({
        name: "bad config!",
        options: { concurrency: -3, handlerTimeout: "soon" as never, intake: { policy: "maybe" as never } }
      })))
      assert.strictEqual(error._tag, "BotConfigError")
      assert.include(error.message, "bad config!")
      assert.include(error.message, "concurrency")
      assert.include(error.message, "handlerTimeout")
      assert.include(error.message, "intakePolicy")
      const dupes = yield* Effect.flip(manager.start(Bot.make({
        name: "dupes",
        workers: [Supervisor.child("a", Effect.never), Supervisor.child("a", Effect.never)]
      })))
      assert.include(dupes.message, `worker name "a" is used twice`)
    })))

  it.effect("a supervisor escalation stops the bot and its status says why", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const bot = Bot.make({
        name: "crashy",
        workers: [Supervisor.child("flaky", Effect.fail("database unreachable"))],
        options: { supervisor: { intensity: 2, period: "10 seconds", backoff: { base: "10 millis", jitter: 0 } } }
      })
      yield* manager.start(bot)
      yield* TestClock.adjust("1 second")
      yield* settle(200)
      const [status] = yield* manager.status()
      assert.strictEqual(status?.state, "failed")
      assert.include(status?.reason ?? "", "worker flaky needed 3 restarts")
      assert.include(status?.lastStop?.reason ?? "", "database unreachable")
    })))
})

describe("BotManager teardown", () => {
  it.effect("closing the manager stops the bots still running, releasing their resources", () =>
    Effect.gen(function*() {
      const released: Array<string> = []
      const exit = yield* Effect.exit(Effect.gen(function*() {
        const manager = yield* BotManager
        const test = yield* TestAdapter.make()
        yield* manager.start(Bot.make({
          name: "left-running",
          adapters: [test.adapter],
          router: Router.empty.on("message", () =>
            Effect.andThen(Effect.acquireRelease(Effect.void, () => Effect.sync(() => released.push("handler"))), Effect.never)),
          workers: [Supervisor.child("w", Effect.andThen(Effect.acquireRelease(Effect.void, () => Effect.sync(() => released.push("worker"))), Effect.never))],
          options: { stopDeadline: "1 second" }
        }))
        yield* test.message("a", "x")
        yield* settle()
        return yield* Effect.die("the test failed before it stopped its bot")
      }).pipe(Effect.provide(BotManager.layer), Effect.forkChild, Effect.flatMap((f) => Effect.andThen(settle(), Effect.andThen(TestClock.adjust("1 second"), Fiber.await(f))))))
      assert.strictEqual(exit._tag, "Success")
      assert.sameMembers(released, ["handler", "worker"])
    }))
})

describe("adapter status", () => {
  it.effect("an adapter's own figures show in the bot's status and, as they stand at the end, in its stop report", () =>
    LeakCheck.verify(Effect.gen(function*() {
      const manager = yield* BotManager
      let connections = 3
      const counted: Adapter.Adapter = {
        name: "conns",
        start: () => Effect.addFinalizer(() => Effect.sync(() => {
          connections = 0
        })),
        reply: () => Effect.void,
        status: () => ({ open: connections })
      }
      const broken: Adapter.Adapter = {
        name: "broken",
        start: () => Effect.void,
        reply: () => Effect.void,
        status: () => {
          throw new Error("a status read must not break anything")
        }
      }
      yield* manager.start(Bot.make({ name: "figures", adapters: [counted, broken] }))
      const [status] = yield* manager.status()
      assert.deepStrictEqual(status?.adapters, { conns: { open: 3 } })
      const report = yield* manager.stop("figures")
      assert.deepStrictEqual(report.adapters, { conns: { open: 0 } })
    })).pipe(Effect.provide(BotManager.layer)))
})
