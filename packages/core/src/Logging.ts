/**
 * Logging: pino as the sink of Effect's logger.
 *
 * Every line carries the bot, the task and the fiber id of the fiber that wrote it, plus its log
 * annotations and spans. Secrets never reach the output: `Redacted` values print as
 * `<redacted>`, and pino's redaction removes well-known secret fields (`token`, `authorization`,
 * `password`, `secret`, ...) at any of the first two levels. In a terminal the output is pretty;
 * otherwise one JSON object per line.
 */
import { Cause, Config, Effect, Layer, Logger, References, type LogLevel } from "effect"
import pino from "pino"
import pretty from "pino-pretty"
import { CurrentBot, CurrentTask } from "./Task.ts"

const LEVELS = { Trace: "trace", Debug: "debug", Info: "info", Warn: "warn", Error: "error", Fatal: "fatal" } as const

export type Level = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent"

const SECRET_KEYS = ["token", "authorization", "password", "secret", "apiKey", "api_key", "cookie"]

/** Paths pino removes from every line: each secret key at the top level and one level down. */
export const redactPaths: ReadonlyArray<string> = [...SECRET_KEYS, ...SECRET_KEYS.map((k) => `*.${k}`)]

export interface Options {
  readonly level?: Level | undefined
  /** Human-readable output (default: when stdout is a terminal). */
  readonly pretty?: boolean | undefined
  /** Where lines go (default: stdout). Tests pass a stream to read them back. */
  readonly destination?: pino.DestinationStream | undefined
  /** More paths to redact, in pino's path syntax. */
  readonly redact?: ReadonlyArray<string> | undefined
}

const toEffectLevel = (level: Level): LogLevel.LogLevel =>
  level === "silent" ? "None" : (level[0]!.toUpperCase() + level.slice(1)) as LogLevel.LogLevel

const render = (part: unknown): string => {
  if (typeof part === "string") return part
  if (part instanceof Error) return part.message
  try {
    return JSON.stringify(part)
  } catch {
    return String(part)
  }
}

const describeError = (error: unknown): unknown => {
  if (typeof error !== "object" || error === null) return error
  const out: Record<string, unknown> = {}
  const tag = (error as { readonly _tag?: unknown })._tag
  if (typeof tag === "string") out._tag = tag
  for (const key of Object.keys(error)) if (key !== "stack") out[key] = (error as Record<string, unknown>)[key]
  return out
}

/** A pino instance configured as fiberbot logs. */
export const makePino = (options: Options = {}): pino.Logger => {
  const level = options.level ?? "info"
  const config: pino.LoggerOptions = {
    level,
    base: null,
    redact: { paths: [...redactPaths, ...(options.redact ?? [])], censor: "<redacted>" }
  }
  if (options.destination !== undefined) return pino(config, options.destination)
  const isPretty = options.pretty ?? process.stdout.isTTY === true
  return isPretty ? pino(config, pretty({
      sync: true,
      colorize: true,
      translateTime: "HH:MM:ss.l",
      // one line per log: who wrote it up front, other fields after the message
      messageFormat: "{bot} {task} #{fiber} │ {msg}",
      ignore: "bot,task,fiber",
      singleLine: true
    })) : pino(config)
}

/** An Effect logger writing to `sink`. */
export const logger = (sink: pino.Logger): Logger.Logger<unknown, void> =>
  Logger.make(({ message, logLevel, cause, fiber, date }) => {
    if (logLevel === "All" || logLevel === "None") return
    const annotations = fiber.getRef(References.CurrentLogAnnotations)
    const spans = fiber.getRef(References.CurrentLogSpans)
    const fields: Record<string, unknown> = {
      bot: fiber.getRef(CurrentBot),
      task: fiber.getRef(CurrentTask),
      fiber: fiber.id
    }
    for (const key of Object.keys(annotations)) fields[key] = annotations[key]
    for (const [label, start] of spans) fields[`${label}Ms`] = date.getTime() - start
    if (cause.reasons.length > 0) {
      fields.err = Cause.pretty(cause)
      // A typed error's fields (not only its message) say what went wrong; redaction applies to them too.
      const errors = cause.reasons.filter(Cause.isFailReason).map((r) => describeError(r.error))
      if (errors.length > 0) fields.error = errors.length === 1 ? errors[0] : errors
    }
    const parts = Array.isArray(message) ? message : [message]
    // JSON round trip: Redacted values serialize as "<redacted>", and nothing holds a reference.
    const safe = JSON.parse(JSON.stringify(fields)) as Record<string, unknown>
    sink[LEVELS[logLevel]](safe, parts.map(render).join(" "))
  })

/** Replaces Effect's loggers with pino and sets the minimum level. */
export const layer = (options: Options = {}): Layer.Layer<never> => {
  const sink = makePino(options)
  return Layer.mergeAll(
    Logger.layer([logger(sink)]),
    Layer.succeed(References.MinimumLogLevel, toEffectLevel(options.level ?? "info"))
  )
}

/** `layer` configured from the environment: `LOG_LEVEL` (default `info`), `LOG_PRETTY` (`true`/`false`). */
export const layerConfig: Layer.Layer<never, Config.ConfigError> = Layer.unwrap(
  Effect.gen(function*() {
    const level = yield* Config.Literals(["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const, "LOG_LEVEL").pipe(
      Config.withDefault("info" as const)
    )
    const prettyFlag = yield* Config.Boolean("LOG_PRETTY").pipe(Config.option)
    return layer({ level, pretty: prettyFlag._tag === "Some" ? prettyFlag.value : undefined })
  })
)
