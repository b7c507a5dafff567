/**
 * Rest: Discord's HTTP API over undici, inside Discord's rate limits.
 *
 * Requests of one bucket (learned from `X-RateLimit-Bucket`, per major parameter: channel, guild,
 * webhook) go one at a time and wait for the bucket's reset when it has no requests left; all
 * requests share the global 50/s limit, except interaction callbacks. A 429 pauses its bucket (or
 * everything, when global) for `retry_after` and is retried a bounded number of times, as are 5xx
 * and network errors; each attempt has a timeout. Bucket permits are semaphores, so a request that
 * is interrupted (timeout, bot stop) always gives its permit back (discordeno PR #5274). 401, 403
 * and 429 responses are counted: Cloudflare bans a bot at 10,000 per 10 minutes, we warn far before.
 *
 * Every wait is bounded: a request that would wait longer than `maxRateLimitWait` for its bucket or
 * the global limit fails at once with a 429 `RestError` saying how long, and reset times the server
 * sends are capped at an hour, so a hostile or broken answer cannot stall a bucket for good.
 */
import { Clock, Duration, Effect, Redacted, Semaphore } from "effect"
import type {
  APIInteractionResponse,
  APIMessage,
  RESTGetAPIGatewayBotResult,
  RESTPatchAPIChannelMessageJSONBody,
  RESTPatchAPIWebhookWithTokenMessageJSONBody,
  RESTPostAPIChannelMessageJSONBody,
  RESTPostAPIWebhookWithTokenJSONBody
} from "discord-api-types/v10"
import { Agent, FormData, request as undiciRequest } from "undici"
import * as Body from "../shared/Body.ts"
import { RestError } from "./Errors.ts"

export const DEFAULT_BASE = "https://discord.com/api/v10"
export const USER_AGENT = "DiscordBot (https://github.com/fiberbot/fiberbot, 0.1.0)"

export interface Options {
  readonly token: Redacted.Redacted<string>
  readonly baseUrl?: string | undefined
  /** Per-attempt timeout (default 15 s). */
  readonly timeout?: Duration.Input | undefined
  /** Retries after a 5xx or a network error (default 3). */
  readonly retries?: number | undefined
  /** Retries after a 429 (default 5). */
  readonly rateLimitRetries?: number | undefined
  readonly globalPerSecond?: number | undefined
  /** Invalid responses (401/403/429) per 10 minutes at which to start warning (default 1,000). */
  readonly invalidWarnAt?: number | undefined
  /** Longest wait for a rate limit before a request fails instead (default 60 s). */
  readonly maxRateLimitWait?: Duration.Input | undefined
  /** Largest response body read (default 32 MiB); a larger one is a failed attempt. */
  readonly maxResponseBytes?: number | undefined
}

export interface FileUpload {
  readonly name: string
  readonly data: Uint8Array
  readonly contentType?: string | undefined
}

export interface RequestOptions {
  readonly body?: unknown
  readonly files?: ReadonlyArray<FileUpload> | undefined
  readonly reason?: string | undefined
}

export interface Rest {
  readonly request: <A = unknown>(method: string, path: string, options?: RequestOptions) => Effect.Effect<A, RestError>
  readonly getGatewayBot: () => Effect.Effect<RESTGetAPIGatewayBotResult, RestError>
  readonly createMessage: (channelId: string, body: RESTPostAPIChannelMessageJSONBody, files?: ReadonlyArray<FileUpload>) => Effect.Effect<APIMessage, RestError>
  readonly editMessage: (channelId: string, messageId: string, body: RESTPatchAPIChannelMessageJSONBody) => Effect.Effect<APIMessage, RestError>
  readonly deleteMessage: (channelId: string, messageId: string) => Effect.Effect<void, RestError>
  readonly addReaction: (channelId: string, messageId: string, emoji: string) => Effect.Effect<void, RestError>
  readonly deleteOwnReaction: (channelId: string, messageId: string, emoji: string) => Effect.Effect<void, RestError>
  readonly createInteractionResponse: (interactionId: string, token: string, body: APIInteractionResponse, files?: ReadonlyArray<FileUpload>) => Effect.Effect<void, RestError>
  readonly createFollowup: (applicationId: string, token: string, body: RESTPostAPIWebhookWithTokenJSONBody, files?: ReadonlyArray<FileUpload>) => Effect.Effect<APIMessage, RestError>
  readonly editOriginal: (applicationId: string, token: string, body: RESTPatchAPIWebhookWithTokenMessageJSONBody, files?: ReadonlyArray<FileUpload>) => Effect.Effect<APIMessage, RestError>
  /** Invalid responses (401/403/429, not "shared" 429s) in the last 10 minutes. */
  readonly invalidRequests: () => number
  readonly close: Effect.Effect<void>
}

interface Bucket {
  readonly lock: Semaphore.Semaphore
  remaining: number | undefined
  resetAt: number
  /** Requests holding or waiting for the lock: a bucket in use is never forgotten (its waiters would split off). */
  users: number
}

/**
 * The rate-limit route of a request: ids collapse to `:id` except the major parameter, reactions
 * share one route, webhooks keep their token as part of the major parameter.
 */
export const routeOf = (method: string, path: string): { readonly route: string; readonly major: string } => {
  const parts = path.split("?")[0]!.split("/")
  const top = parts[1]
  const hasMajor = (top === "channels" || top === "guilds" || top === "webhooks") && parts[2] !== undefined
  const out: Array<string> = []
  for (let i = 0; i < parts.length; i++) {
    const seg = parts[i]!
    if (i > 0 && parts[i - 1] === "reactions") {
      out.push(":reaction")
      break
    }
    if (top === "interactions" && (i === 2 || i === 3)) out.push(i === 2 ? ":id" : ":token")
    else if (top === "webhooks" && i === 3) out.push(":token")
    else if (/^\d{5,}$/.test(seg) && !(hasMajor && i === 2)) out.push(":id")
    else out.push(seg)
  }
  const major = !hasMajor ? "-" : top === "webhooks" && parts[3] !== undefined ? `${parts[2]}/${parts[3]}` : parts[2]!
  return { route: `${method} ${out.join("/")}`, major }
}

const TEN_MINUTES = 600_000
/** Reset and retry times above this are taken as this: Discord's own are seconds to minutes. */
const MAX_RESET_MS = 3_600_000
/** Buckets kept before idle ones are forgotten, oldest first, down to `BUCKETS_AFTER_PRUNE`. */
const BUCKETS_MAX = 10_000
const BUCKETS_AFTER_PRUNE = 9_000

/** A reset or retry time in seconds from a header or body, as milliseconds within [0, 1 h]. */
const resetMs = (seconds: unknown): number | undefined => {
  const n = typeof seconds === "number" ? seconds : typeof seconds === "string" && seconds.trim() !== "" ? Number(seconds) : Number.NaN
  return Number.isFinite(n) ? Math.min(MAX_RESET_MS, Math.max(0, n * 1000)) : undefined
}

export const make = (options: Options): Effect.Effect<Rest> =>
  Effect.gen(function*() {
    const clock = yield* Clock.Clock
    const now = () => clock.currentTimeMillisUnsafe()
    const base = (options.baseUrl ?? DEFAULT_BASE).replace(/\/$/, "")
    const timeout = options.timeout ?? "15 seconds"
    const retries = options.retries ?? 3
    const rateLimitRetries = options.rateLimitRetries ?? 5
    const globalPerSecond = options.globalPerSecond ?? 50
    const warnAt = options.invalidWarnAt ?? 1000
    const maxWaitMs = Duration.toMillis(Duration.fromInputUnsafe(options.maxRateLimitWait ?? "60 seconds"))
    const maxResponseBytes = options.maxResponseBytes ?? 32 * 1024 * 1024
    // short keep-alive: hosts drop idle sockets and a stale one costs a whole timeout (discord.js#11554)
    const agent = new Agent({ keepAliveTimeout: 4_000, keepAliveMaxTimeout: 10_000, connections: 64 })
    const routeToBucket = new Map<string, string>()
    const buckets = new Map<string, Bucket>()
    const globalTimes: Array<number> = []
    let globalPausedUntil = 0
    const invalid: Array<number> = []
    let warnedLevel = 0

    const bucketFor = (key: string): Bucket => {
      let b = buckets.get(key)
      if (b === undefined) {
        if (buckets.size >= BUCKETS_MAX) {
          // Forget idle buckets, oldest first, instead of growing forever (each interaction's
          // webhook token is a major parameter of its own). Down to well below the bound, so the
          // scan runs once per thousand new buckets, not for every one. A forgotten bucket that
          // was still limited costs at most one 429, which teaches it again.
          const t = now()
          for (const [k, v] of buckets) {
            if (buckets.size <= BUCKETS_AFTER_PRUNE) break
            if (v.users === 0 && v.resetAt <= t) buckets.delete(k)
          }
          for (const [k, v] of buckets) {
            if (buckets.size <= BUCKETS_AFTER_PRUNE) break
            if (v.users === 0) buckets.delete(k)
          }
        }
        b = { lock: Semaphore.makeUnsafe(1), remaining: undefined, resetAt: 0, users: 0 }
        buckets.set(key, b)
      }
      return b
    }

    const countInvalid = Effect.suspend(() => {
      const t = now()
      invalid.push(t)
      while (invalid.length > 0 && t - invalid[0]! >= TEN_MINUTES) invalid.shift()
      const level = Math.floor(invalid.length / warnAt)
      if (level > warnedLevel) {
        warnedLevel = level
        return Effect.logWarning(
          `discord REST: ${invalid.length} invalid requests (401/403/429) in 10 minutes; Cloudflare bans at 10,000: find the failing route and stop it`
        )
      }
      if (level < warnedLevel) warnedLevel = level
      return Effect.void
    })

    /** Waits for a slot of the global limit; the wait in ms instead when it would be longer than allowed. */
    const waitGlobal: Effect.Effect<number | undefined> = Effect.gen(function*() {
      while (true) {
        const t = yield* Clock.currentTimeMillis
        if (t < globalPausedUntil) {
          if (globalPausedUntil - t > maxWaitMs) return globalPausedUntil - t
          yield* Effect.sleep(globalPausedUntil - t)
          continue
        }
        while (globalTimes.length > 0 && t - globalTimes[0]! >= 1000) globalTimes.shift()
        if (globalTimes.length < globalPerSecond) {
          globalTimes.push(t)
          return undefined
        }
        yield* Effect.sleep(globalTimes[0]! + 1000 - t)
      }
    })

    type Attempt =
      | { readonly _tag: "ok"; readonly status: number; readonly headers: Record<string, string | Array<string> | undefined>; readonly text: string }
      | { readonly _tag: "network"; readonly error: unknown }
    /** An attempt, or no attempt because the wait for the rate limit would be too long. */
    type Outcome = Attempt | { readonly _tag: "limited"; readonly waitMs: number; readonly global: boolean }

    const attempt = (method: string, url: string, path: string, opts: RequestOptions): Effect.Effect<Attempt> => {
      const headers: Record<string, string> = { "user-agent": USER_AGENT }
      if (!/^\/(interactions|webhooks)\//.test(path)) headers.authorization = `Bot ${Redacted.value(options.token)}`
      if (opts.reason !== undefined) headers["x-audit-log-reason"] = encodeURIComponent(opts.reason)
      let body: string | FormData | null = null
      if (opts.files !== undefined && opts.files.length > 0) {
        const form = new FormData()
        if (opts.body !== undefined) form.append("payload_json", JSON.stringify(opts.body))
        opts.files.forEach((f, i) => form.append(`files[${i}]`, new Blob([f.data], { type: f.contentType ?? "application/octet-stream" }), f.name))
        body = form
      } else if (opts.body !== undefined) {
        headers["content-type"] = "application/json"
        body = JSON.stringify(opts.body)
      }
      return Effect.tryPromise({
        try: async (signal) => {
          const res = await undiciRequest(url, { method: method as "GET", headers, body, dispatcher: agent, signal })
          return { _tag: "ok" as const, status: res.statusCode, headers: res.headers, text: await Body.readText(res, maxResponseBytes) }
        },
        catch: (error) => error
      }).pipe(
        Effect.timeoutOrElse({ duration: timeout, orElse: () => Effect.fail(new Error(`timed out after ${Duration.format(Duration.fromInputUnsafe(timeout))}`)) }),
        Effect.catch((error) => Effect.succeed<Attempt>({ _tag: "network", error }))
      )
    }

    const header = (h: Record<string, string | Array<string> | undefined>, name: string): string | undefined => {
      const v = h[name]
      return Array.isArray(v) ? v[0] : v
    }

    const parse = (text: string): unknown => {
      if (text.length === 0) return undefined
      try {
        return JSON.parse(text)
      } catch {
        return text
      }
    }

    const request = <A>(method: string, path: string, opts: RequestOptions = {}): Effect.Effect<A, RestError> => {
      const { route, major } = routeOf(method, path)
      const isCallback = /^POST \/interactions\/:id\/:token\/callback$/.test(route)
      const url = `${base}${path}`
      const fail = (status: number | undefined, reason: string, body?: unknown, cause?: unknown) =>
        new RestError({
          method,
          route,
          status,
          code: typeof (body as { code?: unknown })?.code === "number" ? (body as { code: number }).code : undefined,
          reason,
          cause
        })
      const once = Effect.gen(function*() {
        let serverErrors = 0
        let limited = 0
        while (true) {
          const key = `${routeToBucket.get(route) ?? route}|${major}`
          const bucket = bucketFor(key)
          // counted in and out as one acquire/release, so an interruption anywhere leaves the count right
          const result: Outcome = yield* Effect.acquireUseRelease(Effect.sync(() => bucket.users++), () => Semaphore.withPermit(bucket.lock, Effect.gen(function*(): Effect.fn.Return<Outcome> {
            const t = yield* Clock.currentTimeMillis
            if (bucket.remaining === 0 && t < bucket.resetAt) {
              if (bucket.resetAt - t > maxWaitMs) return { _tag: "limited", waitMs: bucket.resetAt - t, global: false } as const
              yield* Effect.sleep(bucket.resetAt - t)
            }
            if (!isCallback) {
              const globalWait = yield* waitGlobal
              if (globalWait !== undefined) return { _tag: "limited", waitMs: globalWait, global: true } as const
            }
            const r = yield* attempt(method, url, path, opts)
            if (r._tag === "network") return r
            const hash = header(r.headers, "x-ratelimit-bucket")
            const remaining = header(r.headers, "x-ratelimit-remaining")
            const resetAfter = header(r.headers, "x-ratelimit-reset-after")
            const at = yield* Clock.currentTimeMillis
            if (hash !== undefined && routeToBucket.get(route) !== hash) {
              routeToBucket.set(route, hash)
              if (!buckets.has(`${hash}|${major}`)) buckets.set(`${hash}|${major}`, bucket)
            }
            if (remaining !== undefined) bucket.remaining = Number(remaining)
            const resetAfterMs = resetMs(resetAfter)
            if (resetAfterMs !== undefined) bucket.resetAt = at + resetAfterMs
            if (r.status === 429) {
              const body = parse(r.text) as { retry_after?: unknown; global?: unknown } | undefined
              const retryMs = resetMs(body?.retry_after) ?? resetMs(header(r.headers, "retry-after")) ?? 1000
              const scope = header(r.headers, "x-ratelimit-scope")
              const global = header(r.headers, "x-ratelimit-global") === "true" || body?.global === true
              if (global) globalPausedUntil = Math.max(globalPausedUntil, at + retryMs)
              else {
                bucket.remaining = 0
                bucket.resetAt = Math.max(bucket.resetAt, at + retryMs)
              }
              if (scope !== "shared") yield* countInvalid
              yield* Effect.logDebug(`discord REST 429 on ${route}: retry after ${retryMs} ms (${global ? "global" : scope ?? "bucket"})`)
            } else if (r.status === 401 || r.status === 403) yield* countInvalid
            return r
          })), () => Effect.sync(() => bucket.users--))
          if (result._tag === "limited") {
            return yield* fail(
              429,
              `rate limited${result.global ? " (global)" : ""}: would wait ${Math.ceil(result.waitMs / 1000)} s, over the ${Math.ceil(maxWaitMs / 1000)} s allowed`
            )
          }
          if (result._tag === "network") {
            if (++serverErrors > retries) return yield* fail(undefined, `network error: ${String(result.error)}`, undefined, result.error)
            yield* Effect.sleep(Math.floor(250 * 2 ** serverErrors * (0.5 + Math.random() / 2)))
            continue
          }
          const body = parse(result.text)
          if (result.status === 429) {
            if (++limited > rateLimitRetries) return yield* fail(429, "rate limited, retries exhausted", body)
            continue
          }
          if (result.status >= 500) {
            if (++serverErrors > retries) return yield* fail(result.status, "server error, retries exhausted", body)
            yield* Effect.sleep(Math.floor(250 * 2 ** serverErrors * (0.5 + Math.random() / 2)))
            continue
          }
          if (result.status >= 400) {
            const message = typeof (body as { message?: unknown })?.message === "string" ? (body as { message: string }).message : `HTTP ${result.status}`
            return yield* fail(result.status, message, body)
          }
          return body as A
        }
      })
      return once
    }

    const rest: Rest = {
      request,
      getGatewayBot: () => request<RESTGetAPIGatewayBotResult>("GET", "/gateway/bot"),
      createMessage: (channelId, body, files) => request<APIMessage>("POST", `/channels/${channelId}/messages`, { body, files }),
      editMessage: (channelId, messageId, body) => request<APIMessage>("PATCH", `/channels/${channelId}/messages/${messageId}`, { body }),
      deleteMessage: (channelId, messageId) => Effect.asVoid(request("DELETE", `/channels/${channelId}/messages/${messageId}`)),
      addReaction: (channelId, messageId, emoji) =>
        Effect.asVoid(request("PUT", `/channels/${channelId}/messages/${messageId}/reactions/${encodeURIComponent(emoji)}/@me`)),
      deleteOwnReaction: (channelId, messageId, emoji) =>
        Effect.asVoid(request("DELETE", `/channels/${channelId}/messages/${messageId}/reactions/${encodeURIComponent(emoji)}/@me`)),
      createInteractionResponse: (interactionId, token, body, files) =>
        Effect.asVoid(request("POST", `/interactions/${interactionId}/${token}/callback`, { body, files })),
      createFollowup: (applicationId, token, body, files) => request<APIMessage>("POST", `/webhooks/${applicationId}/${token}`, { body, files }),
      editOriginal: (applicationId, token, body, files) => request<APIMessage>("PATCH", `/webhooks/${applicationId}/${token}/messages/@original`, { body, files }),
      invalidRequests: () => {
        const t = now()
        while (invalid.length > 0 && t - invalid[0]! >= TEN_MINUTES) invalid.shift()
        return invalid.length
      },
      close: Effect.promise(() => agent.close()).pipe(Effect.timeoutOption("2 seconds"), Effect.asVoid)
    }
    return rest
  })
