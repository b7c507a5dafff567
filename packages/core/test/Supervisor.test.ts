import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Scope } from "effect"
import { TestClock } from "effect/testing"
import { Supervisor, Task } from "@fiberbot/core"
import { settle } from "./helpers.ts"

interface Log {
  readonly events: Array<string>
  readonly starts: Map<string, number>
}

const makeLog = (): Log => ({ events: [], starts: new Map() })

/** A child that records its starts and stops, then behaves as `body` says on the given start. */
const recorded = (
  log: Log,
  name: string,
  body: (start: number) => Effect.Effect<unknown, unknown, Scope.Scope> = () => Effect.never,
  options?: Parameters<typeof Supervisor.child>[2]
) =>
  Supervisor.child(
    name,
    Effect.gen(function*() {
      const n = (log.starts.get(name) ?? 0) + 1
      log.starts.set(name, n)
      log.events.push(`start ${name}`)
      yield* Effect.addFinalizer((exit) => Effect.sync(() => log.events.push(`${Exit.isFailure(exit) ? "stop" : "end"} ${name}`)))
      return yield* body(n)
    }),
    options
  )

const spec = (children: ReadonlyArray<Supervisor.Child>, overrides: Partial<Supervisor.Spec> = {}): Supervisor.Spec => ({
  strategy: "one_for_one",
  intensity: 10,
  period: "10 seconds",
  backoff: { base: "100 millis", factor: 2, max: "10 seconds", jitter: 0, resetAfter: "1 minute" },
  children,
  ...overrides
})

const failOnFirst = (start: number) => (start === 1 ? Effect.fail("boom") : Effect.never)

const supervise = (s: Supervisor.Spec) =>
  Effect.gen(function*() {
    const registry = new Task.TaskRegistry("test")
    const fiber = yield* Effect.forkChild(Effect.scoped(Supervisor.run(s, registry)))
    yield* settle()
    return { fiber, registry }
  })

const starts = (log: Log) => Object.fromEntries(log.starts)

describe("Supervisor", () => {
  it.effect("one_for_one restarts only the child that failed, after the backoff", () =>
    Effect.gen(function*() {
      const log = makeLog()
      const { fiber, registry } = yield* supervise(spec([recorded(log, "a"), recorded(log, "b", failOnFirst), recorded(log, "c")]))
      assert.deepStrictEqual(starts(log), { a: 1, b: 1, c: 1 })
      yield* TestClock.adjust("100 millis")
      yield* settle()
      assert.deepStrictEqual(starts(log), { a: 1, b: 2, c: 1 })
      assert.strictEqual(registry.list().find((t) => t.name === "worker/b")?.restarts, 1)
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("one_for_all stops the others in reverse order and restarts all in start order", () =>
    Effect.gen(function*() {
      const log = makeLog()
      const { fiber } = yield* supervise(spec([recorded(log, "a"), recorded(log, "b", failOnFirst), recorded(log, "c")], { strategy: "one_for_all" }))
      yield* TestClock.adjust("100 millis")
      yield* settle()
      assert.deepStrictEqual(starts(log), { a: 2, b: 2, c: 2 })
      assert.deepStrictEqual(log.events, ["start a", "start b", "stop b", "start c", "stop c", "stop a", "start a", "start b", "start c"])
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("rest_for_one restarts the failed child and those started after it", () =>
    Effect.gen(function*() {
      const log = makeLog()
      const { fiber } = yield* supervise(spec([recorded(log, "a"), recorded(log, "b", failOnFirst), recorded(log, "c"), recorded(log, "d")], { strategy: "rest_for_one" }))
      yield* TestClock.adjust("100 millis")
      yield* settle()
      assert.deepStrictEqual(starts(log), { a: 1, b: 2, c: 2, d: 2 })
      assert.deepStrictEqual(log.events.slice(5), ["stop d", "stop c", "start b", "start c", "start d"])
      assert.deepStrictEqual(log.events.slice(0, 5), ["start a", "start b", "stop b", "start c", "start d"])
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("restart types: permanent always, transient only after a failure, temporary never", () =>
    Effect.gen(function*() {
      const log = makeLog()
      const returnsOnce = (n: number) => (n === 1 ? Effect.void : Effect.never)
      const { fiber, registry } = yield* supervise(spec([
        recorded(log, "permanent-returns", returnsOnce, { restart: "permanent" }),
        recorded(log, "transient-returns", returnsOnce, { restart: "transient" }),
        recorded(log, "transient-fails", failOnFirst, { restart: "transient" }),
        recorded(log, "transient-dies", (n) => (n === 1 ? Effect.die("defect") : Effect.never), { restart: "transient" }),
        recorded(log, "temporary-fails", failOnFirst, { restart: "temporary" })
      ]))
      yield* TestClock.adjust("1 second")
      yield* settle()
      assert.deepStrictEqual(starts(log), {
        "permanent-returns": 2,
        "transient-returns": 1,
        "transient-fails": 2,
        "transient-dies": 2,
        "temporary-fails": 1
      })
      const state = (name: string) => registry.list().find((t) => t.name === `worker/${name}`)?.state
      assert.strictEqual(state("transient-returns"), "done")
      assert.strictEqual(state("temporary-fails"), "failed")
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("a temporary sibling stopped by one_for_all is not started again", () =>
    Effect.gen(function*() {
      const log = makeLog()
      const { fiber } = yield* supervise(spec([
        recorded(log, "temp", undefined, { restart: "temporary" }),
        recorded(log, "b", failOnFirst)
      ], { strategy: "one_for_all" }))
      yield* TestClock.adjust("100 millis")
      yield* settle()
      assert.deepStrictEqual(starts(log), { temp: 1, b: 2 })
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("more than `intensity` restarts within `period` escalates and stops every child", () =>
    Effect.gen(function*() {
      const log = makeLog()
      const { fiber } = yield* supervise(spec([recorded(log, "a"), recorded(log, "flaky", () => Effect.fail("still down")), recorded(log, "c")], {
        intensity: 2,
        period: "5 seconds"
      }))
      yield* TestClock.adjust("10 seconds")
      yield* settle()
      const exit = yield* Fiber.await(fiber)
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
      assert.strictEqual(error?._tag === "Fail" ? (error.error as Supervisor.SupervisorEscalation)._tag : undefined, "SupervisorEscalation")
      assert.include(String(error?._tag === "Fail" ? (error.error as Error).message : ""), "worker flaky needed 3 restarts within 5s")
      assert.strictEqual(log.starts.get("flaky"), 3)
      assert.deepStrictEqual(log.events.slice(-2), ["stop c", "stop a"])
    }))

  it.effect("restarts spread out in time do not escalate", () =>
    Effect.gen(function*() {
      const log = makeLog()
      let failNow: Deferred.Deferred<void> = Deferred.makeUnsafe()
      const { fiber } = yield* supervise(spec([
        recorded(log, "sometimes", () => Effect.andThen(Deferred.await(failNow), Effect.fail("blip")))
      ], { intensity: 1, period: "5 seconds" }))
      for (let i = 0; i < 4; i++) {
        yield* Deferred.succeed(failNow, undefined)
        yield* settle()
        failNow = Deferred.makeUnsafe()
        yield* TestClock.adjust("6 seconds")
        yield* settle()
      }
      assert.strictEqual(log.starts.get("sometimes"), 5)
      assert.isUndefined(fiber.pollUnsafe())
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("backoff doubles from base, caps at max, and resets after a stable period", () =>
    Effect.gen(function*() {
      const log = makeLog()
      const gate = { failAfter: "0 millis" as string }
      const { fiber } = yield* supervise(spec([
        recorded(log, "down", () => Effect.andThen(Effect.sleep(gate.failAfter as "0 millis"), Effect.fail("down")))
      ], {
        intensity: 100,
        period: "1 second",
        backoff: { base: "100 millis", factor: 2, max: "400 millis", jitter: 0, resetAfter: "5 seconds" }
      }))
      const startsAfter = function*(ms: number) {
        yield* TestClock.adjust(`${ms} millis`)
        yield* settle()
        return log.starts.get("down")
      }
      // first run fails at once (sleep 0 fires on the next adjust)
      assert.strictEqual(yield* startsAfter(0), 1)
      assert.strictEqual(yield* startsAfter(99), 1)
      assert.strictEqual(yield* startsAfter(1), 2) // 100 ms
      assert.strictEqual(yield* startsAfter(199), 2)
      assert.strictEqual(yield* startsAfter(1), 3) // 200 ms
      assert.strictEqual(yield* startsAfter(400), 4) // 400 ms
      assert.strictEqual(yield* startsAfter(399), 4) // capped at 400 ms
      assert.strictEqual(yield* startsAfter(1), 5)
      // now the child runs for 6 s before failing: the backoff starts again from base
      gate.failAfter = "6 seconds"
      assert.strictEqual(yield* startsAfter(400), 6)
      assert.strictEqual(yield* startsAfter(6000), 6)
      assert.strictEqual(yield* startsAfter(100), 7)
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("jitter keeps each delay within [1 - jitter, 1 + jitter] of the backoff", () =>
    Effect.gen(function*() {
      const log = makeLog()
      const { fiber } = yield* supervise(spec([recorded(log, "j", failOnFirst)], {
        backoff: { base: "1000 millis", factor: 2, max: "10 seconds", jitter: 0.5, resetAfter: "1 minute" }
      }))
      yield* TestClock.adjust("499 millis")
      yield* settle()
      assert.strictEqual(log.starts.get("j"), 1)
      yield* TestClock.adjust("1001 millis")
      yield* settle()
      assert.strictEqual(log.starts.get("j"), 2)
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("a child that ignores interruption is given up on after its shutdown timeout, so the others still stop", () =>
    Effect.gen(function*() {
      const log = makeLog()
      const stubborn = Supervisor.child("stubborn", Effect.uninterruptible(Effect.sleep("10 seconds")), { shutdownTimeout: "1 second" })
      const { fiber } = yield* supervise(spec([recorded(log, "a"), stubborn]))
      fiber.interruptUnsafe()
      yield* settle()
      yield* TestClock.adjust("999 millis")
      yield* settle()
      assert.deepStrictEqual(log.events, ["start a"])
      yield* TestClock.adjust("1 millis")
      yield* settle()
      assert.deepStrictEqual(log.events, ["start a", "stop a"]) // not held up by the stubborn child
      assert.isUndefined(fiber.pollUnsafe()) // which still runs, owned by the supervisor
      yield* TestClock.adjust("9 seconds")
      yield* settle()
      assert.isDefined(fiber.pollUnsafe())
    }))

  it("backoffDelay is base * factor^n capped at max", () => {
    const b = { base: "100 millis", factor: 3, max: "1 second", jitter: 0, resetAfter: "1 minute" } as const
    assert.deepStrictEqual([0, 1, 2, 3].map((n) => Supervisor.backoffDelay(b, n)), [100, 300, 900, 1000])
  })
})
