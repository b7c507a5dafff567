/**
 * Bot: a definition, not a running thing. A name, its adapters, a router of handlers, supervised
 * workers and options. `BotManager.start(bot)` runs it; the same definition can run again after
 * a stop.
 *
 * ```ts import.meta.vitest
 * import { Effect } from "effect"
 * import { expect } from "vitest"
 * import * as Bot from "./Bot.ts"
 * import * as Router from "./Router.ts"
 * import * as Supervisor from "./Supervisor.ts"
 * const bot = Bot.make({
 *   name: "echo",
 *   router: Router.empty.on("message", (ctx) => ctx.reply(ctx.text ?? "")),
 *   workers: [Supervisor.periodic("cleanup", Effect.log("cleaning"), "1 minute")],
 *   options: { handlerTimeout: "5 seconds", concurrency: 100 }
 * })
 * expect(bot.name).toBe("echo")
 * ```
 */
import { Data, Duration, Effect, Option, Schema } from "effect"
import type { Adapter } from "./Adapter.ts"
import type * as Admission from "./guard/Admission.ts"
import * as Breaker from "./guard/Breaker.ts"
import type { Policy } from "./Intake.ts"
import { Router } from "./Router.ts"
import * as Supervisor from "./Supervisor.ts"

export interface Options {
  /** How long one handler run may take before it is interrupted (default 30 s). */
  readonly handlerTimeout?: Duration.Input | undefined
  /** Updates admitted to handlers at once (default 500). */
  readonly concurrency?: number | undefined
  readonly intake?: {
    /** Updates waiting for a handler (default 1,000). */
    readonly capacity?: number | undefined
    /** What a full intake does (default `backpressure`). */
    readonly policy?: Policy | undefined
  } | undefined
  /** How long adapters may take to report ready (default 30 s). */
  readonly startTimeout?: Duration.Input | undefined
  /** The deadline of `stop` when none is given (default 10 s). */
  readonly stopDeadline?: Duration.Input | undefined
  readonly supervisor?: {
    readonly strategy?: Supervisor.Strategy | undefined
    /** More than `intensity` restarts within `period` escalates (default 3 within 5 s, as Elixir). */
    readonly intensity?: number | undefined
    readonly period?: Duration.Input | undefined
    readonly backoff?: Partial<Supervisor.Backoff> | undefined
  } | undefined
  /** Export handler metrics (default true). */
  readonly metrics?: boolean | undefined
  /**
   * Open the intake breaker on the handlers' failure or slow-call rate (default: only the watchdog,
   * alerts and operators open it).
   */
  readonly breaker?: Breaker.Options | undefined
  /** Cap the updates held at once and answer "busy" above it (default off; limit 500 when on). */
  readonly admission?: Admission.Options | boolean | undefined
}

export interface Bot {
  readonly name: string
  readonly adapters: ReadonlyArray<Adapter>
  readonly router: Router
  readonly workers: ReadonlyArray<Supervisor.Child>
  readonly options: Options
}

export const make = (definition: {
  readonly name: string
  readonly adapters?: ReadonlyArray<Adapter> | undefined
  readonly router?: Router | undefined
  readonly workers?: ReadonlyArray<Supervisor.Child> | undefined
  readonly options?: Options | undefined
}): Bot => ({
  name: definition.name,
  adapters: definition.adapters ?? [],
  router: definition.router ?? new Router(),
  workers: definition.workers ?? [],
  options: definition.options ?? {}
})

/** Options with every default filled in and every value checked. */
export interface Config {
  readonly name: string
  readonly handlerTimeout: Duration.Duration
  readonly concurrency: number
  readonly intakeCapacity: number
  readonly intakePolicy: Policy
  readonly startTimeout: Duration.Duration
  readonly stopDeadline: Duration.Duration
  readonly supervisor: Omit<Supervisor.Spec, "children">
  readonly metrics: boolean
  readonly breaker: Breaker.Options | undefined
  readonly admission: Admission.Options | undefined
}

/** A bot's definition is invalid: `issues` says which field and why. */
export class BotConfigError extends Data.TaggedError("BotConfigError")<{
  readonly bot: string
  readonly issues: string
}> {
  override get message(): string {
    return `bot "${this.bot}" has an invalid configuration:\n${this.issues}`
  }
}

const PositiveMillis = Schema.Finite.check(Schema.isGreaterThan(0))
const NonNegativeMillis = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))
const PositiveInt = Schema.Int.check(Schema.isGreaterThan(0))

const ConfigSchema = Schema.Struct({
  name: Schema.String.check(Schema.isPattern(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/)),
  handlerTimeout: PositiveMillis,
  concurrency: PositiveInt.check(Schema.isLessThanOrEqualTo(1_000_000)),
  intakeCapacity: PositiveInt.check(Schema.isLessThanOrEqualTo(10_000_000)),
  intakePolicy: Schema.Literals(["backpressure", "drop-oldest", "reject-busy"]),
  startTimeout: PositiveMillis,
  stopDeadline: PositiveMillis,
  strategy: Schema.Literals(["one_for_one", "one_for_all", "rest_for_one"]),
  intensity: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  period: PositiveMillis,
  backoffBase: NonNegativeMillis,
  backoffFactor: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(1)),
  backoffMax: NonNegativeMillis,
  backoffJitter: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThanOrEqualTo(1)),
  backoffResetAfter: NonNegativeMillis,
  workerNames: Schema.Array(Schema.String.check(Schema.isPattern(/^[A-Za-z0-9][A-Za-z0-9_./-]{0,63}$/))),
  adapterNames: Schema.Array(Schema.String.check(Schema.isPattern(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/)))
})

/** Millis of a duration input, or NaN when it is not one (so the schema reports it). */
const millisOf = (input: Duration.Input | undefined, fallback: Duration.Input): number => {
  const d = Duration.fromInput(input ?? fallback)
  return Option.isSome(d) ? Duration.toMillis(d.value) : Number.NaN
}

const duplicates = (names: ReadonlyArray<string>) => names.filter((n, i) => names.indexOf(n) !== i)

/** Checks a bot's definition and fills in defaults; fails with every problem it finds. */
export const config = (bot: Bot): Effect.Effect<Config, BotConfigError> =>
  Effect.gen(function*() {
    const o = bot.options
    const raw = {
      name: bot.name,
      handlerTimeout: millisOf(o.handlerTimeout, "30 seconds"),
      concurrency: o.concurrency ?? 500,
      intakeCapacity: o.intake?.capacity ?? 1000,
      intakePolicy: o.intake?.policy ?? "backpressure",
      startTimeout: millisOf(o.startTimeout, "30 seconds"),
      stopDeadline: millisOf(o.stopDeadline, "10 seconds"),
      strategy: o.supervisor?.strategy ?? "one_for_one",
      intensity: o.supervisor?.intensity ?? 3,
      period: millisOf(o.supervisor?.period, "5 seconds"),
      backoffBase: millisOf(o.supervisor?.backoff?.base, Supervisor.defaultBackoff.base),
      backoffFactor: o.supervisor?.backoff?.factor ?? Supervisor.defaultBackoff.factor,
      backoffMax: millisOf(o.supervisor?.backoff?.max, Supervisor.defaultBackoff.max),
      backoffJitter: o.supervisor?.backoff?.jitter ?? Supervisor.defaultBackoff.jitter,
      backoffResetAfter: millisOf(o.supervisor?.backoff?.resetAfter, Supervisor.defaultBackoff.resetAfter),
      workerNames: bot.workers.map((w) => w.name),
      adapterNames: bot.adapters.map((a) => a.name)
    }
    const c = yield* Schema.decodeUnknownEffect(ConfigSchema)(raw, { errors: "all" }).pipe(
      Effect.mapError((e) => new BotConfigError({ bot: String(bot.name), issues: e.message }))
    )
    const dupes = [...duplicates(c.workerNames).map((n) => `worker name "${n}" is used twice`), ...duplicates(c.adapterNames).map((n) => `adapter name "${n}" is used twice`)]
    if (dupes.length > 0) return yield* new BotConfigError({ bot: c.name, issues: dupes.join("\n") })
    const guardIssues: Array<string> = []
    try {
      Breaker.makeUnsafe({ ...o.breaker, bot: c.name }, () => 0)
    } catch (e) {
      guardIssues.push(`breaker: ${(e as Error).message}`)
    }
    const admission = o.admission === undefined || o.admission === false ? undefined : o.admission === true ? {} : o.admission
    const limit = admission?.limit
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) guardIssues.push(`admission: limit must be an integer >= 1, got ${limit}`)
    if (guardIssues.length > 0) return yield* new BotConfigError({ bot: c.name, issues: guardIssues.join("\n") })
    return {
      name: c.name,
      handlerTimeout: Duration.millis(c.handlerTimeout),
      concurrency: c.concurrency,
      intakeCapacity: c.intakeCapacity,
      intakePolicy: c.intakePolicy,
      startTimeout: Duration.millis(c.startTimeout),
      stopDeadline: Duration.millis(c.stopDeadline),
      supervisor: {
        strategy: c.strategy,
        intensity: c.intensity,
        period: Duration.millis(c.period),
        backoff: {
          base: Duration.millis(c.backoffBase),
          factor: c.backoffFactor,
          max: Duration.millis(c.backoffMax),
          jitter: c.backoffJitter,
          resetAfter: Duration.millis(c.backoffResetAfter)
        }
      },
      metrics: o.metrics ?? true,
      breaker: o.breaker,
      admission
    }
  })
