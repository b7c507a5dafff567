/**
 * FiberDump: what a bot process is running, in the shapes Go's pprof taught operators to read.
 *
 * `profile` groups live fibers by bot, task and origin (the span they are in, when they have one),
 * largest group first; `debug1` renders it like pprof's `debug=1` (`fiber profile: total N`, then
 * one `count @ ...` line per group). `debug2` lists every fiber with id, task, bot, parent, age,
 * state and current span. Both have a JSON twin for tools. `Snapshots` keeps recent profiles in
 * bounded rings so `diff(from, to)` can say which groups appeared, grew, shrank or vanished: the
 * growing group of a leak is the first line of the diff.
 *
 * ```ts import.meta.vitest
 * import { expect } from "vitest"
 * import * as FiberDump from "./FiberDump.ts"
 * const before: FiberDump.Profile = { takenAt: 0, total: 1, groups: [{ bot: "b", task: "t", origin: "-", count: 1 }] }
 * const after: FiberDump.Profile = { takenAt: 1, total: 3, groups: [{ bot: "b", task: "t", origin: "-", count: 3 }] }
 * expect(FiberDump.debug1(after).split("\n")[0]).toBe("fiber profile: total 3")
 * expect(FiberDump.diffProfiles(before, after).grew[0]!.delta).toBe(2)
 * ```
 */
import { Data } from "effect"
import type { FiberRegistryImpl, LiveFiber } from "../FiberRegistry.ts"

export interface ProfileGroup {
  readonly bot: string
  readonly task: string
  /** The span the fibers are in, or `-`: fibers of one task parked at different places differ here. */
  readonly origin: string
  readonly count: number
}

export interface Profile {
  readonly takenAt: number
  readonly total: number
  readonly groups: ReadonlyArray<ProfileGroup>
}

/**
 * The group a task belongs to: numeric instance ids (`ws/conn-17/read`, `discord/shard-3`) become
 * `*`, so one leak across many connections is one large group, not many groups of one, and metric
 * labels stay bounded. Exact names stay in `debug2`.
 */
export const taskGroup = (task: string): string => task.replace(/(?<=[-/#:])\d+(?=$|[-/])/g, "*")

const groupKey = (g: { readonly bot: string; readonly task: string; readonly origin: string }) => `${g.bot}\u0000${g.task}\u0000${g.origin}`

/** Groups fibers by bot, task group and origin, largest group first (ties by name, so output is stable). */
export const profileOf = (fibers: ReadonlyArray<LiveFiber>, takenAt: number): Profile => {
  const groups = new Map<string, { bot: string; task: string; origin: string; count: number }>()
  for (const f of fibers) {
    const origin = f.span ?? "-"
    const task = taskGroup(f.task)
    const key = groupKey({ bot: f.bot, task, origin })
    const g = groups.get(key)
    if (g) g.count++
    else groups.set(key, { bot: f.bot, task, origin, count: 1 })
  }
  return {
    takenAt,
    total: fibers.length,
    groups: [...groups.values()].sort((a, b) =>
      b.count - a.count || a.bot.localeCompare(b.bot) || a.task.localeCompare(b.task) || a.origin.localeCompare(b.origin)
    )
  }
}

/** The profile of `registry` right now, optionally of one bot. */
export const profile = (registry: FiberRegistryImpl, filter?: { readonly bot?: string | undefined }): Profile =>
  profileOf(registry.fibers(filter), Date.now())

/** pprof `debug=1`: the total, then `count @ bot=... task=... origin=...` per group. */
export const debug1 = (p: Profile): string =>
  [
    `fiber profile: total ${p.total}`,
    ...p.groups.map((g) => `${g.count} @ bot=${g.bot} task=${g.task}${g.origin === "-" ? "" : ` origin=${g.origin}`}`)
  ].join("\n")

/** pprof `debug=2`: one paragraph per fiber, oldest first. */
export const debug2 = (fibers: ReadonlyArray<LiveFiber>): string =>
  [
    `fiber profile: total ${fibers.length}`,
    ...fibers.map((f) =>
      `fiber #${f.id} [${f.state ?? "suspended"}, ${formatAge(f.ageMs)}]: bot=${f.bot} task=${f.task}` +
      `${f.parent === undefined ? "" : ` parent=#${f.parent}`}${f.span === undefined ? "" : ` span=${f.span}`}`
    )
  ].join("\n")

export interface FiberJson {
  readonly id: number
  readonly bot: string
  readonly task: string
  readonly parent: number | null
  readonly ageMs: number
  readonly state: string
  readonly span: string | null
}

export const fibersJson = (fibers: ReadonlyArray<LiveFiber>): { readonly total: number; readonly fibers: ReadonlyArray<FiberJson> } => ({
  total: fibers.length,
  fibers: fibers.map((f) => ({
    id: f.id,
    bot: f.bot,
    task: f.task,
    parent: f.parent ?? null,
    ageMs: f.ageMs,
    state: f.state ?? "suspended",
    span: f.span ?? null
  }))
})

const formatAge = (ms: number) => (ms < 1000 ? `${ms} ms` : ms < 120_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 60_000)} minutes`)

// ---------------------------------------------------------------------------------------------
// Diffs

export interface GroupChange {
  readonly bot: string
  readonly task: string
  readonly origin: string
  readonly before: number
  readonly after: number
  readonly delta: number
}

export interface Diff {
  readonly from: number | "now"
  readonly to: number | "now"
  readonly totalBefore: number
  readonly totalAfter: number
  /** Groups absent before; largest first. */
  readonly appeared: ReadonlyArray<GroupChange>
  readonly grew: ReadonlyArray<GroupChange>
  readonly shrank: ReadonlyArray<GroupChange>
  /** Groups gone after; largest first. */
  readonly vanished: ReadonlyArray<GroupChange>
}

/** What changed between two profiles; each list is ordered by the size of the change, largest first. */
export const diffProfiles = (
  before: Profile,
  after: Profile,
  ids: { readonly from?: number | "now"; readonly to?: number | "now" } = {}
): Diff => {
  const b = new Map(before.groups.map((g) => [groupKey(g), g]))
  const a = new Map(after.groups.map((g) => [groupKey(g), g]))
  const appeared: Array<GroupChange> = []
  const grew: Array<GroupChange> = []
  const shrank: Array<GroupChange> = []
  const vanished: Array<GroupChange> = []
  for (const [key, g] of a) {
    const old = b.get(key)
    const change = { bot: g.bot, task: g.task, origin: g.origin, before: old?.count ?? 0, after: g.count, delta: g.count - (old?.count ?? 0) }
    if (old === undefined) appeared.push(change)
    else if (change.delta > 0) grew.push(change)
    else if (change.delta < 0) shrank.push(change)
  }
  for (const [key, g] of b) {
    if (!a.has(key)) vanished.push({ bot: g.bot, task: g.task, origin: g.origin, before: g.count, after: 0, delta: -g.count })
  }
  const bySize = (x: GroupChange, y: GroupChange) => Math.abs(y.delta) - Math.abs(x.delta) || x.task.localeCompare(y.task)
  return {
    from: ids.from ?? "now",
    to: ids.to ?? "now",
    totalBefore: before.total,
    totalAfter: after.total,
    appeared: appeared.sort(bySize),
    grew: grew.sort(bySize),
    shrank: shrank.sort(bySize),
    vanished: vanished.sort(bySize)
  }
}

/** A diff as text: one `+N`/`-N` line per changed group, the biggest changes first. */
export const formatDiff = (d: Diff): string => {
  const line = (kind: string, c: GroupChange) =>
    `${c.delta > 0 ? "+" : ""}${c.delta} ${kind} (${c.before} -> ${c.after}) bot=${c.bot} task=${c.task}${c.origin === "-" ? "" : ` origin=${c.origin}`}`
  return [
    `fiber diff ${d.from} -> ${d.to}: total ${d.totalBefore} -> ${d.totalAfter} (${d.totalAfter - d.totalBefore >= 0 ? "+" : ""}${d.totalAfter - d.totalBefore})`,
    ...d.appeared.map((c) => line("appeared", c)),
    ...d.grew.map((c) => line("grew", c)),
    ...d.shrank.map((c) => line("shrank", c)),
    ...d.vanished.map((c) => line("vanished", c))
  ].join("\n")
}

// ---------------------------------------------------------------------------------------------
// The snapshot ring

/** A snapshot id that is not (or no longer) in the ring. */
export class SnapshotNotFound extends Data.TaggedError("SnapshotNotFound")<{
  readonly id: string
  readonly available: ReadonlyArray<number>
}> {
  override get message(): string {
    return `no fiber snapshot "${this.id}"; the ring holds ${this.available.length === 0 ? "none" : this.available.join(", ")} (use "now" for the live state)`
  }
}

export interface StoredSnapshot {
  readonly id: number
  readonly profile: Profile
  /** The bot it is limited to; absent for every bot. */
  readonly bot?: string | undefined
  /** `periodic`: taken on a timer; `requested`: taken for a request (a dump, `POST .../snapshots`). */
  readonly kind: "periodic" | "requested"
}

/** Two snapshots limited to different bots: nothing in them can be compared. */
export class SnapshotBotMismatch extends Data.TaggedError("SnapshotBotMismatch")<{
  readonly from: string
  readonly to: string
}> {
  override get message(): string {
    return `snapshots ${this.from} and ${this.to} were taken for different bots (or for a bot other than the one asked); diff two of one bot, or of every bot`
  }
}

/** A profile limited to one bot's groups (a profile of every bot, read as if taken with `bot`). */
export const profileForBot = (p: Profile, bot: string): Profile => {
  const groups = p.groups.filter((g) => g.bot === bot)
  return { takenAt: p.takenAt, total: groups.reduce((n, g) => n + g.count, 0), groups }
}

/**
 * Recent profiles in two bounded rings: `capacity` taken on a timer (`take()`), and
 * `requestedCapacity` taken for requests (`take({ requested: true })`). Each drops its oldest
 * when full, so neither grows however often it is sampled, and requests, which anyone who can
 * reach the debug server may send, cannot push the timer's history out.
 */
export class Snapshots {
  readonly capacity: number
  readonly requestedCapacity: number
  readonly #periodic: Array<StoredSnapshot> = []
  readonly #requested: Array<StoredSnapshot> = []
  readonly #registry: FiberRegistryImpl
  #next = 1
  constructor(registry: FiberRegistryImpl, capacity = 64, requestedCapacity = 16) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`Snapshots: capacity must be an integer >= 1, got ${capacity}`)
    if (!Number.isInteger(requestedCapacity) || requestedCapacity < 1) {
      throw new RangeError(`Snapshots: requestedCapacity must be an integer >= 1, got ${requestedCapacity}`)
    }
    this.#registry = registry
    this.capacity = capacity
    this.requestedCapacity = requestedCapacity
  }

  /** Takes a snapshot (of one bot's fibers with `bot`) and keeps it in its ring. */
  take(options: { readonly bot?: string | undefined; readonly requested?: boolean | undefined } = {}): StoredSnapshot {
    const kind = options.requested === true ? "requested" : "periodic"
    const snapshot: StoredSnapshot = {
      id: this.#next++,
      profile: profile(this.#registry, { bot: options.bot }),
      kind,
      ...(options.bot === undefined ? {} : { bot: options.bot })
    }
    const ring = kind === "requested" ? this.#requested : this.#periodic
    ring.push(snapshot)
    if (ring.length > (kind === "requested" ? this.requestedCapacity : this.capacity)) ring.shift()
    return snapshot
  }

  /** Both rings, oldest first. */
  list(): ReadonlyArray<{ readonly id: number; readonly takenAt: number; readonly total: number; readonly kind: StoredSnapshot["kind"]; readonly bot?: string }> {
    return this.#kept().map((s) => ({ id: s.id, takenAt: s.profile.takenAt, total: s.profile.total, kind: s.kind, ...(s.bot === undefined ? {} : { bot: s.bot }) }))
  }

  /** A kept snapshot, or the live profile for `"now"`. */
  get(id: number | "now"): StoredSnapshot | undefined {
    if (id === "now") return { id: 0, profile: profile(this.#registry), kind: "requested" }
    return this.#periodic.find((s) => s.id === id) ?? this.#requested.find((s) => s.id === id)
  }

  /**
   * What changed from snapshot `from` to `to` (a kept id or `"now"`), limited to `bot` when given
   * or when either snapshot was taken for one bot; fails with `SnapshotNotFound` or `SnapshotBotMismatch`.
   */
  diff(from: number | "now", to: number | "now", bot?: string): Diff | SnapshotNotFound | SnapshotBotMismatch {
    const a = this.get(from)
    if (a === undefined) return new SnapshotNotFound({ id: String(from), available: this.#kept().map((s) => s.id) })
    const b = this.get(to)
    if (b === undefined) return new SnapshotNotFound({ id: String(to), available: this.#kept().map((s) => s.id) })
    const bots = new Set([bot, a.bot, b.bot].filter((x) => x !== undefined))
    if (bots.size > 1) return new SnapshotBotMismatch({ from: String(from), to: String(to) })
    const only = [...bots][0]
    const limit = (p: Profile) => (only === undefined ? p : profileForBot(p, only))
    return diffProfiles(limit(a.profile), limit(b.profile), { from, to })
  }

  #kept(): Array<StoredSnapshot> {
    return [...this.#periodic, ...this.#requested].sort((x, y) => x.id - y.id)
  }
}

/** Parses a snapshot reference from a query (`"12"`, `"now"`); `undefined` when it is neither. */
export const parseSnapshotId = (raw: string | null | undefined): number | "now" | undefined => {
  if (raw === "now") return "now"
  if (raw == null || !/^[0-9]{1,12}$/.test(raw)) return undefined
  return Number(raw)
}
