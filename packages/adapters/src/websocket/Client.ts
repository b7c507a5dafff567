/**
 * Client: a WebSocket client adapter on `ws`, for bots that connect out to a service.
 *
 * It connects with a handshake deadline and, whenever the connection fails or ends, reconnects
 * after an exponential backoff with jitter (capped) from an effect `Schedule`; a connection that
 * stayed up for `stableAfter` resets the backoff. Each connection attempt runs the same read,
 * write and heartbeat fibers in one scope as the server's connections. Outbound messages go through
 * one bounded send queue owned by the adapter, so they can wait across a reconnect (`keep`) or be
 * dropped when the connection is lost (`drop`).
 */
import { Data, Duration, Effect, Queue, Schedule, Scope } from "effect"
import { Adapter, Task, Update } from "@fiberbot/core"
import { WebSocket } from "ws"
import * as Codec from "./Codec.ts"
import * as Connection from "./Connection.ts"
import { limitsOf, toFrame, type MessagePayload } from "./Server.ts"

export interface ClientOptions<A = string> {
  readonly url: string
  /** Adapter name, the ordering key of its updates and the prefix of its tasks (default "ws-client"). */
  readonly name?: string | undefined
  readonly handshakeTimeout?: Duration.Input | undefined
  readonly reconnect?: {
    readonly base?: Duration.Input | undefined
    readonly factor?: number | undefined
    readonly max?: Duration.Input | undefined
    /** A connection up at least this long resets the backoff (default 10 s). */
    readonly stableAfter?: Duration.Input | undefined
  } | undefined
  readonly sendQueue?: {
    readonly capacity?: number | undefined
    readonly policy?: "backpressure" | "drop-oldest" | undefined
    /** Messages waiting when the connection is lost: `keep` them for the next one, or `drop` them. */
    readonly onReconnect?: "keep" | "drop" | undefined
  } | undefined
  readonly codec?: Codec.Codec<A> | undefined
  readonly maxPayload?: number | undefined
  readonly heartbeat?: Duration.Input | false | undefined
  readonly idleTimeout?: Duration.Input | undefined
  readonly closeTimeout?: Duration.Input | undefined
  readonly headers?: Readonly<Record<string, string>> | undefined
}

/** A connection attempt failed: refused, bad status, or no handshake before the deadline. */
export class ConnectError extends Data.TaggedError("ConnectError")<{ readonly url: string; readonly reason: string }> {
  override get message(): string {
    return `cannot connect to ${this.url}: ${this.reason}`
  }
}

class ConnectionLost extends Data.TaggedError("ConnectionLost")<{}> {}

export type State = "connecting" | "open" | "waiting" | "stopped"

export interface WebSocketClientAdapter {
  readonly adapter: Adapter.Adapter
  /** Queues a message for the service (policy of the send queue); `false` when it was not queued. */
  readonly send: (message: string | Update.OutboundMessage) => Effect.Effect<boolean>
  readonly state: () => State
  /**
   * Connections opened so far, attempts that failed, and how connections ended: a close
   * handshake answered in time (`closedClean`) or a terminate.
   */
  readonly stats: () => Stats
}

export interface Stats {
  readonly connects: number
  readonly failures: number
  readonly queued: number
  readonly messagesIn: number
  readonly messagesOut: number
  readonly closedClean: number
  readonly terminated: number
}

const millis = (input: Duration.Input | undefined, fallback: number) =>
  input === undefined ? fallback : Duration.toMillis(Duration.fromInputUnsafe(input))

/** The reconnect backoff: exponential from `base` by `factor`, jittered, capped at `max`. */
export const backoff = (options: { readonly base: number; readonly factor: number; readonly max: number }) =>
  Schedule.exponential(Duration.millis(options.base), options.factor).pipe(
    Schedule.jittered,
    Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.millis(options.max))))
  )

export const make = <A = string>(options: ClientOptions<A>): WebSocketClientAdapter => {
  const name = options.name ?? "ws-client"
  const codec = (options.codec ?? Codec.raw) as Codec.Codec<A>
  const limits = { ...limitsOf(options), outboundPolicy: options.sendQueue?.policy ?? "backpressure" } satisfies Connection.Limits
  const capacity = options.sendQueue?.capacity ?? 256
  const onReconnect = options.sendQueue?.onReconnect ?? "keep"
  const handshakeMs = millis(options.handshakeTimeout, 10_000)
  const stableMs = millis(options.reconnect?.stableAfter, 10_000)
  const schedule = backoff({
    base: millis(options.reconnect?.base, 100),
    factor: options.reconnect?.factor ?? 2,
    max: millis(options.reconnect?.max, 30_000)
  })
  let outbound: Queue.Queue<Connection.Frame> | undefined
  let state: State = "stopped"
  let connects = 0
  let failures = 0
  let counters = Connection.makeCounters()

  const send = (message: string | Update.OutboundMessage): Effect.Effect<boolean> =>
    Effect.suspend(() => {
      const frame = toFrame(Update.toOutbound(message))
      if (outbound === undefined || frame === undefined) return Effect.succeed(false)
      if (Queue.offerUnsafe(outbound, frame)) return Effect.succeed(true)
      return limits.outboundPolicy === "backpressure" ? Queue.offer(outbound, frame) : Effect.succeed(false)
    })

  const start = (ctx: Adapter.AdapterContext): Effect.Effect<void, Adapter.AdapterError, Scope.Scope> =>
    Effect.gen(function*() {
      counters = Connection.makeCounters()
      const queue = yield* (limits.outboundPolicy === "drop-oldest" ? Queue.sliding<Connection.Frame>(capacity) : Queue.bounded<Connection.Frame>(capacity))
      outbound = queue
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          state = "stopped"
          outbound = undefined
        })
      )
      let attempt = 0
      const hooks: Connection.Hooks<A> = {
        onOpen: () => Effect.void,
        onClose: () => Effect.void,
        onMessage: (conn, data, text, binary) =>
          ctx.offer(Update.make<MessagePayload<A>>({
            adapter: name,
            kind: "message",
            id: `${conn.id}:${++conn.messagesIn}`,
            key: name,
            text,
            payload: { connection: conn.id, data, binary }
          }))
      }

      /** One connection: connect, serve until it ends; succeeds when it was up long enough to count as stable. */
      const once = Effect.scoped(Effect.gen(function*() {
        state = "connecting"
        const n = ++attempt
        const ws = new WebSocket(options.url, { handshakeTimeout: handshakeMs, maxPayload: options.maxPayload ?? 1 << 20, headers: options.headers ?? {} })
        yield* Effect.addFinalizer(() => Effect.sync(() => {
          if (ws.readyState !== WebSocket.OPEN && ws.readyState !== WebSocket.CLOSED) ws.terminate()
        }))
        yield* Effect.callback<void, ConnectError>((resume) => {
          const fail = (reason: string) => resume(Effect.fail(new ConnectError({ url: options.url, reason })))
          ws.once("open", () => resume(Effect.void))
          ws.once("error", (e) => fail(e.message))
          ws.once("unexpected-response", (_req, res) => fail(`HTTP ${res.statusCode}`))
        }).pipe(Effect.timeoutOrElse({
          duration: Duration.millis(handshakeMs),
          orElse: () => Effect.fail(new ConnectError({ url: options.url, reason: `no handshake within ${handshakeMs} ms` }))
        }), Effect.tapError(() => Effect.sync(() => failures++)))
        ws.removeAllListeners("error")
        ws.removeAllListeners("unexpected-response")
        connects++
        state = "open"
        const opened = performance.now()
        const [inbound] = yield* Connection.makeQueues({ ...limits, outboundCapacity: 1 })
        const conn = new Connection.Connection(`${name}-${n}`, ws, limits, counters, inbound, queue)
        Connection.attach(conn)
        const prefix = `${name}/conn-${n}`
        yield* Connection.serve(conn, codec, hooks, { write: `${prefix}/write`, heartbeat: `${prefix}/heartbeat`, lazyWriter: false }, Task.named)
        if (onReconnect === "drop") yield* Queue.clear(queue)
        state = "waiting"
        return performance.now() - opened >= stableMs
      }))

      // A stable connection ends the retry and starts a fresh schedule; anything else backs off.
      const loop = Effect.forever(
        Effect.retry(
          Effect.flatMap(once, (stable) => (stable ? Effect.void : Effect.fail(new ConnectionLost()))),
          schedule
        )
      )
      yield* ctx.fork(`${name}/connect`, loop)
    })

  const stats = (): Stats => ({
    connects,
    failures,
    queued: outbound === undefined ? 0 : Queue.sizeUnsafe(outbound),
    messagesIn: counters.messagesIn,
    messagesOut: counters.messagesOut,
    closedClean: counters.closedClean,
    terminated: counters.terminated
  })

  return {
    adapter: Adapter.make({
      name,
      start,
      reply: (_update, message) =>
        Effect.flatMap(send(message), (queued) =>
          queued ? Effect.void : Effect.fail(new Adapter.ReplyError({ adapter: name, reason: "the send queue refused the message" }))),
      // how the connection ended, in the bot's status and stop report
      status: () => ({ ...stats() })
    }),
    send,
    state: () => state,
    stats
  }
}
