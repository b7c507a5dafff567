import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import { TestClock } from "effect/testing"
import { Bot, BotManager, HeapSnapshot, Router, Watchdog } from "@fiberbot/core"
import { LeakCheck, TestAdapter } from "@fiberbot/core/testing"
import { eventually, settle } from "../helpers.ts"
import { stopNow } from "./support.ts"

const withManager = <A, E>(effect: Effect.Effect<A, E, BotManager>) =>
  LeakCheck.verify(effect).pipe(Effect.provide(BotManager.layer))

/** A bot whose handler runs wait on `gate`: each update is one more live fiber until the gate opens. */
const holdingBot = (name: string) =>
  Effect.gen(function*() {
    const test = yield* TestAdapter.make()
    const gate = yield* Deferred.make<void>()
    const bot = Bot.make({
      name,
      adapters: [test.adapter],
      router: Router.empty.on("message", () => Deferred.await(gate)),
      options: { handlerTimeout: "1 day", breaker: { permittedProbes: 2, minimumCalls: 50 } }
    })
    return { test, gate, bot }
  })

const tags = (w: Watchdog.Watchdog) => w.history().map((e) => e._tag === "LevelChanged" ? `${e.scope}:${e.from}->${e.to}` : `${e._tag}:${e.scope}`)

describe("Watchdog", () => {
  it.effect("a sustained slope goes critical, pauses intake and names the task; a quiet period lets it close through half-open", () =>
    withManager(Effect.scoped(Effect.gen(function*() {
      const manager = yield* BotManager
      const { test, gate, bot } = yield* holdingBot("leaky")
      yield* Effect.addFinalizer(() => Deferred.succeed(gate, undefined))
      yield* manager.start(bot)
      const snaps: Array<string> = []
      const heap = yield* HeapSnapshot.make({ heapUsed: () => 1, write: (p) => (snaps.push(p), p), directory: "/tmp/snaps" })
      const dog = yield* Watchdog.make({
        interval: "5 seconds",
        global: { warn: 1_000_000, critical: 1_000_000 },
        perBot: { warn: 1_000_000, critical: 1_000_000 },
        slopes: [{ window: "1 minute", perSecond: 0.5, level: "critical" }, { window: "30 seconds", perSecond: 0.5, level: "warn" }],
        quiet: "30 seconds",
        heapSnapshots: heap
      })
      const breaker = manager.guard("leaky")!.breaker
      let n = 0
      // 5 more stuck runs every 5 s: 1 fiber/s, twice the critical slope.
      for (let i = 0; i < 12 && breaker.state() === "closed"; i++) {
        for (let k = 0; k < 5; k++) yield* test.message(`c${n++}`, "x")
        yield* settle()
        yield* TestClock.adjust("5 seconds")
        yield* settle()
      }
      assert.strictEqual(breaker.state(), "open")
      assert.strictEqual(dog.status().bots["leaky"]!.level, "critical")
      assert.isAbove(dog.status().bots["leaky"]!.slopes["60s"]!, 0.5)
      assert.includeMembers(tags(dog), ["leaky:ok->warn", "leaky:warn->critical", "Tripped:leaky", "HeapSnapshot:leaky"])
      assert.isBelow(tags(dog).indexOf("leaky:ok->warn"), tags(dog).indexOf("leaky:warn->critical")) // the shorter window warned first
      const tripped = dog.history().find((e) => e._tag === "Tripped" && e.scope === "leaky")
      assert.match(tripped!._tag === "Tripped" ? tripped!.dump.split("\n")[1]! : "", /^\d+ @ bot=leaky task=handler\/message/)
      // The process went critical in the same sample (this bot is all of it) and took the one snapshot
      // the rate limit allows; the bot's own request was refused as rate-limited.
      assert.strictEqual(snaps.length, 1)
      assert.match(snaps[0]!, /^\/tmp\/snaps\/fiberbot-1970-.*-watchdog-process\.heapsnapshot$/)
      assert.include(tags(dog), "Tripped:*")
      assert.strictEqual(yield* test.message("more", "x"), "busy")
      assert.sameMembers(Object.keys(breaker.stats().holds), ["watchdog:*", "watchdog:leaky"])

      // The leak is fixed: the stuck runs end, the count falls, and after 30 s of quiet intake probes.
      yield* Deferred.succeed(gate, undefined)
      for (let i = 0; i < 20 && breaker.state() === "open"; i++) {
        yield* settle()
        yield* TestClock.adjust("5 seconds")
      }
      assert.strictEqual(breaker.state(), "half_open")
      assert.includeMembers(tags(dog), ["Released:leaky", "Released:*"])
      assert.strictEqual(yield* test.message("probe1", "x"), "accepted")
      assert.strictEqual(yield* test.message("probe2", "x"), "accepted")
      yield* eventually(() => breaker.state() === "closed")
      assert.deepStrictEqual(breaker.history().map((t) => t.to), ["open", "half_open", "closed"])
      yield* stopNow(manager, "leaky")
    }))))

  it.effect("absolute thresholds: the process going critical pauses every bot; a heap snapshot over budget is refused and said so", () =>
    withManager(Effect.scoped(Effect.gen(function*() {
      const manager = yield* BotManager
      const a = yield* holdingBot("a")
      const b = yield* holdingBot("b")
      yield* Effect.addFinalizer(() => Effect.andThen(Deferred.succeed(a.gate, undefined), Deferred.succeed(b.gate, undefined)))
      yield* manager.start(a.bot)
      yield* manager.start(b.bot)
      const heap = yield* HeapSnapshot.make({ heapUsed: () => 900 * 1048576, maxHeapBytes: 512 * 1048576, write: () => assert.fail("must not write") })
      const dog = yield* Watchdog.make({ global: { warn: 10, critical: 30 }, perBot: { warn: 1000, critical: 1000 }, slopes: [], heapSnapshots: heap })
      for (let i = 0; i < 20; i++) {
        yield* a.test.message(`a${i}`, "x")
        yield* b.test.message(`b${i}`, "x")
      }
      yield* settle()
      yield* dog.sample
      assert.strictEqual(dog.status().global.level, "critical")
      assert.strictEqual(manager.guard("a")!.breaker.state(), "open")
      assert.strictEqual(manager.guard("b")!.breaker.state(), "open")
      const refused = dog.history().find((e) => e._tag === "HeapSnapshot")
      assert.isDefined(refused)
      assert.match(refused!._tag === "HeapSnapshot" ? refused!.refused ?? "" : "", /over-budget.*900 MiB, above the budget of 512 MiB/)
      yield* Deferred.succeed(a.gate, undefined)
      yield* Deferred.succeed(b.gate, undefined)
      yield* stopNow(manager, "a")
      yield* stopNow(manager, "b")
    }))))

  it.effect("heap snapshots are rate-limited", () =>
    Effect.gen(function*() {
      const written: Array<string> = []
      const heap = yield* HeapSnapshot.make({ heapUsed: () => 1, minIntervalMs: 60_000, write: (p) => (written.push(p), p) })
      yield* heap.take("one")
      const second = yield* Effect.flip(heap.take("two"))
      assert.strictEqual(second.reason, "rate-limited")
      yield* TestClock.adjust("1 minute")
      yield* heap.take("three")
      assert.strictEqual(written.length, 2)
    }))
})
