import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Redacted } from "effect"
import { Bot, BotManager, DebugServer, HeapSnapshot, Router } from "@fiberbot/core"
import { LeakCheck, TestAdapter } from "@fiberbot/core/testing"
import { eventually } from "../helpers.ts"

const withManager = <A, E>(effect: Effect.Effect<A, E, BotManager>) =>
  LeakCheck.verify(effect).pipe(Effect.provide(BotManager.layer))

const token = Redacted.make("s3cret-token")

interface Res {
  readonly status: number
  readonly body: string
  readonly headers: Headers
}
const call = (url: string, init: RequestInit = {}): Effect.Effect<Res> =>
  Effect.promise(async (signal) => {
    const res = await fetch(url, { ...init, signal })
    return { status: res.status, body: await res.text(), headers: res.headers }
  }).pipe(Effect.timeout("5 seconds"), Effect.orDie)

const auth = { authorization: "Bearer s3cret-token" }

/** A running bot whose handler runs wait for `gate`, and a debug server in front of the manager. */
const setup = (options: DebugServer.Options = {}) =>
  Effect.gen(function*() {
    const manager = yield* BotManager
    const test = yield* TestAdapter.make()
    const gate = yield* Deferred.make<void>()
    yield* manager.start(Bot.make({
      name: "dbg",
      adapters: [test.adapter],
      router: Router.empty.on("message", () => Deferred.await(gate))
    }))
    yield* Effect.addFinalizer(() => Effect.andThen(Deferred.succeed(gate, undefined), Effect.ignore(manager.stop("dbg", { deadline: "2 seconds" }))))
    const server = yield* DebugServer.make({ token, ...options })
    return { manager, test, gate, server }
  })

describe("DebugServer", () => {
  it.live("binds 127.0.0.1 on an OS port; health, readiness, metrics, dumps and diffs", () =>
    withManager(Effect.scoped(Effect.gen(function*() {
      const { server, test, manager } = yield* setup()
      assert.strictEqual(server.host, "127.0.0.1")
      assert.isAbove(server.port, 0)
      assert.strictEqual((yield* call(`${server.url}/healthz`)).body, "ok\n")
      assert.strictEqual((yield* call(`${server.url}/readyz`)).status, 200)

      const first = yield* call(`${server.url}/debug/fibers?debug=1`)
      const from = first.headers.get("x-fiberbot-snapshot")!
      assert.match(first.body, /^fiber profile: total \d+\n/)
      for (let i = 0; i < 15; i++) yield* test.message(`c${i}`, "x")
      // runs start on the scheduler's next turn: wait until all 15 are running
      yield* eventually(() => manager.registry.fibers({ bot: "dbg" }).filter((f) => f.task === "handler/message").length === 15)
      const second = yield* call(`${server.url}/debug/fibers?debug=1`)
      const to = second.headers.get("x-fiberbot-snapshot")!
      assert.match(second.body.split("\n")[1]!, /^\d+ @ bot=dbg task=handler\/message/)
      const full = yield* call(`${server.url}/debug/fibers?debug=2`)
      assert.match(full.body, /fiber #\d+ \[(running|suspended), [^\]]+\]: bot=dbg task=handler\/message( parent=#\d+)?$/m)
      const asJson = JSON.parse((yield* call(`${server.url}/debug/fibers?debug=2`, { headers: { accept: "application/json" } })).body)
      assert.strictEqual(asJson.total, asJson.fibers.length)
      assert.hasAllKeys(asJson.fibers[0], ["id", "bot", "task", "parent", "ageMs", "state", "span"])

      const diff = yield* call(`${server.url}/debug/fibers/diff?from=${from}&to=${to}`)
      assert.strictEqual(diff.status, 200)
      assert.match(diff.body, /^\+(1[5-9]|[2-9]\d) (appeared|grew) \(\d+ -> \d+\) bot=dbg task=handler\/message$/m)
      const diffJson = JSON.parse((yield* call(`${server.url}/debug/fibers/diff?from=${from}&to=now&format=json`)).body)
      assert.isAtLeast([...diffJson.appeared, ...diffJson.grew].find((c: { task: string }) => c.task === "handler/message").delta, 15)
      assert.strictEqual((yield* call(`${server.url}/debug/fibers/diff?from=99999&to=now`)).status, 404)
      assert.strictEqual((yield* call(`${server.url}/debug/fibers/diff?from=abc`)).status, 400)
      assert.strictEqual((yield* call(`${server.url}/debug/fibers/diff`)).status, 400)
      assert.strictEqual((yield* call(`${server.url}/debug/fibers?debug=3`)).status, 400)
      assert.strictEqual((yield* call(`${server.url}/nope`)).status, 404)
      assert.strictEqual((yield* call(`${server.url}/metrics`, { method: "DELETE", headers: auth })).status, 405)

      const metrics = (yield* call(`${server.url}/metrics`)).body
      assert.match(metrics, /^fiberbot_fibers_live(\{\})? \d+/m)
      assert.match(metrics, /^fiberbot_bot_fibers_live\{bot="dbg"\} (1[5-9]|[2-9]\d)/m)
      assert.match(metrics, /^fiberbot_task_fibers_live\{bot="dbg",task="handler\/message"\} (1[5-9]|[2-9]\d)$/m)
      assert.match(metrics, /^fiberbot_breaker_state\{bot="dbg",state="closed"\} 1/m)
      assert.match(metrics, /^fiberbot_handlers_in_flight\{bot="dbg"\} 15/m)
      assert.match(metrics, /^fiberbot_intake_accepted_total\{bot="dbg"\} 15/m)
      assert.match(metrics, /^# TYPE fiberbot_fibers_started_total counter/m)
      const tasks = JSON.parse((yield* call(`${server.url}/debug/tasks`)).body)
      assert.strictEqual(tasks.bots[0].name, "dbg")
      assert.strictEqual(manager.guard("dbg")!.breaker.state(), "closed")
    }))))

  it.live("POST /alerts: token required, bad input changes nothing, a firing pause_intake alert opens the breaker, resolved lets it half-open", () =>
    withManager(Effect.scoped(Effect.gen(function*() {
      const { server, test, manager } = yield* setup({ maxBodyBytes: 2048 })
      const breaker = manager.guard("dbg")!.breaker
      const alert = (status: "firing" | "resolved") =>
        JSON.stringify({
          version: "4",
          status,
          receiver: "fiberbot",
          alerts: [
            { status, labels: { alertname: "FiberbotFiberLeak", fiberbot_action: "pause_intake", bot: "dbg" }, annotations: { summary: "fibers grow" }, fingerprint: "f1" },
            { status, labels: { alertname: "Unrelated" }, fingerprint: "f2" }
          ]
        })
      const post = (body: string, headers: Record<string, string> = auth) =>
        call(`${server.url}/alerts`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body })

      assert.strictEqual((yield* post(alert("firing"), {})).status, 401)
      assert.strictEqual((yield* post(alert("firing"), { authorization: "Bearer wrong" })).status, 401)
      assert.strictEqual((yield* post(alert("firing"), { authorization: "s3cret-token" })).status, 401)
      for (const bad of ["{", "[]", "{\"alerts\":[]}", JSON.stringify({ status: "firing", alerts: [{ status: "maybe", labels: {} }] }), JSON.stringify({ status: "firing", alerts: [{ status: "firing", labels: { a: 1 } }] })]) {
        const res = yield* post(bad)
        assert.strictEqual(res.status, 400, bad)
        assert.include(JSON.parse(res.body).detail, "not an Alertmanager webhook payload")
      }
      assert.strictEqual((yield* post("x".repeat(5000))).status, 413)
      assert.strictEqual(breaker.state(), "closed")
      assert.strictEqual((yield* call(`${server.url}/alerts`, { headers: auth })).status, 405)

      const fired = yield* post(alert("firing"))
      assert.strictEqual(fired.status, 200)
      assert.deepStrictEqual(JSON.parse(fired.body), { paused: [{ bot: "dbg", alert: "FiberbotFiberLeak" }], released: [], ignored: 1 })
      assert.strictEqual(breaker.state(), "open")
      assert.strictEqual(yield* test.message("c", "x"), "busy")
      const ready = yield* call(`${server.url}/readyz`)
      assert.strictEqual(ready.status, 503)
      assert.include(ready.body, "bot dbg: breaker open")
      assert.match((yield* call(`${server.url}/metrics`)).body, /^fiberbot_breaker_state\{bot="dbg",state="open"\} 1/m)
      assert.match((yield* call(`${server.url}/metrics`)).body, /^fiberbot_updates_rejected_total\{bot="dbg",reason="breaker"\} 1/m)

      yield* post(alert("resolved"))
      assert.strictEqual(breaker.state(), "half_open")
      assert.strictEqual(yield* test.message("probe", "x"), "accepted")
    }))))

  it.live("operator breaker control and heap snapshots need the token; over budget is refused with the reason", () =>
    withManager(Effect.scoped(Effect.gen(function*() {
      const heapSnapshots = yield* HeapSnapshot.make({ heapUsed: () => 2 * 1024 ** 3, maxHeapBytes: 1024 ** 3, write: () => "never" })
      const { server, test } = yield* setup({ heapSnapshots })
      assert.strictEqual((yield* call(`${server.url}/debug/breaker?bot=dbg&action=force_open`, { method: "POST" })).status, 401)
      const forced = yield* call(`${server.url}/debug/breaker?bot=dbg&action=force_open&reason=deploy`, { method: "POST", headers: auth })
      assert.deepStrictEqual(JSON.parse(forced.body), { bot: "dbg", state: "forced_open" })
      assert.strictEqual(yield* test.message("c", "x"), "busy")
      assert.strictEqual((yield* call(`${server.url}/debug/breaker?bot=dbg&action=explode`, { method: "POST", headers: auth })).status, 400)
      assert.strictEqual((yield* call(`${server.url}/debug/breaker?bot=ghost&action=reset`, { method: "POST", headers: auth })).status, 404)
      yield* call(`${server.url}/debug/breaker?bot=dbg&action=reset`, { method: "POST", headers: auth })
      assert.strictEqual(yield* test.message("c", "x"), "accepted")
      const heap = yield* call(`${server.url}/debug/heap-snapshot`, { method: "POST", headers: auth })
      assert.strictEqual(heap.status, 507)
      assert.match(JSON.parse(heap.body).detail, /over-budget.*2048 MiB, above the budget of 1024 MiB/)
    }))))

  it.live("any other bind needs a token, and then every endpoint asks for it", () =>
    withManager(Effect.scoped(Effect.gen(function*() {
      const refused = yield* Effect.flip(DebugServer.make({ host: "127.0.0.2" }))
      assert.include(refused.message, "give a token")
      const server = yield* DebugServer.make({ host: "127.0.0.2", token })
      assert.strictEqual((yield* call(`${server.url}/healthz`)).status, 401)
      assert.strictEqual((yield* call(`${server.url}/metrics`)).status, 401)
      assert.strictEqual((yield* call(`${server.url}/healthz`, { headers: auth })).status, 200)
      const periodic = yield* DebugServer.make({ snapshotEvery: "20 millis" })
      yield* Effect.sleep("150 millis")
      const listed = JSON.parse((yield* call(`${periodic.url}/debug/fibers/snapshots`)).body)
      assert.isAtLeast(listed.snapshots.length, 3) // taken on its own, ready for a diff
      const noToken = yield* DebugServer.make()
      const alerts = yield* call(`${noToken.url}/alerts`, { method: "POST", body: "{}" })
      assert.strictEqual(alerts.status, 401)
      assert.include(alerts.body, "needs a token")
    }))))

  it.live("makeGuarded: the watchdog and heap snapshots behind one server; /debug/watchdog shows the samples", () =>
    withManager(Effect.scoped(Effect.gen(function*() {
      const { server: _plain } = yield* setup()
      const server = yield* DebugServer.makeGuarded({ watchdog: { interval: "1 hour" }, heapSnapshots: { maxHeapBytes: 1 } })
      const dog = JSON.parse((yield* call(`${server.url}/debug/watchdog`)).body)
      assert.strictEqual(dog.global.level, "ok")
      assert.property(dog.bots, "dbg")
      const heap = yield* call(`${server.url}/debug/heap-snapshot`, { method: "POST", headers: auth })
      assert.strictEqual(heap.status, 401) // makeGuarded without a token: actions are refused
      assert.match((yield* call(`${server.url}/metrics`)).body, /^fiberbot_watchdog_level\{scope="dbg"\} 0$/m)
    }))))
})
