/**
 * HeapSnapshot: a V8 heap snapshot on demand, with the brakes on.
 *
 * `v8.writeHeapSnapshot` stops the process while it runs and needs about twice the heap in extra
 * memory, so a snapshot taken to diagnose a leak can be what kills the process. Every request is
 * therefore checked: refused while the heap is above `maxHeapBytes` (the memory budget), refused
 * when the last snapshot is younger than `minIntervalMs`; otherwise written to `directory` with a
 * name saying when and why. Refusals are typed and say what to do. Each file is about the size of
 * the heap and the directory may be memory (a tmpfs `/tmp`), so at most `keep` of the files this
 * instance wrote are kept: the oldest is deleted before a new one is written.
 */
import { Data, Effect } from "effect"
import { rmSync } from "node:fs"
import { join } from "node:path"
import { writeHeapSnapshot } from "node:v8"

export interface Options {
  /** Where snapshots go (default: the working directory). */
  readonly directory?: string | undefined
  /** Refuse above this much used heap (default 512 MiB). */
  readonly maxHeapBytes?: number | undefined
  /** At most one snapshot per this many milliseconds (default 10 minutes). */
  readonly minIntervalMs?: number | undefined
  /**
   * Snapshot files kept (default 3): before writing one, the oldest this instance wrote beyond
   * `keep - 1` are deleted. Files from other processes or earlier runs are left alone.
   */
  readonly keep?: number | undefined
  /** Used heap right now (default `process.memoryUsage().heapUsed`); replaceable in tests. */
  readonly heapUsed?: (() => number) | undefined
  /** Writes the snapshot to the path and returns it (default `v8.writeHeapSnapshot`); replaceable in tests. */
  readonly write?: ((path: string) => string) | undefined
}

export class HeapSnapshotRefused extends Data.TaggedError("HeapSnapshotRefused")<{
  readonly reason: "over-budget" | "rate-limited" | "failed"
  readonly detail: string
}> {
  override get message(): string {
    return `heap snapshot refused (${this.reason}): ${this.detail}`
  }
}

export interface Taken {
  readonly path: string
  readonly heapUsed: number
  readonly reason: string
  readonly at: number
}

export interface HeapSnapshots {
  readonly take: (reason: string) => Effect.Effect<Taken, HeapSnapshotRefused>
  readonly last: () => Taken | undefined
}

const mib = (n: number) => `${Math.round(n / 1048576)} MiB`

export const make = (options: Options = {}): Effect.Effect<HeapSnapshots> =>
  Effect.clockWith((clock) =>
    Effect.sync(() => {
      const directory = options.directory ?? process.cwd()
      const maxHeapBytes = options.maxHeapBytes ?? 512 * 1048576
      const minIntervalMs = options.minIntervalMs ?? 10 * 60_000
      const heapUsed = options.heapUsed ?? (() => process.memoryUsage().heapUsed)
      const write = options.write ?? ((path: string) => writeHeapSnapshot(path))
      const keep = options.keep ?? 3
      if (!Number.isInteger(keep) || keep < 1) throw new RangeError(`HeapSnapshot: keep must be an integer >= 1, got ${keep}`)
      const written: Array<string> = []
      let last: Taken | undefined
      let lastAt = Number.NEGATIVE_INFINITY
      return {
        last: () => last,
        take: (reason) =>
          Effect.suspend(() => {
            const now = clock.currentTimeMillisUnsafe()
            const used = heapUsed()
            if (used > maxHeapBytes) {
              return Effect.fail(
                new HeapSnapshotRefused({
                  reason: "over-budget",
                  detail: `the heap holds ${mib(used)}, above the budget of ${mib(maxHeapBytes)}; writing a snapshot needs about ` +
                    `as much again and could kill the process. Raise maxHeapBytes if the machine has the memory, or take one earlier.`
                })
              )
            }
            if (now - lastAt < minIntervalMs) {
              return Effect.fail(
                new HeapSnapshotRefused({
                  reason: "rate-limited",
                  detail: `the last snapshot was taken ${Math.round((now - lastAt) / 1000)} s ago; at most one every ${Math.round(minIntervalMs / 1000)} s` +
                    (last === undefined ? "" : ` (it is at ${last.path})`)
                })
              )
            }
            lastAt = now
            const stamp = new Date(now).toISOString().replace(/[:.]/g, "-")
            const safeReason = reason.replace(/[^A-Za-z0-9_-]+/g, "-").slice(0, 40)
            const path = join(directory, `fiberbot-${stamp}-${safeReason}.heapsnapshot`)
            // Before the write, not after: the disk must hold the new file next to the kept ones
            // (a full disk is why this bound exists). A write that then fails has still removed the
            // oldest; with `keep` above 1 (3 by default) newer ones remain.
            const notRemoved: Array<string> = []
            while (written.length >= keep) {
              const oldest = written.shift()!
              if (last?.path === oldest) last = undefined
              try {
                rmSync(oldest, { force: true })
              } catch (e) {
                notRemoved.push(`${oldest} (${String(e)})`)
              }
            }
            const warn = notRemoved.length === 0 ? Effect.void : Effect.logWarning(`heap snapshot: could not remove ${notRemoved.join(", ")}; remove it by hand`)
            return Effect.andThen(warn, Effect.try({
              try: () => write(path),
              catch: (e) => new HeapSnapshotRefused({ reason: "failed", detail: `writing ${path} failed: ${String(e)}` })
            }).pipe(
              Effect.map((at) => {
                // Two snapshots in one millisecond for one reason share a name: keep it listed once.
                if (!written.includes(at)) written.push(at)
                last = { path: at, heapUsed: used, reason, at: now }
                return last
              })
            ))
          })
      } satisfies HeapSnapshots
    })
  )
