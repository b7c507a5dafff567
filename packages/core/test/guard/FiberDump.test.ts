import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Bot, BotManager, FiberDump, Router } from "@fiberbot/core"
import { LeakCheck, TestAdapter } from "@fiberbot/core/testing"
import { eventually } from "../helpers.ts"
import { stopNow } from "./support.ts"

const withManager = <A, E>(effect: Effect.Effect<A, E, BotManager>) =>
  LeakCheck.verify(effect).pipe(Effect.provide(BotManager.layer))

describe("FiberDump", () => {
  it("debug=1 starts with the total and lists groups largest first, ties by name", () => {
    const fibers = [
      { id: 1, bot: "a", task: "x", span: undefined, startedAt: 0, ageMs: 5 },
      { id: 2, bot: "a", task: "y", span: undefined, startedAt: 0, ageMs: 5 },
      { id: 3, bot: "a", task: "y", span: undefined, startedAt: 0, ageMs: 5 },
      { id: 4, bot: "a", task: "y", span: "poll", startedAt: 0, ageMs: 5 }
    ]
    const text = FiberDump.debug1(FiberDump.profileOf(fibers, 0))
    assert.deepStrictEqual(text.split("\n"), [
      "fiber profile: total 4",
      "2 @ bot=a task=y",
      "1 @ bot=a task=x",
      "1 @ bot=a task=y origin=poll"
    ])
  })

  it("instances of one task group together: ws/conn-17/read and ws/conn-18/read are ws/conn-*/read", () => {
    const f = (id: number, task: string) => ({ id, bot: "a", task, span: undefined, startedAt: 0, ageMs: 0 })
    const p = FiberDump.profileOf([f(1, "ws/conn-17/read"), f(2, "ws/conn-18/read"), f(3, "discord/shard-3"), f(4, "handler/command/v2")], 0)
    assert.deepStrictEqual(p.groups.map((g) => [g.task, g.count]), [["ws/conn-*/read", 2], ["discord/shard-*", 1], ["handler/command/v2", 1]])
  })

  it("debug=2 lists every fiber with id, state, age, bot, task, parent and span", () => {
    const text = FiberDump.debug2([{ id: 7, bot: "b", task: "t", span: "s", startedAt: 0, ageMs: 1500, parent: 3, state: "suspended" }])
    assert.strictEqual(text, "fiber profile: total 1\nfiber #7 [suspended, 1.5 s]: bot=b task=t parent=#3 span=s")
    const json = FiberDump.fibersJson([{ id: 7, bot: "b", task: "t", span: undefined, startedAt: 0, ageMs: 1, parent: undefined }])
    assert.deepStrictEqual(json.fibers[0], { id: 7, bot: "b", task: "t", parent: null, ageMs: 1, state: "suspended", span: null })
  })

  it("diff sorts appeared, grew, shrank and vanished groups with counts", () => {
    const p = (groups: Array<[string, number]>): FiberDump.Profile => ({
      takenAt: 0,
      total: groups.reduce((s, [, n]) => s + n, 0),
      groups: groups.map(([task, count]) => ({ bot: "b", task, origin: "-", count }))
    })
    const d = FiberDump.diffProfiles(p([["steady", 2], ["grows", 1], ["shrinks", 5], ["goes", 3]]), p([["steady", 2], ["grows", 9], ["shrinks", 1], ["new", 4]]), { from: 1, to: 2 })
    assert.deepStrictEqual(d.appeared.map((c) => [c.task, c.delta]), [["new", 4]])
    assert.deepStrictEqual(d.grew.map((c) => [c.task, c.before, c.after]), [["grows", 1, 9]])
    assert.deepStrictEqual(d.shrank.map((c) => [c.task, c.delta]), [["shrinks", -4]])
    assert.deepStrictEqual(d.vanished.map((c) => [c.task, c.before]), [["goes", 3]])
    const text = FiberDump.formatDiff(d)
    assert.match(text, /^fiber diff 1 -> 2: total 11 -> 16 \(\+5\)/)
    assert.include(text, "+8 grew (1 -> 9) bot=b task=grows")
  })

  it("parses snapshot ids strictly", () => {
    assert.strictEqual(FiberDump.parseSnapshotId("12"), 12)
    assert.strictEqual(FiberDump.parseSnapshotId("now"), "now")
    for (const bad of ["", "-1", "1e3", "abc", "1; drop", null, "9999999999999"]) assert.isUndefined(FiberDump.parseSnapshotId(bad))
  })

  it.effect("the snapshot ring is bounded, and a diff of a live bot names the growing task", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const test = yield* TestAdapter.make()
      let started = 0
      yield* manager.start(Bot.make({
        name: "grower",
        adapters: [test.adapter],
        router: Router.empty.on("message", () => Effect.andThen(Effect.sync(() => started++), Effect.never)),
        options: { handlerTimeout: "1 hour" }
      }))
      const ring = new FiberDump.Snapshots(manager.registry, 3)
      const first = ring.take()
      for (let i = 0; i < 12; i++) yield* test.message(`c${i}`, "hi")
      yield* eventually(() => started === 12)
      const second = ring.take()
      const d = ring.diff(first.id, second.id)
      assert.notInstanceOf(d, FiberDump.SnapshotNotFound)
      const diff = d as FiberDump.Diff
      const grown = [...diff.appeared, ...diff.grew].find((c) => c.task === "handler/message")
      assert.isDefined(grown)
      assert.isAtLeast(grown!.delta, 12)
      assert.strictEqual(diff.totalAfter - diff.totalBefore, [...diff.appeared, ...diff.grew].reduce((s, c) => s + c.delta, 0) + [...diff.shrank, ...diff.vanished].reduce((s, c) => s + c.delta, 0))
      ring.take()
      ring.take()
      assert.strictEqual(ring.list().length, 3)
      const gone = ring.diff(first.id, "now")
      assert.instanceOf(gone, FiberDump.SnapshotNotFound)
      assert.include((gone as FiberDump.SnapshotNotFound).message, `no fiber snapshot "${first.id}"`)
      const dump = FiberDump.debug1(FiberDump.profile(manager.registry, { bot: "grower" }))
      assert.match(dump.split("\n")[1]!, /^\d+ @ bot=grower task=handler\/message/)
      yield* stopNow(manager, "grower")
    })))
})
