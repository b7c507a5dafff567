/**
 * DebugServer: the operator's window into a running bot process, over plain HTTP.
 *
 * `/metrics` (Prometheus text), `/debug/fibers?debug=1|2` (a grouped or full fiber dump; JSON with
 * `Accept: application/json`; each call keeps a snapshot in a small ring of its own and names it in
 * `X-Fiberbot-Snapshot`), `/debug/fibers/diff?from=&to=`, `/debug/tasks`, `/debug/watchdog`,
 * `/healthz`, `/readyz` (each also answers HEAD), and actions: `POST /alerts` (Alertmanager),
 * `POST /debug/breaker`, `POST /debug/heap-snapshot`.
 *
 * It binds 127.0.0.1 by default. Actions always need the bearer token; binding anywhere else needs
 * a token for every endpoint, and the server refuses to start without one. On loopback a request
 * without the token must name a loopback host (`Host: 127.0.0.1 | localhost | [::1]`), so a web
 * page cannot reach it through a DNS name rebound to 127.0.0.1 (421 otherwise). The token and host
 * are checked from the headers before any body is read; only `POST /alerts` reads one, capped
 * (413). Malformed input is a 400 that changes nothing, unknown snapshot ids a 404. Requests run as
 * fibers of a `FiberSet` owned by the server's scope, so closing the scope stops them all.
 */
import { Context, Data, Duration, Effect, FiberSet, Layer, Redacted, Schedule, Scope } from "effect"
import { createHash, timingSafeEqual } from "node:crypto"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { BotManager } from "../BotManager.ts"
import * as Listen from "../Listen.ts"
import * as FiberDump from "../guard/FiberDump.ts"
import * as HeapSnapshot from "../guard/HeapSnapshot.ts"
import * as Watchdog from "../guard/Watchdog.ts"
import * as Alerts from "./Alerts.ts"
import * as Metrics from "./Metrics.ts"

export interface Options {
  /** Interface to bind (default 127.0.0.1). Anything else requires `token`. */
  readonly host?: string | undefined
  /** Port (default 0: the OS picks one; read it from `port`). */
  readonly port?: number | undefined
  /** Bearer token for actions, and for everything when not on loopback. */
  readonly token?: Redacted.Redacted<string> | undefined
  /** Largest accepted request body (default 64 KiB). */
  readonly maxBodyBytes?: number | undefined
  /** Fiber snapshots taken every `snapshotEvery` kept for diffs (default 64). */
  readonly snapshots?: number | undefined
  /**
   * Fiber snapshots taken for requests (each `GET /debug/fibers`, `POST /debug/fibers/snapshots`)
   * kept for diffs, in a ring of their own so requests cannot push out the periodic ones (default 16).
   */
  readonly requestSnapshots?: number | undefined
  /**
   * Also take a snapshot this often, so a diff can reach back without anyone having asked for a
   * dump (default 1 minute: with 64 kept, about an hour; `false`: only on request).
   */
  readonly snapshotEvery?: Duration.Input | false | undefined
  readonly watchdog?: Watchdog.Watchdog | undefined
  readonly heapSnapshots?: HeapSnapshot.HeapSnapshots | undefined
  readonly alerts?: Alerts.Options | undefined
}

export interface DebugServer {
  readonly host: string
  readonly port: number
  /** `http://host:port` */
  readonly url: string
  readonly snapshots: FiberDump.Snapshots
  readonly metrics: Metrics.Collector
}

export class DebugServerError extends Data.TaggedError("DebugServerError")<{ readonly reason: string; readonly cause?: unknown }> {
  override get message(): string {
    return `debug server: ${this.reason}`
  }
}

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"])
// What a client that really means this machine puts in `Host`, with or without the port.
const LOOPBACK_HOST = /^(?:127\.0\.0\.1|localhost|\[::1\])(?::\d{1,5})?$/i
// The auth scheme is case-insensitive (RFC 9110 11.1), and one or more spaces may follow it.
const BEARER = /^bearer +/i

interface Reply {
  readonly status: number
  readonly body: string
  readonly type?: string | undefined
  readonly headers?: Readonly<Record<string, string>> | undefined
}

const json = (status: number, value: unknown, headers?: Record<string, string>): Reply => ({
  status,
  body: JSON.stringify(value, null, 2) + "\n",
  type: "application/json; charset=utf-8",
  headers
})
const text = (status: number, body: string, headers?: Record<string, string>): Reply => ({
  status,
  body: body.endsWith("\n") ? body : body + "\n",
  type: "text/plain; charset=utf-8",
  headers
})
const problem = (status: number, error: string, detail?: string) => json(status, detail === undefined ? { error } : { error, detail })

const digest = (s: string) => createHash("sha256").update(s).digest()

/** At most the first five distinct alert ids, each cut to 64 characters: bounded, however many came. */
const fewAlerts = (alerts: ReadonlyArray<Alerts.AppliedAlert>): string => {
  const ids = [...new Set(alerts.map((a) => a.id))]
  if (ids.length === 0) return ""
  const shown = ids.slice(0, 5).map((id) => (id.length > 64 ? id.slice(0, 63) + "…" : id))
  return ` (${ids.length === 1 ? "alert" : `${ids.length} alerts`} ${shown.join(", ")}${ids.length > shown.length ? ", …" : ""})`
}

export const make = (options: Options = {}): Effect.Effect<DebugServer, DebugServerError, BotManager | Scope.Scope> =>
  Effect.gen(function*() {
    const manager = yield* BotManager
    const host = options.host ?? "127.0.0.1"
    const loopback = LOOPBACK.has(host)
    const token = options.token
    if (!loopback && token === undefined) {
      return yield* new DebugServerError({
        reason: `binding ${host} exposes fiber dumps and metrics beyond this machine; give a token (Redacted) or bind 127.0.0.1`
      })
    }
    const maxBody = options.maxBodyBytes ?? 64 * 1024
    const snapshots = new FiberDump.Snapshots(manager.registry, options.snapshots ?? 64, options.requestSnapshots ?? 16)
    const metrics = Metrics.makeCollector(manager, { watchdog: options.watchdog })
    const expected = token === undefined ? undefined : digest(Redacted.value(token))

    const authorized = (req: IncomingMessage) => {
      const header = req.headers.authorization
      if (expected === undefined || header === undefined) return false
      const scheme = BEARER.exec(header)
      if (scheme === null) return false
      return timingSafeEqual(digest(header.slice(scheme[0].length)), expected)
    }

    // HEAD is GET without the body (node:http leaves the body out of a HEAD response).
    const methodOf = (req: IncomingMessage) => (req.method === "HEAD" ? "GET" : req.method ?? "GET")

    /** The refusal a request gets from its headers alone, before its body is read; `undefined` lets it in. */
    const gate = (req: IncomingMessage): Reply | undefined => {
      const ok = authorized(req)
      // A browser sends the name it resolved: a page on a DNS name rebound to 127.0.0.1 would get
      // past the loopback bind. Such a page cannot know the token, so a request with it may pass.
      const host = req.headers.host
      if (loopback && !ok && host !== undefined && !LOOPBACK_HOST.test(host)) {
        return problem(421, "misdirected request", "this debug server answers only to Host 127.0.0.1, localhost or [::1] (or with the token)")
      }
      if ((methodOf(req) === "POST" || !loopback) && !ok) {
        return {
          ...problem(401, "unauthorized", token === undefined ? "this endpoint needs a token: start the debug server with one" : "send Authorization: Bearer <token>"),
          headers: { "www-authenticate": "Bearer" }
        }
      }
      return undefined
    }

    const wantsJson = (req: IncomingMessage, url: URL) =>
      url.searchParams.get("format") === "json" || (req.headers.accept ?? "").includes("application/json")

    const route = (req: IncomingMessage, url: URL, body: string): Effect.Effect<Reply> =>
      Effect.gen(function*() {
        const method = methodOf(req)
        const path = url.pathname
        const get = (m: string) => (method === m ? undefined : problem(405, "method not allowed", `use ${m} ${path}`))

        switch (path) {
          case "/healthz":
            return get("GET") ?? text(200, "ok")
          case "/readyz": {
            const bots = yield* manager.status()
            const running = bots.filter((b) => b.state === "running")
            const notReady = [
              ...(running.length === 0 ? ["no bot is running"] : []),
              ...running.filter((b) => b.breaker !== undefined && b.breaker !== "closed" && b.breaker !== "forced_closed").map((b) => `bot ${b.name}: breaker ${b.breaker}`)
            ]
            return get("GET") ?? json(notReady.length === 0 ? 200 : 503, { ready: notReady.length === 0, bots: running.map((b) => b.name), reasons: notReady })
          }
          case "/metrics":
            return get("GET") ?? { status: 200, body: yield* metrics.render, type: "text/plain; version=0.0.4; charset=utf-8" }
          case "/debug/fibers": {
            if (method !== "GET") return problem(405, "method not allowed", "use GET")
            const level = url.searchParams.get("debug") ?? "1"
            if (level !== "1" && level !== "2") return problem(400, "bad debug level", `debug must be 1 or 2, got ${JSON.stringify(level.slice(0, 20))}`)
            const bot = url.searchParams.get("bot") ?? undefined
            const snap = snapshots.take({ bot, requested: true })
            const headers = { "x-fiberbot-snapshot": String(snap.id) }
            if (level === "1") {
              return wantsJson(req, url) ? json(200, { snapshot: snap.id, ...snap.profile }, headers) : text(200, FiberDump.debug1(snap.profile), headers)
            }
            const fibers = manager.registry.fibers({ bot })
            return wantsJson(req, url) ? json(200, { snapshot: snap.id, ...FiberDump.fibersJson(fibers) }, headers) : text(200, FiberDump.debug2(fibers), headers)
          }
          case "/debug/fibers/snapshots":
            if (method === "POST") return json(201, { id: snapshots.take({ bot: url.searchParams.get("bot") ?? undefined, requested: true }).id })
            return get("GET") ?? json(200, { snapshots: snapshots.list() })
          case "/debug/fibers/diff": {
            if (method !== "GET") return problem(405, "method not allowed", "use GET")
            const rawFrom = url.searchParams.get("from")
            const rawTo = url.searchParams.get("to") ?? "now"
            const from = FiberDump.parseSnapshotId(rawFrom)
            const to = FiberDump.parseSnapshotId(rawTo)
            if (from === undefined || to === undefined) {
              return problem(400, "bad snapshot id", "from and to must be snapshot ids (numbers from X-Fiberbot-Snapshot) or \"now\"")
            }
            const diff = snapshots.diff(from, to, url.searchParams.get("bot") ?? undefined)
            if (diff instanceof FiberDump.SnapshotNotFound) return problem(404, "unknown snapshot", diff.message)
            if (diff instanceof FiberDump.SnapshotBotMismatch) return problem(400, "snapshots of different bots", diff.message)
            return wantsJson(req, url) ? json(200, diff) : text(200, FiberDump.formatDiff(diff))
          }
          case "/debug/tasks":
            return get("GET") ?? json(200, { bots: yield* manager.status() })
          case "/debug/watchdog":
            if (options.watchdog === undefined) return problem(404, "no watchdog", "start the debug server with the watchdog to see it here")
            return get("GET") ?? json(200, { ...options.watchdog.status(), history: options.watchdog.history().map((e) => e._tag === "Tripped" ? { ...e, dump: e.dump.split("\n").slice(0, 21) } : e) })
          case "/debug/breaker": {
            if (method !== "POST") return problem(405, "method not allowed", "use POST /debug/breaker?bot=<name>&action=force_open|force_closed|reset")
            const bot = url.searchParams.get("bot") ?? ""
            const guard = manager.guard(bot)
            if (guard === undefined) return problem(404, "unknown bot", `no running bot named ${JSON.stringify(bot.slice(0, 64))}`)
            const action = url.searchParams.get("action")
            const reason = (url.searchParams.get("reason") ?? "debug endpoint").slice(0, 200)
            if (action === "force_open") guard.breaker.forceOpen(reason)
            else if (action === "force_closed") guard.breaker.forceClosed(reason)
            else if (action === "reset") guard.breaker.reset(reason)
            else return problem(400, "bad action", "action must be force_open, force_closed or reset")
            return json(200, { bot, state: guard.breaker.state() })
          }
          case "/debug/heap-snapshot": {
            if (method !== "POST") return problem(405, "method not allowed", "use POST")
            if (options.heapSnapshots === undefined) return problem(404, "heap snapshots are off", "start the debug server with heapSnapshots")
            const taken = yield* Effect.result(options.heapSnapshots.take("debug-endpoint"))
            if (taken._tag === "Success") return json(201, taken.success)
            const refused = taken.failure
            return problem(refused.reason === "rate-limited" ? 429 : refused.reason === "over-budget" ? 507 : 500, "heap snapshot refused", refused.message)
          }
          case "/alerts": {
            if (method !== "POST") return problem(405, "method not allowed", "use POST")
            const decoded = Alerts.decode(body)
            if (decoded._tag === "Failure") return problem(400, "bad payload", decoded.failure.message)
            const applied = Alerts.apply(manager, decoded.success, options.alerts)
            if (applied.paused.length > 0 || applied.released.length > 0 || applied.overflow > 0) {
              // A payload carries up to 1,000 alerts, for every bot: one line of counts, not a line of every alert.
              yield* Effect.logWarning(
                `alertmanager: ${applied.paused.length} holds set${fewAlerts(applied.paused)}, ${applied.released.length} released${fewAlerts(applied.released)}` +
                  (applied.overflow === 0 ? "" : `; ${applied.overflow} holds not recorded: the breaker already keeps its maximum of holds and stays open`)
              )
            }
            return json(200, applied)
          }
          default:
            return problem(404, "not found", "endpoints: /metrics /healthz /readyz /debug/fibers /debug/fibers/diff /debug/fibers/snapshots /debug/tasks /debug/watchdog, POST /alerts /debug/breaker /debug/heap-snapshot")
        }
      })

    const writeReply = (req: IncomingMessage, res: ServerResponse, reply: Reply) => {
      if (res.headersSent) return
      // A body we did not read must not be read after the answer to keep the connection alive:
      // the client could hold it with a large Content-Length and a trickle of bytes.
      const unread = !req.complete && (Number(req.headers["content-length"] ?? 0) > 0 || req.headers["transfer-encoding"] !== undefined)
      res.writeHead(reply.status, {
        "content-type": reply.type ?? "text/plain; charset=utf-8",
        "content-length": String(Buffer.byteLength(reply.body)),
        "cache-control": "no-store",
        ...(unread ? { connection: "close" } : {}),
        ...reply.headers
      })
      res.end(reply.body)
    }
    const send = (req: IncomingMessage, res: ServerResponse, reply: Reply) => Effect.sync(() => writeReply(req, res, reply))

    const handle = (req: IncomingMessage, res: ServerResponse, url: URL, body: string): Effect.Effect<void> =>
      route(req, url, body).pipe(
        Effect.catchCause((cause) => Effect.as(Effect.logError("debug server request failed", cause), problem(500, "internal error"))),
        Effect.flatMap((reply) => send(req, res, reply))
      )

    if (options.snapshotEvery !== false) {
      yield* Effect.forkScoped(
        Effect.repeat(Effect.sync(() => snapshots.take()), Schedule.spaced(options.snapshotEvery ?? "1 minute")),
        { startImmediately: true }
      )
    }

    const requests = yield* FiberSet.make<void, never>()
    const run = yield* FiberSet.runtime(requests)<never>()

    const server = createServer((req, res) => {
      let url: URL
      try {
        url = new URL(req.url ?? "/", "http://debug")
      } catch {
        return writeReply(req, res, problem(400, "bad request", "unparsable URL"))
      }
      const refused = gate(req)
      if (refused !== undefined) return writeReply(req, res, refused)
      if (!(methodOf(req) === "POST" && url.pathname === "/alerts")) return run(handle(req, res, url, ""))
      // The one body we take is read here, under its cap, before any work is handed to a fiber.
      const declared = Number(req.headers["content-length"] ?? 0)
      if (declared > maxBody) {
        res.writeHead(413, { "content-type": "application/json", connection: "close" })
        res.end(JSON.stringify({ error: "payload too large", detail: `at most ${maxBody} bytes` }) + "\n")
        req.resume()
        return
      }
      const chunks: Array<Buffer> = []
      let size = 0
      let over = false
      req.on("data", (chunk: Buffer) => {
        if (over) return
        size += chunk.length
        if (size > maxBody) {
          over = true
          res.writeHead(413, { "content-type": "application/json", connection: "close" })
          res.end(JSON.stringify({ error: "payload too large", detail: `at most ${maxBody} bytes` }) + "\n")
          return
        }
        chunks.push(chunk)
      })
      req.on("end", () => {
        if (over) return
        run(handle(req, res, url, Buffer.concat(chunks).toString("utf8")))
      })
      req.on("error", () => res.destroy())
    })
    server.requestTimeout = 10_000
    server.headersTimeout = 5_000
    yield* Effect.acquireRelease(
      Listen.listen(server, { port: options.port ?? 0, host }, (e) =>
        run(Effect.logError(`debug server on ${host}: ${e.code ?? "error"}: ${e.message} (it keeps listening)`))).pipe(
          Effect.mapError((e) => new DebugServerError({ reason: e.message, cause: e.cause }))
        ),
      () =>
        Effect.callback<void>((resume) => {
          server.close(() => resume(Effect.void))
          server.closeAllConnections()
        }).pipe(Effect.timeoutOption(Duration.seconds(2)), Effect.asVoid)
    )
    const address = server.address() as AddressInfo
    const shownHost = address.family === "IPv6" ? `[${address.address}]` : address.address
    return { host: address.address, port: address.port, url: `http://${shownHost}:${address.port}`, snapshots, metrics }
  })

export class DebugServerService extends Context.Service<DebugServerService, DebugServer>()("fiberbot/DebugServer") {}

/** The debug server as a layer: it listens while the layer lives. */
export const layer = (options: Options = {}): Layer.Layer<DebugServerService, DebugServerError, BotManager> =>
  Layer.effect(DebugServerService, make(options))

export interface GuardedOptions extends Omit<Options, "watchdog" | "heapSnapshots"> {
  /** Watchdog options, or `false` for none (default: the defaults, heap snapshots on critical). */
  readonly watchdog?: Watchdog.Options | false | undefined
  /** Heap snapshot options, or `false` for none (default: into the OS temp directory, 512 MiB budget). */
  readonly heapSnapshots?: HeapSnapshot.Options | false | undefined
}

/**
 * The whole guard in one call: heap snapshots, the watchdog (which uses them on critical) and the
 * debug server showing both. Logs where the endpoints are.
 */
export const makeGuarded = (options: GuardedOptions = {}): Effect.Effect<DebugServer, DebugServerError, BotManager | Scope.Scope> =>
  Effect.gen(function*() {
    const { watchdog: watchdogOptions, heapSnapshots: heapOptions, ...serverOptions } = options
    const heapSnapshots = heapOptions === false ? undefined : yield* HeapSnapshot.make({ directory: tmpdir(), ...heapOptions })
    const watchdog = watchdogOptions === false ? undefined : yield* Watchdog.make({ heapSnapshots, ...watchdogOptions })
    const server = yield* make({ ...serverOptions, watchdog, heapSnapshots })
    yield* Effect.logInfo(
      `debug server on ${server.url}: ${server.url}/metrics ${server.url}/debug/fibers?debug=1 ${server.url}/debug/tasks ${server.url}/healthz`
    )
    return server
  })

/** `makeGuarded` as a layer; for `Main.runMain(program, { services: DebugServer.layerGuarded() })`. */
export const layerGuarded = (options: GuardedOptions = {}): Layer.Layer<DebugServerService, DebugServerError, BotManager> =>
  Layer.effect(DebugServerService, makeGuarded(options))
