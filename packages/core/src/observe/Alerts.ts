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
 * Holds are bounded (the breaker's `maxHolds`, 1,000 by default; a summary is kept to 1 KiB): a
 * firing alert beyond the bound is counted in `overflow` and not recorded, the breaker being held
 * open already. A firing alert whose `endsAt` lies in the future holds only until then unless it
 * is sent again; Alertmanager itself sends the zero time for a firing alert, so behind it a hold
 * lasts until the alert resolves or an operator resets the breaker.
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
import { createHash } from "node:crypto"
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

export interface AppliedAlert {
  readonly bot: string
  /** The `alertname` label (the id without one). */
  readonly alert: string
  /** The fingerprint (the sorted labels without one; hashed when long). */
  readonly id: string
}

export interface Applied {
  readonly paused: ReadonlyArray<AppliedAlert>
  readonly released: ReadonlyArray<AppliedAlert>
  /** Alerts without the action label, or naming a bot that does not run. */
  readonly ignored: number
  /** Firing alerts not recorded because their bot's breaker held `maxHolds` already (it stays open). */
  readonly overflow: number
}

const alertId = (a: Alert) => {
  const id = a.fingerprint ?? Object.entries(a.labels).sort(([x], [y]) => x.localeCompare(y)).map(([k, v]) => `${k}=${v}`).join(",")
  // The id is the key of a hold kept for as long as the alert fires: a bounded key, however long the labels.
  return id.length <= 128 ? id : `sha256:${createHash("sha256").update(id).digest("hex")}`
}

/** `endsAt` as ms since the epoch; Alertmanager's zero time and unparsable values give `undefined`. */
const endsAtMs = (a: Alert): number | undefined => {
  if (a.endsAt === undefined) return undefined
  const t = Date.parse(a.endsAt)
  return Number.isFinite(t) && t > 0 ? t : undefined
}

/** Applies a decoded payload to the bots' breakers. */
export const apply = (manager: BotManagerService, payload: Payload, options: Options = {}): Applied => {
  const actionLabel = options.actionLabel ?? "fiberbot_action"
  const pauseValue = options.pauseValue ?? "pause_intake"
  const botLabel = options.botLabel ?? "bot"
  const paused: Array<AppliedAlert> = []
  const released: Array<AppliedAlert> = []
  let ignored = 0
  let overflow = 0
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
    const until = endsAtMs(alert)
    for (const g of guards) {
      if (alert.status === "firing") {
        const summary = alert.annotations?.["summary"]
        if (g.breaker.hold(`alert:${id}`, `alert ${label} firing${summary ? `: ${summary}` : ""}`, { until })) paused.push({ bot: g.bot, alert: label, id })
        else overflow++
      } else {
        g.breaker.release(`alert:${id}`)
        released.push({ bot: g.bot, alert: label, id })
      }
    }
  }
  return { paused, released, ignored, overflow }
}
