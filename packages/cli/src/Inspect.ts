/**
 * Inspect: reads a running bot process's debug endpoint and shows what it runs.
 *
 * One snapshot is the bots (state, breaker, in flight, intake, tasks, last stop report) from
 * `/debug/tasks` and the live fibers grouped by task from `/debug/fibers?debug=1` (JSON). `render`
 * turns it into the screen `fiberbot inspect` refreshes like `top`; `--json` prints it as is.
 * Every request has a deadline; an unreachable URL, a missing token and a non-fiberbot answer each
 * get an error that says what to check.
 */
import { Data, Duration, Effect, Redacted } from "effect"

export class InspectError extends Data.TaggedError("InspectError")<{ readonly url: string; readonly reason: string }> {
  override get message(): string {
    return `cannot inspect ${this.url}: ${this.reason}`
  }
}

export interface TaskInfo {
  readonly name: string
  readonly kind: string
  readonly state: string
  readonly restarts: number
}

export interface BotInfo {
  readonly name: string
  readonly state: string
  readonly reason?: string | null | undefined
  readonly inFlight: number
  readonly intake: { readonly depth: number; readonly dropped: number; readonly rejected: number; readonly accepted: number }
  readonly tasks: ReadonlyArray<TaskInfo>
  readonly breaker?: unknown
  /** Each adapter's own figures (connections, poll liveness, shard states), by adapter name. */
  readonly adapters?: Readonly<Record<string, unknown>> | null | undefined
  readonly lastStop?: {
    readonly durationMs: number
    readonly withinDeadline: boolean
    readonly drained: number
    readonly interrupted: ReadonlyArray<string>
    readonly unfinished: ReadonlyArray<string>
  } | null | undefined
}

export interface FiberGroup {
  readonly bot: string
  readonly task: string
  readonly origin: string
  readonly count: number
}

export interface Snapshot {
  readonly url: string
  readonly takenAt: number
  readonly bots: ReadonlyArray<BotInfo>
  readonly fibers: { readonly total: number; readonly groups: ReadonlyArray<FiberGroup> }
}

export interface Options {
  readonly token?: Redacted.Redacted<string> | undefined
  /** Per request (default 5 s). */
  readonly timeout?: Duration.Input | undefined
}

const getJson = (base: string, path: string, options: Options) =>
  Effect.tryPromise({
    try: async (signal) => {
      const headers: Record<string, string> = { accept: "application/json" }
      if (options.token !== undefined) headers.authorization = `Bearer ${Redacted.value(options.token)}`
      const res = await fetch(new URL(path, base), { headers, signal })
      const text = await res.text()
      return { status: res.status, text }
    },
    catch: (cause) =>
      new InspectError({
        url: base,
        reason: `no answer (${cause instanceof Error && cause.cause instanceof Error ? cause.cause.message : String(cause)}); is the bot running with its debug server, and is the URL right?`
      })
  }).pipe(
    Effect.timeoutOrElse({
      duration: options.timeout ?? "5 seconds",
      orElse: () => Effect.fail(new InspectError({ url: base, reason: `no answer within ${Duration.format(Duration.fromInputUnsafe(options.timeout ?? "5 seconds"))}` }))
    }),
    Effect.flatMap(({ status, text }) => {
      if (status === 401) {
        return Effect.fail(new InspectError({
          url: base,
          reason: options.token === undefined
            ? "the debug server wants a token: pass --token (or FIBERBOT_DEBUG_TOKEN)"
            : "the debug server refused the token"
        }))
      }
      if (status !== 200) return Effect.fail(new InspectError({ url: base, reason: `${path} answered HTTP ${status}` }))
      try {
        return Effect.succeed(JSON.parse(text) as unknown)
      } catch {
        return Effect.fail(new InspectError({ url: base, reason: `${path} did not answer JSON; is this a fiberbot debug server?` }))
      }
    })
  )

const isObject = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null

/** One snapshot of the process behind `url`. */
export const snapshot = (url: string, options: Options = {}): Effect.Effect<Snapshot, InspectError> =>
  Effect.gen(function*() {
    const base = url.endsWith("/") ? url : `${url}/`
    const [tasks, fibers] = yield* Effect.all([
      getJson(base, "debug/tasks", options),
      getJson(base, "debug/fibers?debug=1", options)
    ], { concurrency: 2 })
    if (!isObject(tasks) || !Array.isArray(tasks.bots) || !isObject(fibers) || !Array.isArray(fibers.groups)) {
      return yield* new InspectError({ url: base, reason: "the answer is not shaped like a fiberbot debug server's" })
    }
    return {
      url: base,
      takenAt: Date.now(),
      bots: tasks.bots as ReadonlyArray<BotInfo>,
      fibers: { total: Number(fibers.total ?? 0), groups: fibers.groups as ReadonlyArray<FiberGroup> }
    }
  })

const pad = (s: string, n: number) => (s.length >= n ? s.slice(0, n) : s + " ".repeat(n - s.length))

const breakerState = (b: unknown): string =>
  isObject(b) && typeof b.state === "string" ? b.state : typeof b === "string" ? b : "-"

/** The screen: bots with their tasks, then live fibers grouped by task (largest first). */
export const render = (s: Snapshot, options: { readonly maxGroups?: number } = {}): string => {
  const lines: Array<string> = [`fiberbot inspect ${s.url}  ${new Date(s.takenAt).toISOString()}`, ""]
  lines.push(`${pad("BOT", 16)} ${pad("STATE", 9)} ${pad("BREAKER", 10)} ${pad("IN FLIGHT", 9)} ${pad("INTAKE", 7)} ${pad("DROPPED", 7)} BUSY`)
  for (const b of s.bots) {
    lines.push(`${pad(b.name, 16)} ${pad(b.state, 9)} ${pad(breakerState(b.breaker), 10)} ${pad(String(b.inFlight), 9)} ${pad(String(b.intake.depth), 7)} ${pad(String(b.intake.dropped), 7)} ${b.intake.rejected}`)
    if (b.reason) lines.push(`  reason: ${b.reason}`)
    for (const [name, figures] of Object.entries(b.adapters ?? {})) {
      const text = JSON.stringify(figures)
      lines.push(`  adapter ${name}: ${text.length > 160 ? `${text.slice(0, 157)}...` : text}`)
    }
    for (const t of b.tasks) lines.push(`  ${pad(t.name, 32)} ${pad(t.kind, 10)} ${pad(t.state, 10)} restarts ${t.restarts}`)
    if (b.lastStop) {
      const r = b.lastStop
      lines.push(`  last stop: ${r.durationMs} ms, drained ${r.drained}, interrupted ${r.interrupted.length}${r.withinDeadline ? "" : `, unfinished: ${r.unfinished.join("; ")}`}`)
    }
  }
  if (s.bots.length === 0) lines.push("(no bots)")
  lines.push("", `live fibers: ${s.fibers.total}`)
  const max = options.maxGroups ?? 20
  for (const g of s.fibers.groups.slice(0, max)) {
    lines.push(`${String(g.count).padStart(6)}  ${pad(g.bot, 16)} ${g.task}${g.origin === "-" ? "" : `  (${g.origin})`}`)
  }
  if (s.fibers.groups.length > max) lines.push(`   ... ${s.fibers.groups.length - max} more groups`)
  return lines.join("\n")
}
