import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import { Alerts, Bot, BotManager } from "@fiberbot/core"
import { LeakCheck, TestAdapter } from "@fiberbot/core/testing"
import { stopNow } from "../guard/support.ts"

const withManager = <A, E>(effect: Effect.Effect<A, E, BotManager>) =>
  LeakCheck.verify(effect).pipe(Effect.provide(BotManager.layer))

const payload = (alerts: ReadonlyArray<{ status: "firing" | "resolved"; labels: Record<string, string>; fingerprint?: string; annotations?: Record<string, string>; endsAt?: string }>) =>
  Alerts.decode(JSON.stringify({ version: "4", status: "firing", alerts }))

const applyOrDie = (manager: BotManager["Service"], decoded: ReturnType<typeof payload>) =>
  decoded._tag === "Success" ? Effect.succeed(Alerts.apply(manager, decoded.success)) : Effect.die(decoded.failure)

const pause = { fiberbot_action: "pause_intake", bot: "a" }

describe("Alerts", () => {
  it("rejects what is not a webhook payload, saying why", () => {
    const bad = ["", "null", "42", "{\"status\":\"firing\"}", "{\"status\":\"firing\",\"alerts\":{}}", JSON.stringify({ status: "firing", alerts: [{ status: "firing" }] })]
    for (const body of bad) {
      const r = Alerts.decode(body)
      assert.strictEqual(r._tag, "Failure", body)
      if (r._tag === "Failure") assert.include(r.failure.message, "not an Alertmanager webhook payload")
    }
    const many = JSON.stringify({ status: "firing", alerts: Array.from({ length: 1001 }, () => ({ status: "firing", labels: {} })) })
    assert.strictEqual(Alerts.decode(many)._tag, "Failure")
  })

  it.effect("without a bot label every running bot pauses; each alert holds on its own, so both must resolve", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      for (const name of ["a", "b"]) yield* manager.start(Bot.make({ name, adapters: [(yield* TestAdapter.make({ name: "t" })).adapter] }))
      const pause = { fiberbot_action: "pause_intake" }
      const fire = payload([{ status: "firing", labels: { alertname: "A", ...pause }, fingerprint: "1" }, { status: "firing", labels: { alertname: "B", ...pause, bot: "a" }, fingerprint: "2" }])
      assert.strictEqual(fire._tag, "Success")
      if (fire._tag !== "Success") return
      const applied = Alerts.apply(manager, fire.success)
      assert.strictEqual(applied.paused.length, 3)
      assert.strictEqual(manager.guard("a")!.breaker.state(), "open")
      assert.strictEqual(manager.guard("b")!.breaker.state(), "open")
      const resolveA = payload([{ status: "resolved", labels: { alertname: "A", ...pause }, fingerprint: "1" }])
      if (resolveA._tag === "Success") Alerts.apply(manager, resolveA.success)
      assert.strictEqual(manager.guard("b")!.breaker.state(), "half_open")
      assert.strictEqual(manager.guard("a")!.breaker.state(), "open") // alert 2 still holds it
      const ghost = payload([{ status: "firing", labels: { ...pause, bot: "ghost" } }, { status: "firing", labels: { alertname: "x" } }])
      if (ghost._tag === "Success") assert.deepStrictEqual(Alerts.apply(manager, ghost.success), { paused: [], released: [], ignored: 2, overflow: 0 })
      yield* stopNow(manager, "a")
      yield* stopNow(manager, "b")
    })))

  it.effect("holds are bounded per breaker: past 1,000 a new fingerprint is counted as overflow, summaries are cut to 1 KiB, reset clears it all", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      yield* manager.start(Bot.make({ name: "a", adapters: [(yield* TestAdapter.make({ name: "t" })).adapter] }))
      const breaker = manager.guard("a")!.breaker
      const first = yield* applyOrDie(manager, payload(Array.from({ length: 1000 }, (_, i) => ({
        status: "firing" as const,
        labels: { alertname: "Leak", ...pause },
        fingerprint: `fp${i}`,
        annotations: { summary: i === 0 ? "s".repeat(64 * 1024) : "short" }
      }))))
      assert.strictEqual(first.paused.length, 1000)
      assert.strictEqual(first.overflow, 0)
      const more = yield* applyOrDie(manager, payload(Array.from({ length: 5 }, (_, i) => ({ status: "firing" as const, labels: { alertname: "Leak", ...pause }, fingerprint: `new${i}` }))))
      assert.deepStrictEqual({ paused: more.paused.length, overflow: more.overflow }, { paused: 0, overflow: 5 })
      const renewed = yield* applyOrDie(manager, payload([{ status: "firing", labels: { alertname: "Leak", ...pause }, fingerprint: "fp1" }]))
      assert.strictEqual(renewed.paused.length, 1) // a held fingerprint renews past the bound
      const stats = breaker.stats()
      assert.strictEqual(stats.state, "open")
      assert.strictEqual(Object.keys(stats.holds).length, 1000)
      assert.strictEqual(stats.holdsOverflow, 5)
      assert.isAtMost(stats.holds["alert:fp0"]!.length, 1024)
      // no fingerprint: the labels are the id, hashed when long so the key stays small
      const long = yield* applyOrDie(manager, payload([{ status: "resolved", labels: { alertname: "L", ...pause, x: "y".repeat(500) } }]))
      assert.match(long.released[0]!.id, /^sha256:[0-9a-f]{64}$/)
      breaker.reset("operator")
      assert.deepStrictEqual(breaker.stats().holds, {})
      assert.strictEqual(breaker.stats().holdsOverflow, 0)
      assert.strictEqual(breaker.state(), "closed")
      yield* stopNow(manager, "a")
    })))

  it.effect("a firing alert with a future endsAt holds until then unless sent again; the zero time Alertmanager sends holds until resolved", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      yield* manager.start(Bot.make({ name: "a", adapters: [(yield* TestAdapter.make({ name: "t" })).adapter] }))
      const breaker = manager.guard("a")!.breaker
      const fire = (fingerprint: string, endsAt: string) => applyOrDie(manager, payload([{ status: "firing", labels: { alertname: "Leak", ...pause }, fingerprint, endsAt }]))
      yield* fire("soon", new Date(60_000).toISOString()) // TestClock starts at 0
      yield* TestClock.adjust("59 seconds")
      assert.strictEqual(breaker.state(), "open")
      yield* fire("soon", new Date(120_000).toISOString()) // resent with a fresh endsAt
      yield* TestClock.adjust("1 second")
      assert.strictEqual(breaker.state(), "open")
      yield* TestClock.adjust("60 seconds") // not resent by its end: over
      assert.strictEqual(breaker.state(), "half_open")
      assert.deepStrictEqual(breaker.stats().holds, {})

      yield* fire("zero", "0001-01-01T00:00:00Z")
      yield* TestClock.adjust("1 day")
      assert.strictEqual(breaker.state(), "open")
      yield* applyOrDie(manager, payload([{ status: "resolved", labels: { alertname: "Leak", ...pause }, fingerprint: "zero" }]))
      assert.strictEqual(breaker.state(), "half_open")
      yield* stopNow(manager, "a")
    })))
})
