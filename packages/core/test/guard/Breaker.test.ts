import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Stream } from "effect"
import { TestClock } from "effect/testing"
import { Bot, BotManager, Breaker, Router } from "@fiberbot/core"
import { LeakCheck, TestAdapter } from "@fiberbot/core/testing"
import { eventually, settle } from "../helpers.ts"
import { stopNow } from "./support.ts"

const withManager = <A, E>(effect: Effect.Effect<A, E, BotManager>) =>
  LeakCheck.verify(effect).pipe(Effect.provide(BotManager.layer))

const clocked = (options: Breaker.Options = {}) => {
  const t = { now: 0 }
  const b = Breaker.makeUnsafe({ bot: "b", windowSize: 10, minimumCalls: 4, waitInOpenMs: 1000, permittedProbes: 2, ...options }, () => t.now)
  return { b, t }
}

describe("Breaker", () => {
  it("stays closed below minimum calls, opens at the failure-rate threshold", () => {
    const { b } = clocked({ failureRateThreshold: 0.5 })
    for (let i = 0; i < 3; i++) b.record({ failure: true, durationMs: 1 })
    assert.strictEqual(b.state(), "closed") // 3 < minimumCalls
    b.record({ failure: false, durationMs: 1 })
    assert.strictEqual(b.state(), "open") // 3 of 4 failed
    assert.isFalse(b.tryAcquire())
    assert.strictEqual(b.stats().rejected, 1)
    assert.match(b.history()[0]!.reason, /failure rate 75% over the last 4 runs/)
  })

  it("the window slides: old failures fall out", () => {
    const { b } = clocked({ failureRateThreshold: 0.5, windowSize: 4 })
    b.record({ failure: true, durationMs: 1 })
    for (let i = 0; i < 10; i++) b.record({ failure: false, durationMs: 1 })
    b.record({ failure: true, durationMs: 1 })
    assert.strictEqual(b.state(), "closed")
    assert.strictEqual(b.stats().failureRate, 0.25)
  })

  it("opens on the slow-call rate", () => {
    const { b } = clocked({ slowCallRateThreshold: 0.5, slowCallMs: 100 })
    for (let i = 0; i < 4; i++) b.record({ failure: false, durationMs: i < 2 ? 150 : 5 })
    assert.strictEqual(b.state(), "open")
    assert.match(b.history()[0]!.reason, /slow-call rate 50%/)
  })

  it("waits in open, admits only the permitted probes half-open, closes when they pass, reopens when they fail", () => {
    const { b, t } = clocked()
    for (let i = 0; i < 4; i++) b.record({ failure: true, durationMs: 1 })
    t.now = 999
    assert.isFalse(b.tryAcquire())
    t.now = 1000
    assert.isTrue(b.tryAcquire())
    assert.isTrue(b.tryAcquire())
    assert.isFalse(b.tryAcquire()) // only 2 probes
    assert.strictEqual(b.state(), "half_open")
    b.record({ failure: true, durationMs: 1 })
    b.record({ failure: true, durationMs: 1 })
    assert.strictEqual(b.state(), "open")
    t.now = 2000
    assert.isTrue(b.tryAcquire())
    b.record({ failure: false, durationMs: 1 })
    b.record({ failure: false, durationMs: 1 })
    assert.strictEqual(b.state(), "closed")
    assert.deepStrictEqual(b.history().map((x) => `${x.from}->${x.to}`), ["closed->open", "open->half_open", "half_open->open", "open->half_open", "half_open->closed"])
  })

  it("holds keep it open past the wait until every source releases; release goes half-open", () => {
    const { b, t } = clocked()
    b.hold("watchdog:*", "fibers grew")
    b.hold("alert:abc", "FiberLeak firing")
    t.now = 60_000
    assert.strictEqual(b.state(), "open")
    b.release("watchdog:*")
    assert.strictEqual(b.state(), "open")
    assert.deepStrictEqual(Object.keys(b.stats().holds), ["alert:abc"])
    b.release("alert:abc")
    assert.strictEqual(b.state(), "half_open")
    b.release("unknown") // nothing happens
    assert.strictEqual(b.state(), "half_open")
  })

  it("operators force it open or closed; reset clears holds and the window", () => {
    const { b } = clocked()
    b.forceOpen("maintenance")
    for (let i = 0; i < 10; i++) b.record({ failure: false, durationMs: 1 })
    assert.strictEqual(b.state(), "forced_open")
    assert.isFalse(b.tryAcquire())
    b.forceClosed("let it through")
    for (let i = 0; i < 10; i++) b.record({ failure: true, durationMs: 1 })
    assert.isTrue(b.tryAcquire())
    assert.strictEqual(b.state(), "forced_closed")
    b.hold("alert:x", "firing")
    assert.strictEqual(b.state(), "forced_closed") // operators win over automatic holds
    b.reset("done")
    assert.strictEqual(b.state(), "closed")
    assert.deepStrictEqual(b.stats().holds, {})
  })

  it("holds are bounded: a new source beyond maxHolds is counted, not kept, and the circuit stays open; reasons are cut to 1 KiB; reset clears all", () => {
    const { b } = clocked({ maxHolds: 3 })
    for (let i = 0; i < 3; i++) assert.isTrue(b.hold(`alert:${i}`, "x".repeat(64 * 1024)))
    assert.isFalse(b.hold("alert:3", "one too many"))
    assert.isFalse(b.hold("alert:4", "one too many"))
    assert.isTrue(b.hold("alert:0", "renewed")) // a kept source may always renew
    const stats = b.stats()
    assert.strictEqual(stats.state, "open")
    assert.deepStrictEqual(Object.keys(stats.holds), ["alert:0", "alert:1", "alert:2"])
    assert.strictEqual(stats.holdsOverflow, 2)
    assert.strictEqual(stats.holds["alert:0"], "renewed")
    assert.strictEqual(stats.holds["alert:1"]!.length, Breaker.maxHoldReason)
    assert.isTrue(stats.holds["alert:1"]!.endsWith("…"))
    assert.isAtMost(b.history()[0]!.reason.length, Breaker.maxHoldReason + 20)
    b.reset("operator")
    assert.deepStrictEqual(b.stats().holds, {})
    assert.strictEqual(b.stats().holdsOverflow, 0)
    assert.strictEqual(b.state(), "closed")
  })

  it("a hold with a future `until` lapses then unless renewed, and the breaker probes; a past `until` is no end", () => {
    const { b, t } = clocked()
    b.hold("alert:a", "firing", { until: 5_000 })
    b.hold("alert:b", "firing", { until: 8_000 })
    b.hold("alert:old", "firing", { until: -1 }) // Alertmanager's zero time: held until released
    b.release("alert:old")
    t.now = 4_999
    assert.strictEqual(b.state(), "open")
    b.hold("alert:a", "firing", { until: 20_000 }) // sent again with a fresh end
    t.now = 8_000
    assert.strictEqual(b.state(), "open")
    assert.deepStrictEqual(Object.keys(b.stats().holds), ["alert:a"])
    t.now = 20_000
    assert.isTrue(b.tryAcquire()) // the door sees the lapse too: a probe
    assert.strictEqual(b.state(), "half_open")
    assert.match(b.history().at(-1)!.reason, /alert:a lapsed/)
    assert.deepStrictEqual(b.stats().holds, {})
  })

  it("judges half-open probes even when it records no outcomes while closed", () => {
    const { b } = clocked({ recordOutcomes: false })
    for (let i = 0; i < 10; i++) b.record({ failure: true, durationMs: 1 })
    assert.strictEqual(b.state(), "closed") // not recording: failures do not open it
    b.hold("alert:x", "firing")
    b.release("alert:x")
    assert.isTrue(b.tryAcquire())
    assert.isTrue(b.tryAcquire())
    b.record({ failure: false, durationMs: 1 })
    b.record({ failure: false, durationMs: 1 })
    assert.strictEqual(b.state(), "closed")
  })

  it("lost probes: a cancelled probe frees its permit, and a round nobody answers starts again after the wait", () => {
    const { b, t } = clocked()
    b.hold("w", "x")
    b.release("w")
    assert.isTrue(b.tryAcquire())
    assert.isTrue(b.tryAcquire())
    assert.isFalse(b.tryAcquire())
    b.cancel() // the intake refused that update
    assert.isTrue(b.tryAcquire())
    assert.isFalse(b.tryAcquire())
    t.now += 1000 // no answer within the wait: a new round
    assert.isTrue(b.tryAcquire())
    b.record({ failure: false, durationMs: 1 })
    b.record({ failure: false, durationMs: 1 })
    assert.strictEqual(b.state(), "closed")
    b.cancel() // harmless when closed
    assert.strictEqual(b.state(), "closed")
  })

  it("rejects invalid options with a RangeError naming the field", () => {
    assert.throws(() => Breaker.makeUnsafe({ bot: "b", failureRateThreshold: 2 }, () => 0), /failureRateThreshold/)
    assert.throws(() => Breaker.makeUnsafe({ bot: "b", permittedProbes: 0 }, () => 0), /permittedProbes/)
    assert.throws(() => Breaker.makeUnsafe({ bot: "b", maxHolds: 0 }, () => 0), /maxHolds/)
  })

  it.effect("on a bot: failing handlers open the breaker, offers answer busy, TestClock's wait lets probes in, passing probes close it", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const test = yield* TestAdapter.make()
      let healthy = false
      const probesHeld = yield* Deferred.make<void>()
      yield* manager.start(Bot.make({
        name: "flaky",
        adapters: [test.adapter],
        // healthy runs wait for `probesHeld`, so the probes are still running when the next offer comes
        router: Router.empty.on("message", () => Effect.suspend(() => healthy ? Deferred.await(probesHeld) : Effect.fail("down"))),
        options: { breaker: { windowSize: 10, minimumCalls: 5, failureRateThreshold: 0.5, waitInOpenMs: 10_000, permittedProbes: 3 } }
      }))
      const breaker = manager.guard("flaky")!.breaker
      const seen = yield* Effect.forkChild(Stream.runCollect(Stream.take(breaker.transitions, 3)))
      yield* settle()
      for (let i = 0; i < 5; i++) assert.strictEqual(yield* test.message(`c${i}`, "x"), "accepted")
      yield* eventually(() => breaker.state() === "open")
      assert.strictEqual(yield* test.message("c9", "x"), "busy")
      assert.strictEqual((yield* manager.status())[0]!.breaker, "open")
      healthy = true
      yield* TestClock.adjust("10 seconds")
      for (let i = 0; i < 3; i++) assert.strictEqual(yield* test.message(`p${i}`, "x"), "accepted")
      assert.strictEqual(yield* test.message("p4", "x"), "busy") // probes used up
      yield* Deferred.succeed(probesHeld, undefined)
      yield* eventually(() => breaker.state() === "closed")
      assert.strictEqual(yield* test.message("after", "x"), "accepted")
      const transitions = yield* Fiber.join(seen)
      assert.deepStrictEqual(transitions.map((t) => t.to), ["open", "half_open", "closed"])
      yield* stopNow(manager, "flaky")
    })))

  it.effect("a bot without breaker options closes again after an external hold: its probes are judged", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const test = yield* TestAdapter.make()
      let runs = 0
      yield* manager.start(Bot.make({
        name: "held",
        adapters: [test.adapter],
        router: Router.empty.on("message", () => Effect.sync(() => runs++))
      }))
      const breaker = manager.guard("held")!.breaker
      breaker.hold("alert:1", "firing")
      assert.strictEqual(yield* test.message("c", "x"), "busy")
      breaker.release("alert:1")
      for (let i = 0; i < 10; i++) assert.strictEqual(yield* test.message(`c${i}`, "x"), "accepted") // 10 probes by default
      yield* eventually(() => breaker.state() === "closed")
      assert.strictEqual(runs, 10)
      yield* stopNow(manager, "held")
    })))

  it.effect("a bot without breaker options never trips on failures, and an invalid breaker option is a BotConfigError", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const test = yield* TestAdapter.make()
      let runs = 0
      yield* manager.start(Bot.make({
        name: "plain",
        adapters: [test.adapter],
        router: Router.empty.on("message", () => Effect.andThen(Effect.sync(() => runs++), Effect.fail("boom")))
      }))
      for (let i = 0; i < 200; i++) assert.strictEqual(yield* test.message(`c${i % 7}`, "x"), "accepted")
      yield* eventually(() => runs === 200)
      assert.strictEqual(manager.guard("plain")!.breaker.state(), "closed")
      yield* stopNow(manager, "plain")
      const bad = yield* Effect.flip(manager.start(Bot.make({ name: "bad", options: { breaker: { failureRateThreshold: 7 } } })))
      assert.strictEqual(bad._tag, "BotConfigError")
      assert.include(bad.message, "failureRateThreshold")
    })))
})
