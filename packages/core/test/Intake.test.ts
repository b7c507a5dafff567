import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import { Adapter, Bot, BotManager, Intake, Router, Update } from "@fiberbot/core"
import { LeakCheck, TestAdapter } from "@fiberbot/core/testing"
import { settle } from "./helpers.ts"

const update = (n: number) => Update.make({ adapter: "t", kind: "message", id: String(n), key: "k", payload: n })

describe("Intake", () => {
  it.effect("backpressure: a full intake makes the source wait", () =>
    Effect.gen(function*() {
      const intake = yield* Intake.make({ capacity: 2, policy: "backpressure" })
      assert.strictEqual(yield* intake.offer(update(1)), "accepted")
      assert.strictEqual(yield* intake.offer(update(2)), "accepted")
      const blocked = yield* Effect.forkChild(intake.offer(update(3)))
      yield* settle()
      assert.isUndefined(blocked.pollUnsafe(), "the source was not held back")
      assert.strictEqual((yield* intake.take).id, "1")
      assert.strictEqual(yield* Fiber.join(blocked), "accepted")
      assert.deepStrictEqual(intake.stats(), { accepted: 3, dropped: 0, rejected: 0, depth: 2 })
    }))

  it.effect("drop-oldest: a full intake drops the oldest waiting update and counts it", () =>
    Effect.gen(function*() {
      const intake = yield* Intake.make({ capacity: 2, policy: "drop-oldest" })
      for (let i = 1; i <= 5; i++) assert.strictEqual(yield* intake.offer(update(i)), "accepted")
      assert.deepStrictEqual(intake.stats(), { accepted: 5, dropped: 3, rejected: 0, depth: 2 })
      assert.deepStrictEqual([(yield* intake.take).id, (yield* intake.take).id], ["4", "5"])
    }))

  it.effect("drop-oldest: a dropped update hears onDone(true), so its source may confirm past it; kept ones do not", () =>
    Effect.gen(function*() {
      const intake = yield* Intake.make({ capacity: 2, policy: "drop-oldest" })
      const done: Array<[string, boolean]> = []
      const tracked = (n: number) =>
        Update.make({ adapter: "t", kind: "message", id: String(n), key: "k", payload: n, onDone: (handled) => done.push([String(n), handled]) })
      for (let i = 1; i <= 5; i++) assert.strictEqual(intake.tryOffer(tracked(i)), "accepted")
      assert.deepStrictEqual(done, [["1", true], ["2", true], ["3", true]])
      assert.deepStrictEqual(intake.stats(), { accepted: 5, dropped: 3, rejected: 0, depth: 2 })
      assert.deepStrictEqual([intake.poll()?.id, intake.poll()?.id], ["4", "5"])
      assert.strictEqual(done.length, 3, "updates still delivered are the dispatcher's to finish")
    }))

  it.effect("an onDone that throws stays inside: neither the intake's drop nor a finished run lets it out", () =>
    LeakCheck.verify(Effect.gen(function*() {
      // a drop happens inside the adapter's own call, often a socket's callback: a throw there ends the process
      const intake = yield* Intake.make({ capacity: 1, policy: "drop-oldest" })
      const throwing = (n: number) =>
        Update.make({ adapter: "t", kind: "message", id: String(n), key: "k", payload: n, onDone: () => {
          throw new Error("adapter bug")
        } })
      assert.strictEqual(intake.tryOffer(throwing(1)), "accepted")
      assert.strictEqual(intake.tryOffer(throwing(2)), "accepted", "the drop of 1 did not throw")
      assert.strictEqual(intake.stats().dropped, 1)
      // a run that ends while it starts calls onDone in the adapter's call too
      const manager = yield* BotManager
      let ctx: Adapter.AdapterContext | undefined
      const source = Adapter.make({ name: "src", start: (c) => Effect.sync(() => void (ctx = c)), reply: () => Effect.void })
      let handled = 0
      yield* manager.start(Bot.make({ name: "throwing", adapters: [source], router: Router.empty.on("message", () => Effect.sync(() => void handled++)) }))
      yield* settle()
      for (let i = 1; i <= 3; i++) assert.strictEqual(ctx!.tryOffer(throwing(i)), "accepted")
      yield* settle()
      assert.strictEqual(handled, 3, "the bot went on after each")
      yield* manager.stop("throwing", { deadline: "5 seconds" })
    }).pipe(Effect.scoped)).pipe(Effect.provide(BotManager.layer)))

  it.effect("drop-oldest in a running bot: every dropped update is finished and counted, none lost track of", () =>
    LeakCheck.verify(Effect.gen(function*() {
      const manager = yield* BotManager
      let ctx: Adapter.AdapterContext | undefined
      // an adapter of its own: the update's onDone must reach the intake untouched
      const source = Adapter.make({ name: "src", start: (c) => Effect.sync(() => void (ctx = c)), reply: () => Effect.void })
      const gate = yield* Deferred.make<void>()
      // a failed assertion opens the gate too, so the bot stops at once instead of at its deadline
      yield* Effect.addFinalizer(() => Deferred.succeed(gate, undefined))
      const done = new Map<string, boolean>()
      yield* manager.start(Bot.make({
        name: "dropping",
        adapters: [source],
        router: Router.empty.on("message", () => Deferred.await(gate)),
        options: { concurrency: 1, intake: { capacity: 2, policy: "drop-oldest" } }
      }))
      for (let i = 1; i <= 10; i++) {
        const u = Update.make({ adapter: "src", kind: "message", id: String(i), key: "k", payload: i, text: `m${i}`, onDone: (h) => done.set(String(i), h) })
        assert.strictEqual(yield* ctx!.offer(u), "accepted")
        yield* settle()
      }
      // 1 runs, 9 and 10 wait in the intake, 2..8 were dropped
      assert.deepStrictEqual([...done.keys()].sort((a, b) => Number(a) - Number(b)), ["2", "3", "4", "5", "6", "7", "8"])
      assert.isTrue([...done.values()].every((h) => h))
      const [status] = yield* manager.status()
      assert.strictEqual(status?.intake.dropped, 7)
      yield* Deferred.succeed(gate, undefined)
      yield* manager.stop("dropping", { deadline: "5 seconds" })
      assert.strictEqual(done.size, 10, "every update offered was finished one way or the other")
    }).pipe(Effect.scoped)).pipe(Effect.provide(BotManager.layer)))

  it.effect("reject-busy: a full intake answers busy at once and counts it", () =>
    Effect.gen(function*() {
      const intake = yield* Intake.make({ capacity: 2, policy: "reject-busy" })
      assert.strictEqual(yield* intake.offer(update(1)), "accepted")
      assert.strictEqual(yield* intake.offer(update(2)), "accepted")
      assert.strictEqual(yield* intake.offer(update(3)), "busy")
      assert.deepStrictEqual(intake.stats(), { accepted: 2, dropped: 0, rejected: 1, depth: 2 })
      yield* intake.take
      assert.strictEqual(yield* intake.offer(update(4)), "accepted")
    }))

  it.effect("tryOffer answers without waiting; undefined only when a backpressured intake is full", () =>
    Effect.gen(function*() {
      const intake = yield* Intake.make({ capacity: 2, policy: "backpressure" })
      assert.strictEqual(intake.tryOffer(update(1)), "accepted")
      assert.strictEqual(intake.tryOffer(update(2)), "accepted")
      assert.isUndefined(intake.tryOffer(update(3)))
      assert.deepStrictEqual(intake.stats(), { accepted: 2, dropped: 0, rejected: 0, depth: 2 })
      assert.strictEqual(intake.poll()?.id, "1")
      assert.strictEqual(intake.tryOffer(update(4)), "accepted")
      const busy = yield* Intake.make({ capacity: 1, policy: "reject-busy" })
      assert.strictEqual(busy.tryOffer(update(1)), "accepted")
      assert.strictEqual(busy.tryOffer(update(2)), "busy")
      yield* busy.close
      assert.strictEqual(busy.tryOffer(update(3)), "closed")
    }))

  it.effect("close: later offers answer closed; queued updates are still taken, then Done", () =>
    Effect.gen(function*() {
      const intake = yield* Intake.make({ capacity: 4, policy: "backpressure" })
      yield* intake.offer(update(1))
      yield* intake.close
      assert.strictEqual(yield* intake.offer(update(2)), "closed")
      assert.strictEqual((yield* intake.take).id, "1")
      const end = yield* Effect.flip(intake.take)
      assert.strictEqual(end._tag, "Done")
    }))

  it.effect("close: a source already waiting for room is still delivered, later ones answer closed", () =>
    Effect.gen(function*() {
      const intake = yield* Intake.make({ capacity: 1, policy: "backpressure" })
      assert.strictEqual(yield* intake.offer(update(1)), "accepted")
      const waiting = yield* Effect.forkChild(intake.offer(update(2)))
      yield* settle()
      assert.isUndefined(waiting.pollUnsafe())
      yield* intake.close
      assert.strictEqual(yield* intake.offer(update(3)), "closed")
      assert.strictEqual((yield* intake.take).id, "1")
      assert.strictEqual(yield* Fiber.join(waiting), "accepted")
      assert.strictEqual((yield* intake.take).id, "2")
      assert.strictEqual((yield* Effect.flip(intake.take))._tag, "Done")
    }))

  it.effect("a bot with reject-busy answers busy to its adapter while handlers are saturated", () =>
    LeakCheck.verify(Effect.gen(function*() {
      const manager = yield* BotManager
      const test = yield* TestAdapter.make()
      const gate = yield* Deferred.make<void>()
      yield* manager.start(Bot.make({
        name: "busy-bot",
        adapters: [test.adapter],
        router: Router.empty.on("message", () => Deferred.await(gate)),
        options: { concurrency: 1, intake: { capacity: 1, policy: "reject-busy" } }
      }))
      assert.strictEqual(yield* test.message("a", "1"), "accepted") // runs
      yield* settle()
      assert.strictEqual(yield* test.message("b", "2"), "accepted") // waits in the intake: no permit free
      yield* settle()
      assert.strictEqual(yield* test.message("c", "3"), "busy")
      assert.strictEqual(yield* test.message("d", "4"), "busy")
      const [status] = yield* manager.status()
      assert.deepStrictEqual(status?.intake, { accepted: 2, dropped: 0, rejected: 2, depth: 1 })
      const stopping = yield* Effect.forkChild(manager.stop("busy-bot"))
      yield* settle()
      yield* Deferred.succeed(gate, undefined)
      const report = yield* Fiber.join(stopping)
      assert.strictEqual(report.drained, 2) // the running one and the one still in the intake
      assert.strictEqual(report.undelivered, 0)
    })).pipe(Effect.provide(BotManager.layer)))

  it.effect("a bot stopping while a source waits for room still handles what that source offered", () =>
    LeakCheck.verify(Effect.gen(function*() {
      const manager = yield* BotManager
      const test = yield* TestAdapter.make()
      const gate = yield* Deferred.make<void>()
      const handled: Array<string> = []
      yield* manager.start(Bot.make({
        name: "waiting-source",
        adapters: [test.adapter],
        router: Router.empty.on("message", (ctx) => Effect.andThen(Deferred.await(gate), Effect.sync(() => handled.push(ctx.text!)))),
        options: { concurrency: 1, intake: { capacity: 1, policy: "backpressure" } }
      }))
      assert.strictEqual(yield* test.message("a", "1"), "accepted") // runs
      yield* settle()
      assert.strictEqual(yield* test.message("a", "2"), "accepted") // in the intake
      const waiting = yield* Effect.forkChild(test.message("a", "3")) // waits for room
      yield* settle()
      assert.isUndefined(waiting.pollUnsafe())
      const stopping = yield* Effect.forkChild(manager.stop("waiting-source", { deadline: "10 seconds" }))
      yield* settle()
      yield* Deferred.succeed(gate, undefined)
      const report = yield* Fiber.join(stopping)
      assert.strictEqual(yield* Fiber.join(waiting), "accepted")
      assert.deepStrictEqual(handled, ["1", "2", "3"])
      assert.strictEqual(report.drained, 3)
      assert.strictEqual(report.undelivered, 0)
    })).pipe(Effect.provide(BotManager.layer)))
})
