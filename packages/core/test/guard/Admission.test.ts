import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import { Admission, Bot, BotManager, Router } from "@fiberbot/core"
import { LeakCheck, TestAdapter } from "@fiberbot/core/testing"
import { eventually } from "../helpers.ts"
import { stopNow } from "./support.ts"

const withManager = <A, E>(effect: Effect.Effect<A, E, BotManager>) =>
  LeakCheck.verify(effect).pipe(Effect.provide(BotManager.layer))

describe("Admission", () => {
  it.effect("above the limit an offer is answered busy at once; a finished run frees its permit", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const test = yield* TestAdapter.make()
      const gate = yield* Deferred.make<void>()
      let started = 0
      yield* manager.start(Bot.make({
        name: "capped",
        adapters: [test.adapter],
        router: Router.empty.on("message", () => Effect.andThen(Effect.sync(() => started++), Deferred.await(gate))),
        options: { admission: { limit: 3 } }
      }))
      for (let i = 0; i < 3; i++) assert.strictEqual(yield* test.message(`c${i}`, "x"), "accepted")
      assert.strictEqual(yield* test.message("c3", "x"), "busy")
      assert.strictEqual(yield* test.message("c0", "x"), "busy") // same key or not: the cap counts updates
      const guard = manager.guard("capped")!
      assert.deepStrictEqual(guard.admission!.stats(), { limit: 3, held: 3, rejected: 2, adaptive: false })
      yield* eventually(() => started === 3)
      yield* Deferred.succeed(gate, undefined)
      yield* eventually(() => guard.admission!.stats().held === 0)
      assert.strictEqual(yield* test.message("c4", "x"), "accepted")
      yield* stopNow(manager, "capped")
    })))

  it.effect("drop-oldest drops give their permit back, so the count never drifts", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const test = yield* TestAdapter.make()
      const gate = yield* Deferred.make<void>()
      yield* manager.start(Bot.make({
        name: "dropper",
        adapters: [test.adapter],
        router: Router.empty.on("message", () => Deferred.await(gate)),
        options: { concurrency: 1, intake: { capacity: 2, policy: "drop-oldest" }, admission: { limit: 100 } }
      }))
      for (let i = 0; i < 20; i++) yield* test.message(`c${i}`, "x")
      const guard = manager.guard("dropper")!
      yield* eventually(() => guard.intake().dropped > 0)
      // 1 running + 2 queued (+ 1 the dispatcher may hold) are held; the dropped ones are not.
      assert.isAtMost(guard.admission!.stats().held, 4)
      assert.strictEqual(guard.admission!.stats().held + guard.intake().dropped, 20)
      yield* Deferred.succeed(gate, undefined)
      yield* eventually(() => guard.admission!.stats().held === 0)
      yield* stopNow(manager, "dropper")
    })))

  it("AIMD backs off on slow or timed-out runs and grows only while the limit is used", () => {
    const aimd = new Admission.Aimd({ initial: 10, min: 2, max: 12, targetLatencyMs: 100 })
    assert.strictEqual(aimd.sample({ latencyMs: 10, dropped: false, inFlight: 1 }), 10) // idle: no growth
    assert.strictEqual(aimd.sample({ latencyMs: 10, dropped: false, inFlight: 9 }), 11)
    assert.strictEqual(aimd.sample({ latencyMs: 10, dropped: false, inFlight: 9 }), 12)
    assert.strictEqual(aimd.sample({ latencyMs: 10, dropped: false, inFlight: 12 }), 12) // max
    assert.strictEqual(aimd.sample({ latencyMs: 10, dropped: true, inFlight: 12 }), 10)
    for (let i = 0; i < 50; i++) aimd.sample({ latencyMs: 500, dropped: false, inFlight: 12 })
    assert.strictEqual(aimd.limit, 2) // min
  })

  it("AIMD converges under load: a service that slows past 40 concurrent runs settles the limit near 40", () => {
    // Queueing model: up to `capacity` runs take `base` ms; beyond it, latency grows with the overload
    // (Little's law). Offered load always fills the limit. Target latency 1.2 x base.
    const capacity = 40
    const base = 50
    const latency = (inFlight: number) => base * Math.max(1, inFlight / capacity)
    const aimd = new Admission.Aimd({ initial: 500, min: 1, max: 1000, targetLatencyMs: base * 1.2 })
    const trace: Array<number> = []
    for (let step = 0; step < 2000; step++) {
      const inFlight = aimd.limit
      aimd.sample({ latencyMs: latency(inFlight), dropped: false, inFlight })
      trace.push(aimd.limit)
    }
    const firstInBand = trace.findIndex((l) => l <= capacity * 1.2)
    const tail = trace.slice(-500)
    // From 500 it reaches the band in under 30 samples (multiplicative decrease) and stays there:
    // a sawtooth between 0.9 x 48 and 48 (the limit where latency crosses the target).
    assert.isBelow(firstInBand, 30)
    assert.isAtLeast(Math.min(...tail), Math.floor(capacity * 1.2 * 0.9) - 1)
    assert.isAtMost(Math.max(...tail), capacity * 1.2 + 1)
  })
})
