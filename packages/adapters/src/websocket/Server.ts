/**
 * Server: a WebSocket server adapter on `ws`.
 *
 * It listens on its own port (127.0.0.1 by default; port 0 lets the OS choose, `address()` tells
 * which) or attaches to an existing `http.Server` and takes the upgrades for its `path`. A frame
 * with nothing ahead of it goes to the bot from the socket's callback when the bot has room
 * (`deliverNow`); otherwise one reader (`ws/read`) hands every connection's frames to the bot in
 * order, waiting for room. A connection has a writer
 * (`ws/conn-N/write`) only while frames are queued and a closer (`ws/conn-N/close`) at its end, in
 * a FiberSet owned by the adapter's scope; heartbeats and idle timeouts are one sweep (`ws/heartbeat`)
 * (see `Connection.ts`). Updates `open`, `message` and `close` go to the bot with the connection id
 * as ordering key, and `ctx.reply` writes to that connection (straight through, or its bounded queue).
 *
 * Stopping: new upgrades get 503, every connection gets 1001 and a bounded wait for its close
 * handshake, the rest are terminated, and sockets that never finished their handshake are destroyed.
 */
import * as http from "node:http"
import type { AddressInfo, Socket } from "node:net"
import { Data, Deferred, Duration, Effect, Exit, Fiber, FiberSet, Queue, Scope } from "effect"
import { Adapter, type Intake, Listen, Task, Update } from "@fiberbot/core"
import { WebSocketServer, type WebSocket } from "ws"
import * as Codec from "./Codec.ts"
import * as Connection from "./Connection.ts"

export interface ServerOptions<A = string> {
  /** Adapter name, also the `adapter` of its updates and the prefix of its tasks (default "ws"). */
  readonly name?: string | undefined
  /** Own listener: host (default 127.0.0.1) and port (default 0). Ignored with `attach`. */
  readonly host?: string | undefined
  readonly port?: number | undefined
  /** Take upgrades from an existing server instead of listening; only `path` is taken. */
  readonly attach?: http.Server | undefined
  /** Upgrade path (default "/": any path on an own listener, exactly "/" on an attached one). */
  readonly path?: string | undefined
  readonly codec?: Codec.Codec<A> | undefined
  /**
   * A message the bot cannot take now (intake full with `reject-busy`, or the intake breaker open):
   * `tell` answers the connection with a `busy` frame (`{"error":"busy"}` with the JSON codec),
   * `drop` only counts it. Counted as `busy` either way (default `tell`).
   */
  readonly onBusy?: "tell" | "drop" | undefined
  /** Largest frame in bytes; bigger closes with 1009 (default 1 MiB). */
  readonly maxPayload?: number | undefined
  /** Connections at once; upgrades beyond get HTTP 503 (default 10,000). */
  readonly maxConnections?: number | undefined
  /** A client must finish its HTTP upgrade request within this (own listener only; default 10 s). */
  readonly handshakeTimeout?: Duration.Input | undefined
  readonly heartbeat?: Duration.Input | false | undefined
  readonly idleTimeout?: Duration.Input | undefined
  /** Inbound messages per second per connection; more closes with 1008 (default: no limit). */
  readonly ratePerSecond?: number | undefined
  readonly outbound?: {
    readonly capacity?: number | undefined
    readonly policy?: Connection.OutboundPolicy | undefined
    readonly grace?: Duration.Input | undefined
    readonly highWaterMark?: number | undefined
  } | undefined
  /**
   * Inbound frames waiting for the bot per connection (default 64). Reading pauses at
   * inboundCapacity; frames of the read in progress still arrive (at most one socket read).
   */
  readonly inboundCapacity?: number | undefined
  readonly binary?: "accept" | "reject" | undefined
  /** How long each close handshake may take when closing or stopping (default 2 s). */
  readonly closeTimeout?: Duration.Input | undefined
}

/** The payload of a `message` update. */
export interface MessagePayload<A = string> {
  readonly connection: string
  /** The decoded text frame, or the bytes of a binary frame. */
  readonly data: A | Uint8Array
  readonly binary: boolean
}

/** The payload of `open` and `close` updates. */
export interface LifecyclePayload {
  readonly connection: string
  readonly remoteAddress: string | undefined
  readonly code?: number | undefined
  readonly reason?: string | undefined
}

export interface Stats {
  readonly open: number
  readonly opened: number
  readonly messagesIn: number
  readonly messagesOut: number
  readonly dropped: number
  readonly closedClean: number
  readonly terminated: number
  /** Upgrades refused with 503 (connection limit, stopping, or the bot's breaker open). */
  readonly refused: number
  /** Messages the bot was too busy to take (intake full or breaker open); see `onBusy`. */
  readonly busy: number
  /** TCP sockets the server holds (own listener: all; attached: upgraded ones). */
  readonly sockets: number
  readonly closeCodes: Readonly<Record<number, number>>
}

export interface WebSocketServerAdapter {
  readonly adapter: Adapter.Adapter
  /** The bound address once started (own listener), else undefined. */
  readonly address: () => AddressInfo | undefined
  /** `ws://host:port/path` once started. */
  readonly url: () => string | undefined
  readonly stats: () => Stats
  /** Ids of the open connections. */
  readonly connections: () => ReadonlyArray<string>
  /** The last measured ping round trip of a connection, in ms. */
  readonly rtt: (connection: string) => number | undefined
  /**
   * Queues `message` to every open connection (or those `filter` keeps) without waiting: a full
   * queue drops it for that connection (counted), or closes it under the `close` policy.
   * Answers how many connections it was queued to.
   */
  readonly broadcast: (message: string | Update.OutboundMessage, filter?: (connection: string) => boolean) => Effect.Effect<number>
  /**
   * Closes one connection with a code (default 1000) and a reason, cut to the 123 bytes a close
   * frame can carry. A code no endpoint may send (1005, 1006, reserved, outside 1000-4999) fails
   * with `CloseCodeError` and leaves the connection open. An unknown connection is no error.
   */
  readonly close: (connection: string, code?: number, reason?: string) => Effect.Effect<void, CloseCodeError>
}

/** `close` was asked for a code that a close frame may not carry. */
export class CloseCodeError extends Data.TaggedError("CloseCodeError")<{ readonly code: number }> {
  override get message(): string {
    return `${this.code} is not a close code an endpoint may send (1000-1014 but 1004-1006, or 3000-4999)`
  }
}

const millis = (input: Duration.Input | undefined, fallback: number) =>
  input === undefined ? fallback : Duration.toMillis(Duration.fromInputUnsafe(input))

export const limitsOf = (o: {
  readonly heartbeat?: Duration.Input | false | undefined
  readonly idleTimeout?: Duration.Input | undefined
  readonly ratePerSecond?: number | undefined
  readonly outbound?: ServerOptions["outbound"]
  readonly inboundCapacity?: number | undefined
  readonly binary?: "accept" | "reject" | undefined
  readonly closeTimeout?: Duration.Input | undefined
}): Connection.Limits => {
  const d = Connection.defaultLimits
  return {
    outboundCapacity: o.outbound?.capacity ?? d.outboundCapacity,
    outboundPolicy: o.outbound?.policy ?? d.outboundPolicy,
    slowConsumerGraceMs: millis(o.outbound?.grace, d.slowConsumerGraceMs),
    highWaterMark: o.outbound?.highWaterMark ?? d.highWaterMark,
    inboundCapacity: o.inboundCapacity ?? d.inboundCapacity,
    heartbeatMs: o.heartbeat === false ? 0 : millis(o.heartbeat, d.heartbeatMs),
    idleTimeoutMs: millis(o.idleTimeout, d.idleTimeoutMs),
    ratePerSecond: o.ratePerSecond ?? d.ratePerSecond,
    binary: o.binary ?? d.binary,
    closeTimeoutMs: millis(o.closeTimeout, d.closeTimeoutMs)
  }
}

/** Encodes an outbound message as one frame: binary `data`, else `text`, else `extra.json` as JSON. */
export const toFrame = (message: Update.OutboundMessage): Connection.Frame | undefined => {
  if (message.data !== undefined) return message.data
  if (message.text !== undefined) return message.text
  if (message.extra !== undefined && "json" in message.extra) return JSON.stringify(message.extra["json"])
  return undefined
}

/** A class, not a literal, like `Update.of` (see there why). */
class Payload<A> implements MessagePayload<A> {
  readonly connection: string
  readonly data: A | Uint8Array
  readonly binary: boolean
  constructor(connection: string, data: A | Uint8Array, binary: boolean) {
    this.connection = connection
    this.data = data
    this.binary = binary
  }
}

const refuse = (socket: Socket, status: string) => {
  if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
  socket.destroy()
}

/**
 * Node takes its own 'error' listener off a socket it hands to 'upgrade' listeners: without one,
 * a peer resetting the socket (even while we refuse it) is an uncaught exception that ends the
 * process. Resets need no handling: the socket closes by itself.
 */
const ignoreSocketError = () => {}

/** Builds a server adapter; it starts listening when its bot starts and stops with it. */
export const make = <A = string>(options: ServerOptions<A> = {}): WebSocketServerAdapter => {
  const name = options.name ?? "ws"
  const codec = (options.codec ?? Codec.raw) as Codec.Codec<A>
  const jsonCodec = codec._tag === "json"
  const limits = limitsOf(options)
  const maxConnections = options.maxConnections ?? 10_000
  const handshakeMs = millis(options.handshakeTimeout, 10_000)
  const path = options.path ?? "/"
  const conns = new Map<string, Connection.Connection>()
  let counters = Connection.makeCounters()
  let refused = 0
  let busy = 0
  const onBusy = options.onBusy ?? "tell"
  let sockets = new Set<Socket>()
  let bound: AddressInfo | undefined
  let seq = 0

  const reply = (update: Update.Update, message: Update.OutboundMessage): Effect.Effect<void, Adapter.ReplyError> =>
    Effect.suspend(() => {
      const conn = conns.get(update.key)
      const frame = toFrame(message)
      if (frame === undefined) return Effect.void
      if (conn === undefined) {
        return Effect.fail(new Adapter.ReplyError({ adapter: name, reason: `connection ${update.key} is closed` }))
      }
      // straight to the socket (or its queue) when nothing has to wait: no further effect
      const now = Connection.sendNow(conn, frame)
      if (now === true) return Effect.void
      const closing = () => Effect.fail(new Adapter.ReplyError({ adapter: name, reason: `connection ${update.key} is closing` }))
      if (now === false) return closing()
      return Effect.flatMap(Connection.sendWhenRoom(conn, frame), (queued) => (queued ? Effect.void : closing()))
    })

  const start = (ctx: Adapter.AdapterContext): Effect.Effect<void, Adapter.AdapterError, Scope.Scope> =>
    Effect.gen(function*() {
      counters = Connection.makeCounters()
      refused = 0
      busy = 0
      sockets = new Set()
      let stopping = false
      const own = options.attach === undefined
      const server = options.attach ?? http.createServer((_req, res) => {
        res.writeHead(426, { "content-type": "text/plain", connection: "close" }).end("this endpoint speaks WebSocket\n")
      })
      const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxPayload ?? 1 << 20, clientTracking: false })

      const messageUpdate = (conn: Connection.Connection, data: A | Uint8Array, text: string | undefined, binary: boolean) =>
        Update.of<MessagePayload<A>>(name, "message", `${conn.id}:${++conn.messagesIn}`, conn.id, new Payload(conn.id, data, binary), text)
      const answered = (conn: Connection.Connection, result: Intake.OfferResult) => {
        if (result !== "busy") return
        // never silently: count it, and by default tell the peer so it can retry
        busy++
        if (onBusy === "tell") Connection.trySend(conn, jsonCodec ? JSON.stringify({ error: "busy" }) : "busy")
      }
      const onMessage = (conn: Connection.Connection, data: A | Uint8Array, text: string | undefined, binary: boolean) =>
        Effect.map(ctx.offer(messageUpdate(conn, data, text, binary)), (result) => answered(conn, result))
      /**
       * The fast path, from the socket's own 'message' callback: a frame with nothing ahead of it
       * goes to the bot right away when the intake has room (a quick handler has even replied when
       * this returns). `false`: the reader fiber takes it (backpressure, the first frame before the
       * `open` update, a malformed message).
       */
      const deliverNow = (conn: Connection.Connection, frame: Connection.Frame): boolean => {
        if (conn.queued || !conn.opened || conn.closing || conn.closeCode !== undefined) return false
        let data: A | Uint8Array
        let text: string | undefined
        if (typeof frame === "string") {
          if (codec._tag === "raw") {
            data = frame as A
          } else {
            const decoded = codec.decode(frame)
            if (!Exit.isSuccess(decoded)) return false
            data = decoded.value
          }
          text = frame
        } else {
          data = frame
        }
        const result = ctx.tryOffer(messageUpdate(conn, data, text, typeof frame !== "string"))
        if (result === undefined) {
          conn.messagesIn-- // the reader offers it again under the same id
          return false
        }
        counters.messagesIn++
        answered(conn, result)
        return true
      }
      const lifecycle = (kind: "open" | "close") => (conn: Connection.Connection) =>
        ctx.offer(Update.make<LifecyclePayload>({
          adapter: name,
          kind,
          id: `${conn.id}:${kind}`,
          key: conn.id,
          payload: kind === "open"
            ? { connection: conn.id, remoteAddress: undefined }
            : { connection: conn.id, remoteAddress: undefined, code: conn.closeCode ?? conn.peerCode, reason: conn.closeReason }
        }))
      const hooks: Connection.Hooks<A> = { onMessage, onOpen: lifecycle("open"), onClose: lifecycle("close") }

      // Finalizers run last-registered first: 3. the listener and leftover sockets, 2. connections, 1. refuse upgrades.
      const listenerClosed = Deferred.makeUnsafe<void>()
      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          wss.close()
          for (const s of sockets) s.destroy()
          if (own) {
            server.closeAllConnections()
            yield* Effect.timeoutOption(Deferred.await(listenerClosed), Duration.millis(limits.closeTimeoutMs))
          }
          // destroyed sockets report 'close' a tick later: wait for it so stats and the OS agree
          const until = performance.now() + limits.closeTimeoutMs
          while (sockets.size > 0 && performance.now() < until) yield* Effect.sleep(Duration.millis(5))
        })
      )
      const set = yield* FiberSet.make<void>()
      const run = yield* FiberSet.runtime(set)<never>()

      // Connections are driven without a fiber while idle: one reader for all of them, a writer
      // while frames queue, a closer once at the end.
      let ready: Array<Connection.Connection> = []
      let wakeReader: ((next: Effect.Effect<void>) => void) | undefined
      const readyToRead = (conn: Connection.Connection) => {
        if (conn.queued || conn.closing) return
        conn.queued = true
        ready.push(conn)
        const wake = wakeReader
        if (wake !== undefined) {
          wakeReader = undefined
          wake(Effect.void)
        }
      }
      // built once and reused for every wait: waiting allocates nothing
      const waitForFrames = Effect.callback<void>((resume) => {
        wakeReader = resume
        return Effect.sync(() => {
          wakeReader = undefined
        })
      })
      const readLoop = Effect.gen(function*() {
        while (true) {
          if (ready.length === 0) yield* waitForFrames
          const batch = ready
          ready = []
          for (let i = 0; i < batch.length; i++) {
            const conn = batch[i]!
            // `queued` stays set while the connection's frames are read: the reader can yield between
            // taking a frame and offering it, and a frame arriving then must queue behind it rather
            // than go straight to the bot (`deliverNow` checks `queued`)
            if (!conn.closing) yield* Connection.readBuffered(conn, codec, hooks)
            conn.queued = false
            // what arrived after the reader's last look (a frame, the peer's close) waits for its next turn
            if ((conn.buffer.length > 0 || conn.peerClosed) && !conn.closing && conn.closeCode === undefined) readyToRead(conn)
          }
        }
      })
      const closeConnection = (conn: Connection.Connection) => {
        if (conn.closing) return
        conn.closing = true
        const fiber = run(Task.named(`${conn.prefix}/close`)(Effect.uninterruptible(Effect.gen(function*() {
          if (conn.writer !== undefined) yield* Fiber.interrupt(conn.writer)
          yield* Effect.timeoutOption(hooks.onClose(conn), Duration.millis(limits.closeTimeoutMs))
          yield* Connection.closeSocket(conn, Exit.void)
        }).pipe(Effect.ensuring(Effect.sync(() => conns.delete(conn.id)))))))
        if (fiber.pollUnsafe() === undefined) conn.closer = fiber
      }
      const driver: Connection.Driver = {
        deliver: deliverNow,
        frame: readyToRead,
        peerClose: readyToRead,
        end: closeConnection
      }

      // Effect queues take their scheduler from a fiber; runFork evaluates synchronously, so this
      // answers the new queue at once.
      const createOutbound = () => {
        let made: Queue.Queue<Connection.Frame> | undefined
        run(Effect.map(Connection.makeOutbound(limits), (q) => {
          made = q
        }))
        return made!
      }
      const startWriter = function(this: Connection.Connection) {
        const writer = run(Task.named(`${this.prefix}/write`)(Connection.drain(this)))
        if (writer.pollUnsafe() === undefined) this.writer = writer
      }
      const onConnection = (ws: WebSocket) => {
        const n = ++seq
        const conn = new Connection.Connection(`c${n}`, ws, limits, counters, undefined, undefined)
        conn.prefix = `${name}/conn-${n}`
        conn.driver = driver
        conns.set(conn.id, conn)
        counters.opened++
        counters.open++
        conn.startWriter = startWriter
        conn.createOutbound = createOutbound
        Connection.attach(conn)
        readyToRead(conn) // offers the `open` update
      }

      const onUpgrade = (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
        socket.on("error", ignoreSocketError)
        const reqPath = (req.url ?? "/").split("?")[0]
        if (reqPath !== path && !(own && path === "/")) {
          // Attached, another 'upgrade' listener may want it; with none (always so on an own
          // listener), nobody else would ever answer or close it.
          if (server.listenerCount("upgrade") <= 1) refuse(socket, "404 Not Found")
          return
        }
        // stopping, full, or the bot's intake breaker open: new connections wait for better times
        if (stopping || conns.size >= maxConnections || ctx.paused()) {
          refused++
          return refuse(socket, "503 Service Unavailable")
        }
        if (!own) {
          sockets.add(socket)
          socket.once("close", onSocketClose)
        }
        pending.delete(socket)
        // `ws` puts its own error listener on the socket for the handshake and for the connection:
        // ours would stay on every connection for nothing (ws-memory measured +100 B each)
        socket.off("error", ignoreSocketError)
        wss.handleUpgrade(req, socket, head, onConnection)
      }
      // Sockets that have not finished their upgrade, with when they connected (slowloris guard).
      const pending = new Map<Socket, number>()
      // one listener function for every socket (no closure per connection)
      const onSocketClose = function(this: Socket) {
        sockets.delete(this)
        pending.delete(this)
      }
      const onSocket = (socket: Socket) => {
        sockets.add(socket)
        pending.set(socket, performance.now())
        socket.once("close", onSocketClose)
      }
      // One sweeping heartbeat for all connections (the idiom of bare ws): a fiber and a timer per
      // idle connection would cost more memory than the connection itself.
      yield* ctx.fork(`${name}/read`, readLoop)
      const sweepMs = Connection.heartbeatTick(limits)
      if (sweepMs !== undefined) {
        yield* ctx.fork(`${name}/heartbeat`, Effect.forever(Effect.andThen(Effect.sleep(Duration.millis(sweepMs)), Effect.sync(() => {
          const now = performance.now()
          for (const conn of conns.values()) Connection.heartbeatCheck(conn, now)
        }))))
      }
      if (own) {
        const tick = Duration.millis(Math.max(10, Math.floor(handshakeMs / 4)))
        yield* ctx.fork(`${name}/handshake-timeout`, Effect.forever(Effect.andThen(Effect.sleep(tick), Effect.sync(() => {
          const cutoff = performance.now() - handshakeMs
          for (const [socket, at] of pending) {
            if (at > cutoff) continue
            pending.delete(socket)
            socket.destroy()
          }
        }))))
      }
      server.on("upgrade", onUpgrade)
      if (own) server.on("connection", onSocket)
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          // 1. refuse new upgrades and stop listening
          stopping = true
          server.off("upgrade", onUpgrade)
          if (own) server.close(() => Deferred.doneUnsafe(listenerClosed, Exit.void))
        }).pipe(Effect.andThen(Effect.suspend(() => {
          // 2. 1001 to every connection, each with its bounded close handshake, all at once
          const all = [...conns.values()]
          for (const conn of all) {
            if (conn.closeCode === undefined) {
              conn.closeCode = 1001
              conn.closeReason = "going away"
            }
            closeConnection(conn)
          }
          return Effect.forEach(all, (conn) => (conn.closer === undefined ? Effect.void : Fiber.await(conn.closer)), { concurrency: "unbounded", discard: true })
        })))
      )

      if (own) {
        bound = yield* Listen.listen(server, { port: options.port ?? 0, host: options.host ?? "127.0.0.1" }, (e) =>
          run(Effect.logWarning(`${name}: server error: ${e.message} (it keeps listening)`))).pipe(
            Effect.mapError((e) => new Adapter.AdapterError({ adapter: name, reason: e.message, cause: e.cause }))
          )
      } else {
        const a = server.address()
        bound = a !== null && typeof a === "object" ? a : undefined
      }
      yield* Effect.logInfo(`${name}: accepting WebSocket connections on ${bound ? `${bound.address}:${bound.port}` : "the attached server"}${path}`)
    })

  const self: WebSocketServerAdapter = {
    // connections and close counts in the bot's status and stop report
    adapter: Adapter.make({ name, start, reply, status: () => ({ ...self.stats() }) }),
    address: () => bound,
    url: () => (bound === undefined ? undefined : `ws://${bound.family === "IPv6" ? `[${bound.address}]` : bound.address}:${bound.port}${path}`),
    stats: () => ({
      open: conns.size,
      opened: counters.opened,
      messagesIn: counters.messagesIn,
      messagesOut: counters.messagesOut,
      dropped: counters.dropped,
      closedClean: counters.closedClean,
      terminated: counters.terminated,
      refused,
      busy,
      sockets: sockets.size,
      closeCodes: { ...counters.closeCodes }
    }),
    connections: () => [...conns.keys()],
    rtt: (connection) => conns.get(connection)?.rttMs,
    broadcast: (message, filter) =>
      Effect.sync(() => {
        const frame = toFrame(Update.toOutbound(message))
        if (frame === undefined) return 0
        let n = 0
        for (const [id, conn] of conns) {
          if (filter !== undefined && !filter(id)) continue
          if (Connection.trySend(conn, frame)) n++
        }
        return n
      }),
    close: (connection, code = 1000, reason = "") =>
      Connection.isValidCloseCode(code)
        ? Effect.sync(() => {
          conns.get(connection)?.end(code, reason)
        })
        : Effect.fail(new CloseCodeError({ code }))
  }
  return self
}

/** Per-handler helper: the connection id of the update being handled. */
export const connectionOf = (update: Update.Update): string => update.key
