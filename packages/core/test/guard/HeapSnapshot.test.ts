import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { HeapSnapshot } from "@fiberbot/core"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "fiberbot-heap-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

describe("HeapSnapshot", () => {
  it.effect("keeps at most `keep` of its own files: the oldest is deleted before a new one is written; other files stay", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      writeFileSync(join(dir, "fiberbot-not-ours.heapsnapshot"), "someone else's")
      const seenBeforeWrite: Array<number> = []
      const snapshots = yield* HeapSnapshot.make({
        directory: dir,
        keep: 2,
        minIntervalMs: 1000,
        maxHeapBytes: 1024,
        heapUsed: () => 512,
        write: (path) => {
          seenBeforeWrite.push(readdirSync(dir).length)
          writeFileSync(path, "snapshot")
          return path
        }
      })
      const paths: Array<string> = []
      for (let i = 0; i < 4; i++) {
        paths.push((yield* snapshots.take(`t${i}`)).path)
        yield* TestClock.adjust("1 second")
      }
      assert.sameMembers(readdirSync(dir), ["fiberbot-not-ours.heapsnapshot", ...paths.slice(2).map((p) => p.slice(dir.length + 1))])
      // never more than `keep` of ours on disk, even while the next one is written
      assert.deepStrictEqual(seenBeforeWrite, [1, 2, 2, 2])
      assert.strictEqual(snapshots.last()!.path, paths[3])
    }))

  it.effect("keep defaults to 3 and must be at least 1", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const snapshots = yield* HeapSnapshot.make({ directory: dir, minIntervalMs: 0, heapUsed: () => 0, write: (path) => (writeFileSync(path, "x"), path) })
      for (let i = 0; i < 5; i++) yield* snapshots.take(`r${i}`)
      assert.strictEqual(readdirSync(dir).length, 3)
      const bad = yield* Effect.exit(HeapSnapshot.make({ keep: 0 }))
      assert.strictEqual(bad._tag, "Failure")
    }))
})
