import { assert, describe, it } from "@effect/vitest"
import { Data, Effect, Fiber, Scope } from "effect"
import { Logging, Metrics } from "@fiberbot/core"
import { TestClock } from "effect/testing"
import { Bot, BotManager, Router } from "@fiberbot/core"
import { LeakCheck, TestAdapter } from "@fiberbot/core/testing"
import { settle } from "./helpers.ts"

class PaymentDeclined extends Data.TaggedError("PaymentDeclined")<{ readonly amount: number }> {}

const setup = (router: Router.Router, options?: Bot.Options, name = "h") =>
  Effect.gen(function*() {
    const manager = yield* BotManager
    const test = yield* TestAdapter.make()
    yield* manager.start(Bot.make({ name, adapters: [test.adapter], router, ...(options ? { options } : {}) }))
    return { manager, test }
  })

describe("Handler", () => {
  it.effect("a handler past its timeout is interrupted, releases its resources and is counted as a timeout", () =>
    LeakCheck.verify(Effect.gen(function*() {
      const events: Array<string> = []
      const { manager, test } = yield* setup(
        Router.empty.on("message", () =>
          Effect.gen(function*() {
            yield* Effect.acquireRelease(Effect.sync(() => events.push("acquire")), (_, exit) => Effect.sync(() => events.push(`release ${exit._tag}`)))
            yield* Effect.sleep("1 minute")
            events.push("finished") // never reached
          })),
        { handlerTimeout: "2 seconds" }
      )
      yield* test.message("c", "x")
      yield* settle()
      yield* TestClock.adjust("1999 millis")
      assert.deepStrictEqual(events, ["acquire"])
      yield* TestClock.adjust("1 millis")
      yield* settle()
      assert.deepStrictEqual(events, ["acquire", "release Failure"])
      const [status] = yield* manager.status()
      assert.strictEqual(status?.outcomes.timeout, 1)
      assert.strictEqual(status?.inFlight, 0)
      yield* manager.stop("h")
    })).pipe(Effect.provide(BotManager.layer)))

  it.effect("a route's own timeout overrides the bot's", () =>
    LeakCheck.verify(Effect.gen(function*() {
      const { manager, test } = yield* setup(
        Router.empty.command("report", () => Effect.sleep("45 seconds"), { timeout: "1 minute" }).on("message", () => Effect.sleep("45 seconds")),
        { handlerTimeout: "30 seconds" }
      )
      yield* test.message("a", "/report")
      yield* test.message("b", "plain")
      yield* settle()
      yield* TestClock.adjust("45 seconds")
      yield* settle()
      const [status] = yield* manager.status()
      assert.deepStrictEqual([status?.outcomes.success, status?.outcomes.timeout], [1, 1])
      yield* manager.stop("h")
    })).pipe(Effect.provide(BotManager.layer)))

  it.effect("typed errors and defects go to the error boundary; the bot keeps handling", () =>
    LeakCheck.verify(Effect.gen(function*() {
      const { manager, test } = yield* setup(
        Router.empty
          .command("pay", () => Effect.fail(new PaymentDeclined({ amount: 5 })))
          .command("crash", () => Effect.sync(() => {
            throw new TypeError("cannot read x of undefined")
          }))
          .on("message", (ctx) => ctx.reply(`ok ${ctx.text}`))
      )
      yield* test.message("a", "/pay")
      yield* test.message("a", "/crash")
      yield* test.message("a", "still there?")
      const reply = yield* test.nextReply
      assert.strictEqual(reply.message.text, "ok still there?")
      const [status] = yield* manager.status()
      assert.strictEqual(status?.state, "running")
      assert.deepStrictEqual([status?.outcomes.failure, status?.outcomes.defect, status?.outcomes.success], [1, 1, 1])
      yield* manager.stop("h")
    })).pipe(Effect.provide(BotManager.layer)))

  it.effect("updates no route matches are counted as unhandled", () =>
    LeakCheck.verify(Effect.gen(function*() {
      const { manager, test } = yield* setup(Router.empty.command("only", () => Effect.void))
      yield* test.message("a", "hello")
      yield* settle()
      const [status] = yield* manager.status()
      assert.strictEqual(status?.outcomes.unhandled, 1)
      yield* manager.stop("h")
    })).pipe(Effect.provide(BotManager.layer)))

  it.effect("a handler's resources are released when the bot stops mid-run", () =>
    LeakCheck.verify(Effect.gen(function*() {
      const events: Array<string> = []
      const { manager, test } = yield* setup(Router.empty.on("message", () =>
        Effect.andThen(
          Effect.acquireRelease(Effect.sync(() => events.push("acquire")), () => Effect.sync(() => events.push("release"))),
          Effect.never
        )))
      yield* test.message("a", "x")
      yield* settle()
      const stopping = yield* Effect.forkChild(manager.stop("h", { deadline: "1 second" }))
      yield* settle()
      yield* TestClock.adjust("1 second")
      const report = yield* Fiber.join(stopping)
      assert.deepStrictEqual(events, ["acquire", "release"])
      assert.deepStrictEqual(report.interrupted, ["handler/message"])
    })).pipe(Effect.provide(BotManager.layer)))

  it.effect("a handler's finalizers finish before the next update of its key, and a failing finalizer fails the run", () =>
    LeakCheck.verify(Effect.gen(function*() {
      const events: Array<string> = []
      const { manager, test } = yield* setup(
        Router.empty
          .command("slowclose", () =>
            Effect.andThen(
              Effect.addFinalizer(() => Effect.andThen(Effect.sleep("1 second"), Effect.sync(() => events.push("closed")))),
              Effect.sync(() => events.push("ran 1"))
            ))
          .command("badclose", () => Effect.addFinalizer(() => Effect.die("finalizer broke")))
          .on("message", (ctx) => Effect.sync(() => events.push(`ran ${ctx.text}`)))
      )
      // the dispatcher parks on its empty intake, so these offers start their runs directly (a run
      // that ends at once while its scope still closes must keep its key busy)
      yield* settle()
      assert.strictEqual(test.trySend({ key: "a", text: "/slowclose" }), "accepted")
      assert.strictEqual(test.trySend({ key: "a", text: "2" }), "accepted")
      assert.strictEqual(test.trySend({ key: "b", text: "3" }), "accepted")
      yield* settle()
      // the other key goes on; the same key waits for the closing scope
      assert.deepStrictEqual(events, ["ran 1", "ran 3"])
      yield* TestClock.adjust("1 second")
      yield* settle()
      assert.deepStrictEqual(events, ["ran 1", "ran 3", "closed", "ran 2"])
      yield* test.message("c", "/badclose")
      yield* settle()
      const [status] = yield* manager.status()
      assert.deepStrictEqual([status?.outcomes.success, status?.outcomes.defect, status?.inFlight], [3, 1, 0])
      yield* manager.stop("h")
    })).pipe(Effect.provide(BotManager.layer)))

  it.effect("a fiber a handler forks into its scope ends with the run", () =>
    LeakCheck.verify(Effect.gen(function*() {
      let ticks = 0
      const { manager, test } = yield* setup(Router.empty.on("message", () =>
        Effect.gen(function*() {
          // a "typing…" indicator: it lives exactly as long as the run that started it
          yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep("1 second"), Effect.sync(() => ticks++))))
          const inner = yield* Scope.fork(yield* Effect.scope)
          yield* Scope.addFinalizer(inner, Effect.sync(() => ticks += 100))
          yield* Effect.sleep("2500 millis")
        })))
      yield* test.message("a", "x")
      yield* settle()
      yield* TestClock.adjust("2500 millis")
      yield* settle()
      assert.strictEqual(ticks, 102) // two ticks, then the child scope's finalizer as the run's scope closed
      yield* TestClock.adjust("5 seconds")
      yield* settle()
      assert.strictEqual(ticks, 102)
      const [status] = yield* manager.status()
      assert.deepStrictEqual([status?.outcomes.success, status?.inFlight], [1, 0])
      yield* manager.stop("h")
    })).pipe(Effect.provide(BotManager.layer)))

  it.effect("a release still running at the deadline makes the run a timeout, and a typed failure whose release dies is a defect", () =>
    LeakCheck.verify(Effect.gen(function*() {
      const events: Array<string> = []
      const { manager, test } = yield* setup(
        Router.empty
          .command("slowrelease", () =>
            Effect.andThen(
              Effect.acquireRelease(Effect.void, () => Effect.andThen(Effect.sleep("3 seconds"), Effect.sync(() => events.push("released")))),
              Effect.sleep("1 second")
            ))
          .command("quickslowrelease", () =>
            Effect.acquireRelease(Effect.void, () => Effect.andThen(Effect.sleep("3 seconds"), Effect.sync(() => events.push("released at once-ended run")))))
          .command("failanddie", () =>
            Effect.andThen(Effect.addFinalizer(() => Effect.die("release broke")), Effect.fail(new PaymentDeclined({ amount: 1 })))),
        { handlerTimeout: "2 seconds" }
      )
      yield* settle()
      assert.strictEqual(test.trySend({ key: "a", text: "/slowrelease" }), "accepted")
      assert.strictEqual(test.trySend({ key: "b", text: "/quickslowrelease" }), "accepted")
      yield* settle()
      yield* TestClock.adjust("4 seconds")
      yield* settle()
      assert.deepStrictEqual(events.sort(), ["released", "released at once-ended run"])
      assert.strictEqual(test.trySend({ key: "c", text: "/failanddie" }), "accepted")
      yield* settle()
      const [status] = yield* manager.status()
      assert.deepStrictEqual([status?.outcomes.timeout, status?.outcomes.defect, status?.outcomes.failure, status?.inFlight], [2, 1, 0, 0])
      yield* manager.stop("h")
    })).pipe(Effect.provide(BotManager.layer)))

  it.effect("an update a finalizer offers under its own key waits for the run to finish", () =>
    LeakCheck.verify(Effect.gen(function*() {
      const events: Array<string> = []
      let test: TestAdapter.TestAdapter | undefined
      const { manager, test: adapter } = yield* setup(
        Router.empty
          .command("first", () =>
            Effect.andThen(
              Effect.addFinalizer(() => Effect.sync(() => void test!.trySend({ key: "a", text: "/slow" }))),
              Effect.sync(() => events.push("first"))
            ))
          .command("slow", () =>
            Effect.andThen(Effect.sync(() => events.push("slow start")), Effect.andThen(Effect.sleep("1 second"), Effect.sync(() => events.push("slow end")))))
          .on("message", (ctx) => Effect.sync(() => events.push(ctx.text ?? "")))
      )
      test = adapter
      yield* settle()
      assert.strictEqual(adapter.trySend({ key: "a", text: "/first" }), "accepted")
      yield* settle()
      assert.strictEqual(adapter.trySend({ key: "a", text: "third" }), "accepted")
      yield* settle()
      assert.deepStrictEqual(events, ["first", "slow start"])
      yield* TestClock.adjust("1 second")
      yield* settle()
      assert.deepStrictEqual(events, ["first", "slow start", "slow end", "third"])
      yield* manager.stop("h")
    })).pipe(Effect.provide(BotManager.layer)))

  it.effect("a stop waits for a handler's slow release", () =>
    LeakCheck.verify(Effect.gen(function*() {
      const events: Array<string> = []
      const { manager, test } = yield* setup(Router.empty.on("message", () =>
        Effect.andThen(
          Effect.acquireRelease(
            Effect.sync(() => events.push("acquire")),
            () => Effect.andThen(Effect.sleep("500 millis"), Effect.sync(() => events.push("release")))
          ),
          Effect.never
        )))
      yield* test.message("a", "x")
      yield* settle()
      const stopping = yield* Effect.forkChild(manager.stop("h", { deadline: "5 seconds", drain: "0 millis" }))
      yield* settle()
      // interrupted at once; its release is still sleeping, and the stop waits for it
      assert.deepStrictEqual(events, ["acquire"])
      assert.isUndefined(stopping.pollUnsafe())
      yield* TestClock.adjust("500 millis")
      const report = yield* Fiber.join(stopping)
      assert.deepStrictEqual(events, ["acquire", "release"])
      assert.deepStrictEqual(report.interrupted, ["handler/message"])
      assert.isTrue(report.withinDeadline)
    })).pipe(Effect.provide(BotManager.layer)))

  it.effect("each outcome is counted in the handler metrics and every one but success is logged with its task and update", () => {
    const lines: Array<Record<string, unknown>> = []
    const logs = Logging.layer({ level: "info", destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) } })
    return LeakCheck.verify(Effect.gen(function*() {
      const { manager, test } = yield* setup(
        Router.empty
          .command("pay", () => Effect.fail(new PaymentDeclined({ amount: 5 })))
          .command("crash", () => Effect.die("boom"))
          .command("slow", () => Effect.sleep("1 minute"))
          .command("throws", () => {
            throw new Error("no effect returned")
          })
          .on("message", () => Effect.void),
        { handlerTimeout: "1 second" },
        "outcomes" // metrics are process-wide: a bot name of its own
      )
      const texts = ["/pay", "/crash", "/slow", "ok", "ok", "/throws"]
      for (let i = 0; i < texts.length; i++) yield* test.send({ key: "c", id: `u${i}`, text: texts[i] })
      yield* settle()
      yield* TestClock.adjust("1 second")
      yield* settle()
      const text = yield* Metrics.makeCollector(manager).render
      const count = (task: string, outcome: string) => {
        const line = text.split("\n").find((l) => l.startsWith(`fiberbot_handler_runs_total{bot="outcomes",task="${task}",outcome="${outcome}"}`))
        return line === undefined ? undefined : Number(line.split(" ").at(-1))
      }
      assert.strictEqual(count("handler/command/pay", "failure"), 1)
      assert.strictEqual(count("handler/command/crash", "defect"), 1)
      assert.strictEqual(count("handler/command/slow", "timeout"), 1)
      assert.strictEqual(count("handler/message", "success"), 2)
      assert.strictEqual(count("handler/command/throws", "defect"), 1)
      const line = (series: string) => text.split("\n").find((l) => l.startsWith(series + " "))?.split(" ").at(-1)
      assert.strictEqual(line(`fiberbot_handler_duration_seconds_count{bot="outcomes",task="handler/message"}`), "2")
      assert.strictEqual(line(`fiberbot_handler_duration_seconds_bucket{bot="outcomes",task="handler/message",le="+Inf"}`), "2")
      assert.strictEqual(line(`fiberbot_handler_runs_total{bot="outcomes",task="handler/message",outcome="failure"}`), "0")
      const errors = lines.filter((l) => l.level === 50).map((l) => [l.msg, l.task, l.outcome, l.update])
      assert.sameDeepMembers(errors, [
        ["handler failed", "handler/command/pay", "failure", "u0"],
        ["handler died", "handler/command/crash", "defect", "u1"],
        ["handler timed out", "handler/command/slow", "timeout", "u2"],
        ["handler died", "handler/command/throws", "defect", "u5"]
      ])
      yield* manager.stop("outcomes")
    })).pipe(Effect.provide(BotManager.layer), Effect.provide(logs))
  })
})
