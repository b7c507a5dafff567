import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Alerts, Bot, BotManager } from "@fiberbot/core"
import { LeakCheck, TestAdapter } from "@fiberbot/core/testing"
import { stopNow } from "../guard/support.ts"

const withManager = <A, E>(effect: Effect.Effect<A, E, BotManager>) =>
  LeakCheck.verify(effect).pipe(Effect.provide(BotManager.layer))

const payload = (alerts: ReadonlyArray<{ status: "firing" | "resolved"; labels: Record<string, string>; fingerprint?: string }>) =>
  Alerts.decode(JSON.stringify({ version: "4", status: "firing", alerts }))

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
      if (ghost._tag === "Success") assert.deepStrictEqual(Alerts.apply(manager, ghost.success), { paused: [], released: [], ignored: 2 })
      yield* stopNow(manager, "a")
      yield* stopNow(manager, "b")
    })))
})
