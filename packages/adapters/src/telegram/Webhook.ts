/**
 * Webhook: the HTTP source of the Telegram adapter (node:http).
 *
 * One POST per update on `path`. The `X-Telegram-Bot-Api-Secret-Token` header is compared in
 * constant time (401 on mismatch); a Content-Type other than `application/json` gets 415, a body
 * over `maxBodyBytes` 413, a body that is not JSON or not an update 400. An update is answered
 * 200 once it is in the intake (not after it is handled: Telegram would time out and re-send),
 * 429 with `Retry-After` when the intake is full or the breaker is open, 503 while the bot stops.
 * An `update_id` seen recently is answered 200 without handling it again (Telegram re-sends after
 * a timeout); one whose request went away before the intake took it is forgotten, so the re-send
 * is handled. Every request runs as a fiber in the adapter's scope, so stopping the bot ends them.
 *
 * The server is reachable by anyone who finds it, so what one caller can hold is bounded: at most
 * `connectionLimit` connections (more are refused at accept), and a request must arrive whole
 * within `requestTimeout` (headers within 5 s), or it gets 408 and its connection is closed.
 * A port that cannot be listened on fails the start with `WebhookListenError`.
 */
import { type Adapter, Listen } from "@fiberbot/core"
import { Data, Duration, Effect, FiberSet, Redacted, Scope } from "effect"
import { timingSafeEqual } from "node:crypto"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as Decode from "./Decode.ts"
import type * as Offsets from "./Offsets.ts"

export interface Options {
  /** The public URL Telegram posts to; default `http://<host>:<port><path>` (emulator, tests). */
  readonly url?: string | undefined
  readonly host?: string | undefined
  /** 0 (default): the OS picks; read it back with `address()`. */
  readonly port?: number | undefined
  readonly path?: string | undefined
  readonly secretToken?: Redacted.Redacted<string> | undefined
  readonly maxBodyBytes?: number | undefined
  /** `max_connections` of `setWebhook`: how many connections Telegram opens to deliver (1..100). */
  readonly maxConnections?: number | undefined
  /**
   * Connections the server holds at once (default 256; node's `server.maxConnections`); further
   * ones are closed as they are accepted. Keep it above `maxConnections`.
   */
  readonly connectionLimit?: number | undefined
  /** How long a request may take to arrive whole, headers and body (default 10 s); then 408. */
  readonly requestTimeout?: Duration.Input | undefined
  readonly allowedUpdates?: ReadonlyArray<string> | undefined
  readonly dropPendingUpdates?: boolean | undefined
  /** Delete the webhook when the bot stops (default false: Telegram keeps queueing for the next start). */
  readonly deleteOnStop?: boolean | undefined
  /** How long a request may wait for room in a `backpressure` intake before 429 (default 5 s). */
  readonly offerTimeout?: Duration.Input | undefined
}

export interface Stats {
  received: number
  rejected: number
  duplicates: number
  busy: number
  /** Connections closed at accept because `connectionLimit` were open. */
  refusedConnections: number
}

/** The webhook server could not listen (the port is in use, the address is not this host's ...). */
export class WebhookListenError extends Data.TaggedError("WebhookListenError")<{
  readonly host: string
  readonly port: number
  readonly code: string
  readonly detail: string
}> {
  override get message(): string {
    return `the webhook server could not listen on ${this.host}:${this.port}: ${this.code}${this.code === "EADDRINUSE" ? " (the port is in use)" : ""}: ${this.detail}`
  }
}

const isJson = (contentType: string | undefined): boolean =>
  (contentType ?? "").split(";")[0]!.trim().toLowerCase() === "application/json"

const sameSecret = (given: string | undefined, expected: Buffer): boolean => {
  const g = Buffer.from(given ?? "", "utf8")
  // Compare equal lengths only, but always do the work, so timing says nothing about the secret.
  if (g.length !== expected.length) {
    timingSafeEqual(expected, expected)
    return false
  }
  return timingSafeEqual(g, expected)
}

const readBody = (req: Http.IncomingMessage, max: number) =>
  Effect.callback<Buffer | "too-large" | "aborted">((resume) => {
    const declared = Number(req.headers["content-length"] ?? "0")
    if (declared > max) {
      resume(Effect.succeed("too-large"))
      return
    }
    const chunks: Array<Buffer> = []
    let size = 0
    let settled = false
    const settle = (v: Buffer | "too-large" | "aborted") => {
      if (settled) return
      settled = true
      req.off("data", onData)
      resume(Effect.succeed(v))
    }
    const onData = (c: Buffer) => {
      size += c.length
      if (size > max) settle("too-large")
      else chunks.push(c)
    }
    req.on("data", onData)
    req.once("end", () => settle(Buffer.concat(chunks)))
    req.once("error", () => settle("aborted"))
    req.once("close", () => settle("aborted"))
  })

/** Starts the server; returns its address. The server closes with the current scope. */
export const serve = (params: {
  readonly adapter: string
  readonly ctx: Adapter.AdapterContext
  readonly tracker: Offsets.Tracker
  readonly stats: Stats
  readonly options: Options
}): Effect.Effect<AddressInfo, WebhookListenError, Scope.Scope> =>
  Effect.gen(function*() {
    const { adapter, ctx, tracker, stats, options } = params
    const path = options.path ?? "/telegram"
    const max = options.maxBodyBytes ?? 1024 * 1024
    const secret = options.secretToken === undefined ? undefined : Buffer.from(Redacted.value(options.secretToken), "utf8")
    const offerTimeout = Duration.fromInputUnsafe(options.offerTimeout ?? "5 seconds")
    const connectionLimit = Math.max(1, options.connectionLimit ?? 256)
    const requestTimeoutMs = Math.max(1, Math.ceil(Duration.toMillis(Duration.fromInputUnsafe(options.requestTimeout ?? "10 seconds"))))

    const send = (res: Http.ServerResponse, status: number, body = "", headers: Record<string, string> = {}) => {
      if (res.headersSent || res.destroyed) return
      res.writeHead(status, { "content-type": "text/plain", "content-length": String(Buffer.byteLength(body)), ...headers })
      res.end(body)
    }

    const handle = (req: Http.IncomingMessage, res: Http.ServerResponse) =>
      Effect.gen(function*() {
        stats.received++
        if ((req.url ?? "").split("?")[0] !== path) return send(res, 404, "not found")
        if (req.method !== "POST") return send(res, 405, "method not allowed", { allow: "POST" })
        if (secret !== undefined) {
          const header = req.headers["x-telegram-bot-api-secret-token"]
          if (!sameSecret(Array.isArray(header) ? header[0] : header, secret)) {
            stats.rejected++
            return send(res, 401, "secret token is wrong")
          }
        }
        if (!isJson(req.headers["content-type"])) {
          stats.rejected++
          send(res, 415, "content-type must be application/json", { connection: "close" })
          req.resume()
          return
        }
        const body = yield* readBody(req, max)
        if (body === "aborted") return
        if (body === "too-large") {
          stats.rejected++
          send(res, 413, "payload too large", { connection: "close" })
          req.resume()
          return
        }
        let raw: unknown
        try {
          raw = JSON.parse(body.toString("utf8"))
        } catch {
          stats.rejected++
          return send(res, 400, "body is not JSON")
        }
        const decoded = Decode.decode(adapter, raw)
        if (decoded === undefined) {
          stats.rejected++
          return send(res, 400, "not a Telegram update (no numeric update_id)")
        }
        const id = Number(decoded.id)
        if (tracker.seen(id)) {
          stats.duplicates++
          return send(res, 200)
        }
        tracker.begin(id)
        const result = yield* ctx.offer({ ...decoded, onDone: (handled) => tracker.finish(id, handled) }).pipe(
          Effect.timeoutOption(offerTimeout),
          // The caller went away while the offer waited for room: the intake never took the update,
          // so its id must not stay "in flight", or Telegram's re-send would be acknowledged as a
          // duplicate and never handled.
          Effect.onInterrupt(() => Effect.sync(() => tracker.finish(id, false)))
        )
        const answer = result._tag === "Some" ? result.value : "busy"
        if (answer === "accepted") return send(res, 200)
        // Not taken: forget it so Telegram's re-send is handled.
        tracker.finish(id, false)
        if (answer === "busy") {
          stats.busy++
          return send(res, 429, "busy", { "retry-after": "1" })
        }
        return send(res, 503, "stopping", { "retry-after": "5" })
      })

    const requests = yield* FiberSet.make<void, never>()
    const run = yield* FiberSet.runtime(requests)()
    const server = Http.createServer({
      keepAliveTimeout: 60_000,
      requestTimeout: requestTimeoutMs,
      headersTimeout: Math.min(5_000, requestTimeoutMs),
      // node checks these timeouts on this interval (30 s by default), which would stretch them
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(requestTimeoutMs / 4)))
    }, (req, res) => {
      const fiber = run(handle(req, res))
      res.once("close", () => {
        if (!res.writableFinished) fiber.interruptUnsafe()
      })
    })
    server.maxConnections = connectionLimit
    server.on("drop", () => {
      stats.refusedConnections++
    })
    const host = options.host ?? "127.0.0.1"
    const port = options.port ?? 0
    const address = yield* Effect.acquireRelease(
      Listen.listen(server, { host, port }, (e) => run(Effect.logWarning(`telegram webhook server: ${e.message}`))).pipe(
        Effect.mapError((e) => new WebhookListenError({ host, port, code: e.code, detail: e.cause instanceof Error ? e.cause.message : String(e.cause) }))
      ),
      () =>
        Effect.callback<void>((resume) => {
          server.close(() => resume(Effect.void))
          server.closeAllConnections()
        })
    )
    return address
  })
