/**
 * Shard: one Discord gateway connection that keeps itself alive.
 *
 * Each connection lives in its own scope: the socket, the reader, the heartbeat and the writer are
 * acquired in it and die with it, so a late event of an old socket can never touch the next one
 * (discord.js#8927). A connection ends with an `Outcome` (resume, new session, or fatal) decided by
 * the close-code policy of the reference table; the shard loop then waits a jittered backoff and
 * connects again: RESUME on `resume_gateway_url` when it has a session, otherwise IDENTIFY through
 * the identify throttler on the original gateway URL. Fatal codes end the shard with a typed error.
 */
import { Cause, Clock, Deferred, Effect, Metric, Queue, Redacted } from "effect"
import { WebSocket } from "ws"
import { GatewayFatal, IdentifyLimitExhausted, PayloadTooLarge, ShardUnavailable } from "./Errors.ts"
import type { IdentifyThrottler } from "./IdentifyThrottler.ts"
import * as SendLimiter from "./SendLimiter.ts"
import type { ResumeState, SessionStore } from "./SessionStore.ts"
import * as ZlibStream from "./ZlibStream.ts"

export type ShardState = "idle" | "connecting" | "identifying" | "resuming" | "ready" | "reconnecting" | "stopped" | "failed"

export interface ShardStatus {
  readonly id: number
  readonly count: number
  readonly state: ShardState
  readonly sessionId: string | undefined
  readonly seq: number
  /** Round trip of the last acknowledged heartbeat, in ms. */
  readonly latency: number | undefined
  readonly connects: number
  readonly identifies: number
  readonly resumes: number
  readonly lastClose: { readonly code: number; readonly reason: string } | undefined
  readonly error: string | undefined
}

/** A gateway payload as received. */
export interface GatewayPayload {
  readonly op: number
  readonly d: unknown
  readonly s?: number | null
  readonly t?: string | null
}

export interface ShardConfig {
  readonly id: number
  readonly count: number
  readonly token: Redacted.Redacted<string>
  readonly intents: number
  /** The gateway URL from `/gateway/bot` (or configured); re-identify always goes here. */
  readonly gatewayUrl: string
  readonly compress: boolean
  readonly largeThreshold?: number | undefined
  readonly presence?: unknown
  readonly properties?: { readonly os: string; readonly browser: string; readonly device: string } | undefined
  readonly openTimeoutMs: number
  readonly helloTimeoutMs: number
  readonly readyTimeoutMs: number
  readonly closeTimeoutMs: number
  readonly backoffBaseMs: number
  readonly backoffMaxMs: number
  /** A connection ready at least this long resets the backoff. */
  readonly stableAfterMs: number
  /** Failed resumes in a row before giving up the session and identifying. */
  readonly maxResumeFailures: number
  /** Frames buffered from the socket before it is paused. */
  readonly inboxHighWater: number
  readonly store: SessionStore
  readonly throttler: IdentifyThrottler
  readonly onDispatch: (payload: GatewayPayload, shard: Shard) => Effect.Effect<void>
  /**
   * Optional fast path, called from the socket's callback for a dispatch with nothing queued ahead
   * of it on a ready connection: `true` when it was handed over (the sequence then moves past it),
   * `false` to take it through `onDispatch` on the reader fiber instead.
   */
  readonly onDispatchNow?: ((payload: GatewayPayload, shard: Shard) => boolean) | undefined
}

type Outcome =
  | { readonly _tag: "Resume"; readonly reason: string; readonly code: number | undefined }
  | { readonly _tag: "NewSession"; readonly reason: string; readonly code: number | undefined }
  | { readonly _tag: "Fatal"; readonly reason: string; readonly code: number }
  | { readonly _tag: "Exhausted"; readonly reason: string; readonly error: IdentifyLimitExhausted }

/** Codes we close with ourselves. 1000 tells Discord the session is over. */
export const CLOSE_RECONNECT = 3000
export const CLOSE_ZOMBIE = 3001
export const CLOSE_RESUMABLE_STOP = 3002

const FATAL = new Set([4004, 4010, 4011, 4012, 4013, 4014])
const NEW_SESSION = new Set([4003, 4005, 4007, 4009])

/** The close-code policy (reference table 1.2): what a close from Discord means for us. */
export const classifyClose = (code: number, reason: string): Outcome => {
  if (FATAL.has(code)) return { _tag: "Fatal", code, reason: reason || `close ${code}` }
  if (NEW_SESSION.has(code)) return { _tag: "NewSession", code, reason: reason || `close ${code}` }
  // 1000/1001 from Discord, 1006 (no close frame), 4000-4002, 4008 and unknown codes: resume.
  return { _tag: "Resume", code, reason: reason || `close ${code}` }
}

const connectsTotal = Metric.counter("fiberbot_discord_gateway_connects_total", { description: "Gateway connections opened, by shard", incremental: true })
const identifiesTotal = Metric.counter("fiberbot_discord_gateway_identifies_total", { description: "IDENTIFY sent, by shard", incremental: true })
const resumesTotal = Metric.counter("fiberbot_discord_gateway_resumes_total", { description: "RESUME sent, by shard", incremental: true })
const closesTotal = Metric.counter("fiberbot_discord_gateway_closes_total", { description: "Gateway connections ended, by shard and outcome", incremental: true })
const payloadCounts = new Map<string, { n: number }>()
const payloadsTotal = (shard: string) =>
  Metric.counter("fiberbot_discord_gateway_payloads_total", { description: "Gateway payloads received, by shard", incremental: true, attributes: { shard } })
const latencyMs = Metric.gauge("fiberbot_discord_gateway_latency_ms", { description: "Last heartbeat round trip, by shard" })

/**
 * A received payload waiting for the reader. A class, not a literal (see `Update.of` why): frames
 * queue in bursts, and a pretenured literal here would drag every payload it points to into the
 * old generation.
 */
class Received {
  readonly _tag = "payload"
  readonly payload: GatewayPayload
  constructor(payload: GatewayPayload) {
    this.payload = payload
  }
}

type InboxItem =
  | Received
  | { readonly _tag: "closed"; readonly code: number; readonly reason: string }
  | { readonly _tag: "bad"; readonly error: string }

export interface Shard {
  readonly id: number
  readonly count: number
  readonly status: () => ShardStatus
  /** Sends an event (presence update, request guild members ...) through the send limiter. */
  readonly send: (op: number, d: unknown) => Effect.Effect<void, PayloadTooLarge | ShardUnavailable>
  /** Runs the shard until it fails fatally or is interrupted. */
  readonly run: Effect.Effect<never, GatewayFatal | IdentifyLimitExhausted>
  /** Completes when the shard is first ready (READY or RESUMED), fails on a fatal error. */
  readonly ready: Effect.Effect<void, GatewayFatal | IdentifyLimitExhausted>
  /** How the current connection closes when the shard is stopped: "offline" (1000) or "resumable". */
  readonly setStopMode: (mode: "offline" | "resumable") => void
}

const withQuery = (url: string, compress: boolean) => {
  const u = new URL(url)
  u.searchParams.set("v", "10")
  u.searchParams.set("encoding", "json")
  if (compress) u.searchParams.set("compress", "zlib-stream")
  else u.searchParams.delete("compress")
  return u.toString()
}

const MIN_HEARTBEAT_MS = 1_000
const MAX_HEARTBEAT_MS = 300_000

/**
 * Why a parsed frame is not a gateway payload, or `undefined` when it is one: an object with an
 * integer `op`, `s` a number or absent, `t` a string or absent, and a dispatch (op 0) named by `t`.
 * Checked before anything reads it, so no field access on a hostile frame can throw.
 */
export const shapeError = (p: unknown): string | undefined => {
  if (typeof p !== "object" || p === null || Array.isArray(p)) return "not a JSON object"
  const { op, s, t } = p as { op?: unknown; s?: unknown; t?: unknown }
  if (typeof op !== "number" || !Number.isInteger(op)) return "op is not an integer"
  if (s !== undefined && s !== null && (typeof s !== "number" || !Number.isSafeInteger(s) || s < 0)) return "s is not a sequence number"
  if (t !== undefined && t !== null && typeof t !== "string") return "t is not a string"
  if (op === 0 && (typeof t !== "string" || t.length === 0)) return "a dispatch without an event name"
  return undefined
}

const isGatewayUrl = (url: unknown): url is string => {
  if (typeof url !== "string") return false
  try {
    const u = new URL(url)
    return u.protocol === "wss:" || u.protocol === "ws:"
  } catch {
    return false
  }
}

export const make = (config: ShardConfig): Effect.Effect<Shard> =>
  Effect.gen(function*() {
    const clock = yield* Clock.Clock
    const now = () => clock.currentTimeMillisUnsafe()
    let state: ShardState = "idle"
    let session: ResumeState | undefined = yield* config.store.get(config.id, config.count)
    let seq = session?.seq ?? 0
    let latency: number | undefined
    let connects = 0
    let identifies = 0
    let resumes = 0
    let lastClose: ShardStatus["lastClose"]
    let error: string | undefined
    let stopMode: "offline" | "resumable" = "offline"
    let resumeFailures = 0
    let attempts = 0
    const readyOnce = yield* Deferred.make<void, GatewayFatal | IdentifyLimitExhausted>()
    // user sends wait here (bounded, backpressure) until a connection's writer takes them
    const outbox = yield* Queue.bounded<string>(256)

    const payloadOf = (op: number, d: unknown) => JSON.stringify({ op, d })
    const attrs = { shard: String(config.id) }
    // Counted for every payload: a plain number the metric registry reads at export, not an
    // update through the registry each time. Per shard id for the process, so a counter never
    // goes back when a shard is made again.
    const context = yield* Effect.context<never>()
    let payloadCount = payloadCounts.get(attrs.shard)
    if (payloadCount === undefined) {
      payloadCount = { n: 0 }
      payloadCounts.set(attrs.shard, payloadCount)
    }
    const counted = payloadCount
    Metric.registerUnsafe(payloadsTotal(attrs.shard), context, {
      get: () => ({ count: counted.n, incremental: true }),
      update: () => {},
      modify: () => {}
    })
    const count = (metric: Metric.Metric<number, unknown>, n = 1, extra?: Record<string, string>) =>
      Metric.update(Metric.withAttributes(metric, extra === undefined ? attrs : { ...attrs, ...extra }), n)

    const persist = (s: ResumeState | undefined) =>
      s === undefined ? config.store.clear(config.id, config.count) : config.store.set(config.id, config.count, s)

    const shard: Shard = {
      id: config.id,
      count: config.count,
      status: () => ({
        id: config.id,
        count: config.count,
        state,
        sessionId: session?.sessionId,
        seq,
        latency,
        connects,
        identifies,
        resumes,
        lastClose,
        error
      }),
      send: (op, d) =>
        Effect.suspend((): Effect.Effect<void, PayloadTooLarge | ShardUnavailable> => {
          if (state === "stopped" || state === "failed") return Effect.fail(new ShardUnavailable({ shard: config.id, state }))
          const raw = payloadOf(op, d)
          const bytes = Buffer.byteLength(raw)
          if (bytes > 4096) return Effect.fail(new PayloadTooLarge({ shard: config.id, op, bytes }))
          // the queue is bounded; a shard that stays disconnected must not hold senders forever
          return Queue.offer(outbox, raw).pipe(
            Effect.timeoutOrElse({
              duration: "30 seconds",
              orElse: () => Effect.fail(new ShardUnavailable({ shard: config.id, state: `${state}, send queue full for 30 s` }))
            }),
            Effect.asVoid
          )
        }),
      run: Effect.suspend(() => run),
      ready: Deferred.await(readyOnce),
      setStopMode: (mode) => {
        stopMode = mode
      }
    }

    /** One connection, start to end, in its own scope; returns why it ended. */
    const connection = (resume: boolean): Effect.Effect<{ outcome: Outcome; readyFor: number }, never, never> =>
      Effect.scoped(Effect.gen(function*() {
        const scope = yield* Effect.scope
        const outcome = yield* Deferred.make<Outcome>()
        const finish = (o: Outcome) => Deferred.doneUnsafe(outcome, Effect.succeed(o))
        // Bounded by backpressure, not by capacity: at `inboxHighWater` the socket is paused, so the
        // queue holds at most that plus the few frames `ws` had already parsed. A capacity would
        // make the `ws` callback drop frames (or the close), which would break sequence continuity.
        const inbox = yield* Queue.unbounded<InboxItem>()
        const decoder = config.compress ? ZlibStream.makeDecoder() : undefined
        let limiter = SendLimiter.make({ reserved: SendLimiter.reservedFor(41_250) })
        let closeCode = CLOSE_RECONNECT
        let readyAt: number | undefined
        let paused = false
        // the reader holds taken payloads (possibly waiting on the bot): later ones must queue behind
        let readerBusy = false
        const dispatchNow = config.onDispatchNow
        // a stored session may hold a resume URL from an older process or a store edited by hand
        const url = withQuery(resume && session !== undefined && isGatewayUrl(session.resumeUrl) ? session.resumeUrl : config.gatewayUrl, config.compress)

        const ws = yield* Effect.acquireRelease(
          Effect.sync(() => {
            connects++
            const socket = new WebSocket(url, { handshakeTimeout: config.openTimeoutMs, perMessageDeflate: false, maxPayload: 256 * 1024 * 1024 })
            socket.binaryType = "nodebuffer"
            const queue = (item: InboxItem) => {
              Queue.offerUnsafe(inbox, item)
              if (!paused && Queue.sizeUnsafe(inbox) >= config.inboxHighWater) {
                paused = true
                socket.pause()
              }
            }
            socket.on("message", (data: Buffer) => {
              let p: GatewayPayload
              try {
                const text = decoder !== undefined ? decoder.push(data) : data.toString()
                if (text === undefined) return
                p = JSON.parse(text) as GatewayPayload
              } catch (e) {
                return queue({ _tag: "bad", error: String(e) })
              }
              const malformed = shapeError(p)
              if (malformed !== undefined) return queue({ _tag: "bad", error: malformed })
              if (!readerBusy && readyAt !== undefined && dispatchNow !== undefined && Queue.sizeUnsafe(inbox) === 0) {
                // nothing ahead of it: hand a dispatch over right here, without a trip through the reader
                let handed = false
                try {
                  handed = p.op === 0 && p.t !== "READY" && p.t !== "RESUMED" && dispatchNow(p, shard)
                } catch {
                  // a throw here would escape `ws`'s callback and end the process: the reader takes
                  // the payload instead, where a failure is caught, logged and the payload skipped
                }
                if (handed) {
                  if (typeof p.s === "number") seq = p.s
                  counted.n++
                  return
                }
              }
              queue(new Received(p))
            })
            socket.on("close", (code: number, reason: Buffer) => {
              Queue.offerUnsafe(inbox, { _tag: "closed", code, reason: reason.toString("utf8") })
            })
            socket.on("error", () => {
              // a "close" (1006) always follows; the error itself changes nothing we do
            })
            return socket
          }),
          (socket) =>
            Effect.gen(function*() {
              decoder?.close()
              if (socket.readyState === WebSocket.CLOSED) return
              if (socket.readyState === WebSocket.CONNECTING) {
                socket.terminate()
                return
              }
              const closed = Effect.callback<void>((resume) => {
                if (socket.readyState === WebSocket.CLOSED) return resume(Effect.void)
                socket.once("close", () => resume(Effect.void))
              })
              if (socket.readyState === WebSocket.OPEN) socket.close(closeCode)
              const done = yield* Effect.timeoutOption(closed, config.closeTimeoutMs)
              if (done._tag === "None") socket.terminate()
            })
        )

        const writeRaw = (raw: string) => {
          if (ws.readyState === WebSocket.OPEN) ws.send(raw)
        }
        const sendPriority = (op: number, d: unknown) =>
          Effect.andThen(limiter.take(true), Effect.sync(() => writeRaw(payloadOf(op, d))))

        let acked = true
        let beatSentAt = 0
        const heartbeat = (interval: number) =>
          Effect.gen(function*() {
            yield* Effect.sleep(Math.floor(interval * Math.random()))
            while (true) {
              if (!acked) {
                closeCode = CLOSE_ZOMBIE
                finish({ _tag: "Resume", reason: "zombie connection: no heartbeat ACK", code: undefined })
                return
              }
              acked = false
              beatSentAt = now()
              yield* sendPriority(1, seq === 0 ? null : seq)
              yield* Effect.sleep(interval)
            }
          })

        const writer = Effect.gen(function*() {
          while (true) {
            yield* Queue.peek(outbox)
            yield* limiter.take(false)
            const raw = yield* Queue.take(outbox)
            writeRaw(raw)
          }
        })

        let helloSeen = false
        const handle = (p: GatewayPayload): Effect.Effect<void> => {
          switch (p.op) {
            case 0: {
              const s = p.s
              // seq moves only once the dispatch was handed over: an interruption in between
              // means the resume replays it instead of losing it
              const commit = Effect.sync(() => {
                if (typeof s === "number") seq = s
              })
              if (p.t === "RESUMED") return Effect.andThen(commit, onReady())
              const deliver = Effect.uninterruptibleMask((restore) => Effect.andThen(restore(config.onDispatch(p, shard)), commit))
              if (p.t === "READY") {
                const d = p.d as { session_id?: unknown; resume_gateway_url?: unknown } | null
                return Effect.andThen(deliver, Effect.suspend(() => {
                  // without a session id there is nothing to resume (the next connection identifies);
                  // without a usable resume URL, a resume goes to the gateway URL
                  const sessionId = typeof d?.session_id === "string" && d.session_id.length > 0 ? d.session_id : undefined
                  session = sessionId === undefined
                    ? undefined
                    : { sessionId, resumeUrl: isGatewayUrl(d?.resume_gateway_url) ? d.resume_gateway_url : config.gatewayUrl, seq }
                  return onReady()
                }))
              }
              return deliver
            }
            case 11: {
              acked = true
              latency = now() - beatSentAt
              return count(latencyMs, latency)
            }
            case 1:
              // a heartbeat request is answered at once and is not a missed ACK (discord.js PR #3993)
              return sendPriority(1, seq === 0 ? null : seq)
            case 7:
              return Effect.sync(() => finish({ _tag: "Resume", reason: "RECONNECT requested", code: undefined }))
            case 9:
              return Effect.sync(() =>
                finish(p.d === true
                  ? { _tag: "Resume", reason: "INVALID_SESSION (resumable)", code: undefined }
                  : { _tag: "NewSession", reason: "INVALID_SESSION", code: undefined })
              )
            case 10: {
              if (helloSeen) return Effect.void
              helloSeen = true
              const interval = Number((p.d as { heartbeat_interval?: unknown })?.heartbeat_interval)
              // clamped: a tiny interval would flood the gateway outside the send limiter, a huge one
              // would switch off zombie detection
              const safeInterval = Number.isFinite(interval) && interval > 0
                ? Math.min(MAX_HEARTBEAT_MS, Math.max(MIN_HEARTBEAT_MS, interval))
                : 41_250
              limiter = SendLimiter.make({ reserved: SendLimiter.reservedFor(safeInterval) })
              return Effect.gen(function*() {
                yield* Effect.forkIn(heartbeat(safeInterval), scope)
                const handshake = Effect.gen(function*() {
                  if (resume && session !== undefined) {
                    state = "resuming"
                    resumes++
                    yield* count(resumesTotal)
                    yield* sendPriority(6, { token: Redacted.value(config.token), session_id: session.sessionId, seq })
                  } else {
                    // throttled here, right before the frame goes out, so the 5 s spacing holds where Discord measures it
                    state = "identifying"
                    yield* config.throttler.acquire(config.id)
                    identifies++
                    yield* count(identifiesTotal)
                    yield* sendPriority(2, {
                      token: Redacted.value(config.token),
                      intents: config.intents,
                      properties: config.properties ?? { os: process.platform, browser: "fiberbot", device: "fiberbot" },
                      shard: [config.id, config.count],
                      ...(config.largeThreshold === undefined ? {} : { large_threshold: config.largeThreshold }),
                      ...(config.presence === undefined ? {} : { presence: config.presence })
                    })
                  }
                  yield* Effect.sleep(config.readyTimeoutMs)
                  if (readyAt === undefined) {
                    finish(resume
                      ? { _tag: "Resume", reason: "no RESUMED before the handshake deadline", code: undefined }
                      : { _tag: "NewSession", reason: "no READY before the handshake deadline", code: undefined })
                  }
                }).pipe(Effect.catch((e: IdentifyLimitExhausted) => Effect.sync(() => finish({ _tag: "Exhausted", reason: e.message, error: e }))))
                // forked: the reader must keep reading ACKs while an identify waits for its slot
                yield* Effect.forkIn(handshake, scope)
              })
            }
            default:
              return Effect.void
          }
        }

        const onReady = () =>
          Effect.gen(function*() {
            readyAt = now()
            state = "ready"
            resumeFailures = 0
            if (session !== undefined) {
              session = { ...session, seq }
              yield* persist(session)
            }
            Deferred.doneUnsafe(readyOnce, Effect.void)
            yield* Effect.forkIn(writer, scope)
          })

        const reader = Effect.gen(function*() {
          while (true) {
            readerBusy = false
            const items = yield* Queue.takeAll(inbox)
            readerBusy = true
            counted.n += items.length
            for (const item of items) {
              if (item._tag === "closed") {
                lastClose = { code: item.code, reason: item.reason }
                closeCode = item.code
                finish(classifyClose(item.code, item.reason))
                return
              }
              if (item._tag === "bad") {
                finish({ _tag: "Resume", reason: `undecodable payload: ${item.error}`, code: undefined })
                return
              }
              const handled = yield* Effect.exit(Effect.suspend(() => handle(item.payload)))
              if (handled._tag === "Failure" && !Cause.hasInterruptsOnly(handled.cause)) {
                // one payload the bot could not take must not stop the reader (ACKs, the rest)
                const p = item.payload
                if (p.op === 0 && typeof p.s === "number") seq = Math.max(seq, p.s)
                yield* Effect.logError(`discord shard ${config.id}: a ${p.t ?? `op ${p.op}`} payload could not be handled; skipped`, handled.cause)
              } else if (handled._tag === "Failure") {
                return yield* handled
              }
            }
            if (paused && Queue.sizeUnsafe(inbox) < config.inboxHighWater / 2) {
              paused = false
              ws.resume()
            }
          }
        })

        state = resume && session !== undefined ? "resuming" : "connecting"
        yield* Effect.forkIn(reader, scope)
        yield* Effect.forkIn(
          Effect.andThen(Effect.sleep(config.openTimeoutMs + config.helloTimeoutMs), Effect.sync(() => {
            if (!helloSeen) finish({ _tag: "Resume", reason: "no HELLO before the deadline", code: undefined })
          })),
          scope
        )
        // when the bot stops, this is where the interruption lands: close per the stop mode
        const result = yield* Deferred.await(outcome).pipe(
          Effect.onInterrupt(() =>
            Effect.gen(function*() {
              closeCode = stopMode === "offline" ? 1000 : CLOSE_RESUMABLE_STOP
              if (stopMode === "offline") {
                session = undefined
                yield* persist(undefined)
              } else if (session !== undefined) {
                session = { ...session, seq }
                yield* persist(session)
              }
              state = "stopped"
            })
          )
        )
        if (result._tag === "NewSession") closeCode = closeCode === CLOSE_RECONNECT ? 1000 : closeCode
        return { outcome: result, readyFor: readyAt === undefined ? 0 : now() - readyAt }
      }))

    const loop: Effect.Effect<never, GatewayFatal | IdentifyLimitExhausted> = Effect.gen(function*() {
      while (true) {
        const resume = session !== undefined
        yield* count(connectsTotal)
        const { outcome, readyFor } = yield* connection(resume)
        yield* count(closesTotal, 1, { outcome: outcome._tag, code: "code" in outcome && outcome.code !== undefined ? String(outcome.code) : "-" })
        if (readyFor >= config.stableAfterMs) attempts = 0
        yield* Effect.logDebug(`discord shard ${config.id}: connection ended: ${outcome.reason}`).pipe(
          Effect.annotateLogs({ shard: config.id, outcome: outcome._tag })
        )
        if (outcome._tag === "Exhausted") return yield* outcome.error
        if (outcome._tag === "Fatal") {
          return yield* new GatewayFatal({ shard: config.id, code: outcome.code, reason: outcome.reason })
        }
        if (outcome._tag === "NewSession") {
          session = undefined
          seq = 0
          yield* persist(undefined)
        } else if (resume && readyFor === 0) {
          // a resume that never reached RESUMED; twice in a row means the session is gone
          if (++resumeFailures >= config.maxResumeFailures) {
            resumeFailures = 0
            session = undefined
            seq = 0
            yield* persist(undefined)
          }
        }
        state = "reconnecting"
        const delay = Math.min(config.backoffMaxMs, config.backoffBaseMs * 2 ** Math.min(attempts, 16))
        attempts++
        yield* Effect.sleep(Math.floor(delay * (0.5 + Math.random() / 2)))
      }
    })

    const run: Effect.Effect<never, GatewayFatal | IdentifyLimitExhausted> = loop.pipe(
      Effect.tapCause((cause) =>
        Effect.sync(() => {
          if (Cause.hasInterruptsOnly(cause)) {
            state = "stopped"
            return
          }
          state = "failed"
          const e = Cause.squash(cause)
          error = e instanceof Error ? e.message : String(e)
          const failure = cause.reasons.find(Cause.isFailReason)
          if (failure !== undefined) Deferred.doneUnsafe(readyOnce, Effect.fail(failure.error))
        })
      )
    )
    return shard
  })
