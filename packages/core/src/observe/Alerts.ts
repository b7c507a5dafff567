/**
 * Alerts: an Alertmanager webhook receiver that can pause a bot's intake.
 *
 * Alertmanager posts groups of alerts (webhook payload version 4). A firing alert carrying the
 * action label (default `fiberbot_action="pause_intake"`) holds the intake breaker of the bot in
 * its `bot` label (every running bot when the label is absent) open; the same alert resolved
 * releases that hold, and the breaker closes through half-open. Each alert holds under its own
 * fingerprint, so two alerts on one bot must both resolve. Anything malformed is rejected as a
 * whole with a typed error and changes nothing.
 *
 * ```ts import.meta.vitest
 * import { expect } from "vitest"
 * import * as Alerts from "./Alerts.ts"
 * const parsed = Alerts.decode(JSON.stringify({ status: "firing", alerts: [{ status: "firing", labels: { alertname: "FiberLeak", fiberbot_action: "pause_intake" } }] }))
 * expect(parsed._tag).toBe("Success")
 * expect(Alerts.decode("{")._tag).toBe("Failure")
 * ```
 */
import { Data, Result, Schema } from "effect"
import type { Service as BotManagerService } from "../BotManager.ts"

const Labels = Schema.Record(Schema.String, Schema.String)

export const Alert = Schema.Struct({
  status: Schema.Literals(["firing", "resolved"]),
  labels: Labels,
  annotations: Schema.optional(Labels),
  fingerprint: Schema.optional(Schema.String),
  startsAt: Schema.optional(Schema.String),
  endsAt: Schema.optional(Schema.String)
})
export type Alert = typeof Alert.Type

export const Payload = Schema.Struct({
  version: Schema.optional(Schema.String),
  status: Schema.Literals(["firing", "resolved"]),
  receiver: Schema.optional(Schema.String),
  alerts: Schema.Array(Alert).check(Schema.isMaxLength(1000))
})
export type Payload = typeof Payload.Type

export class AlertPayloadError extends Data.TaggedError("AlertPayloadError")<{ readonly detail: string }> {
  override get message(): string {
    return `not an Alertmanager webhook payload: ${this.detail}`
  }
}

const decodePayload = Schema.decodeUnknownResult(Payload)

/** Parses a webhook body; a `Failure` says what is wrong with it. */
export const decode = (body: string): Result.Result<Payload, AlertPayloadError> => {
  let json: unknown
  try {
    json = JSON.parse(body)
  } catch (e) {
    return Result.fail(new AlertPayloadError({ detail: `invalid JSON (${(e as Error).message})` }))
  }
  return Result.mapError(decodePayload(json), (issue) => new AlertPayloadError({ detail: String(issue.message ?? issue) }))
}

export interface Options {
  /** The label that asks for an action (default `fiberbot_action`). */
  readonly actionLabel?: string | undefined
  /** Its value that pauses intake (default `pause_intake`). */
  readonly pauseValue?: string | undefined
  /** The label naming the bot (default `bot`; absent = every running bot). */
  readonly botLabel?: string | undefined
}

export interface Applied {
  readonly paused: ReadonlyArray<{ readonly bot: string; readonly alert: string }>
  readonly released: ReadonlyArray<{ readonly bot: string; readonly alert: string }>
  /** Alerts without the action label, or naming a bot that does not run. */
  readonly ignored: number
}

const alertId = (a: Alert) =>
  a.fingerprint ?? Object.entries(a.labels).sort(([x], [y]) => x.localeCompare(y)).map(([k, v]) => `${k}=${v}`).join(",")

/** Applies a decoded payload to the bots' breakers. */
export const apply = (manager: BotManagerService, payload: Payload, options: Options = {}): Applied => {
  const actionLabel = options.actionLabel ?? "fiberbot_action"
  const pauseValue = options.pauseValue ?? "pause_intake"
  const botLabel = options.botLabel ?? "bot"
  const paused: Array<{ bot: string; alert: string }> = []
  const released: Array<{ bot: string; alert: string }> = []
  let ignored = 0
  for (const alert of payload.alerts) {
    if (alert.labels[actionLabel] !== pauseValue) {
      ignored++
      continue
    }
    const name = alert.labels[botLabel]
    const guards = name === undefined ? manager.guards() : [manager.guard(name)].filter((g) => g !== undefined)
    if (guards.length === 0) {
      ignored++
      continue
    }
    const id = alertId(alert)
    const label = alert.labels["alertname"] ?? id
    for (const g of guards) {
      if (alert.status === "firing") {
        g.breaker.hold(`alert:${id}`, `alert ${label} firing${alert.annotations?.["summary"] ? `: ${alert.annotations["summary"]}` : ""}`)
        paused.push({ bot: g.bot, alert: label })
      } else {
        g.breaker.release(`alert:${id}`)
        released.push({ bot: g.bot, alert: label })
      }
    }
  }
  return { paused, released, ignored }
}
