/**
 * Connection: one open WebSocket, its bounded queues, its close-once logic and the fibers that
 * serve it; shared by the server and the client.
 *
 * Two ways to drive a connection:
 * - Client (`serve`): a long-lived read fiber owns the connection's scope and takes frames from a
 *   bounded inbound queue; a write fiber drains the outbound queue and a heartbeat fiber pings. When
 *   any of them ends, the scope interrupts the others and closes the socket exactly once.
 * - Server (`Driver`, `readBuffered`, `drain`): no fiber while a connection is idle. The `ws`
 *   callbacks buffer frames (bounded; the socket is paused when full) and put the connection on the
 *   server's ready list; one reader fiber hands every ready connection's frames to the bot in order
 *   (one wake-up per batch of sockets, not per message). A writer runs only while frames are queued
 *   (replies go straight to the socket when nothing is ahead of them); heartbeats are one sweep over
 *   all connections; and one closer per connection stops its writer and closes the socket exactly
 *   once. An idle connection then costs about what the `ws` socket itself costs.
 *
 * Either way, callbacks only push into bounded buffers and start no fiber of their own. (The server
 * first offers a frame with nothing ahead of it straight to the bot, `AdapterContext.tryOffer`: the
 * handler run that may start then is the dispatcher's, owned by the bot.)
 */
import { Cause, Deferred, Duration, Effect, Exit, Fiber, Queue } from "effect"
import type { WebSocket } from "ws"
import type * as Codec from "./Codec.ts"

export type OutboundPolicy = "backpressure" | "drop-oldest" | "close"

export interface Limits {
  /** Outbound messages waiting per connection (default 256). */
  readonly outboundCapacity: number
  /** What a full outbound queue does (default `backpressure`). */
  readonly outboundPolicy: OutboundPolicy
  /** How long a slow consumer may stay full before the `close` policy closes it with 1008. */
  readonly slowConsumerGraceMs: number
  /** Bytes buffered in the socket above which the writer waits for the peer to read. */
  readonly highWaterMark: number
  /**
   * Inbound frames waiting for the bot per connection. Reading pauses at inboundCapacity; frames
   * of the read in progress still arrive (at most one socket read), and none is dropped.
   */
  readonly inboundCapacity: number
  /** Ping interval (0 = no heartbeat); a pong missing at the next ping terminates the connection. */
  readonly heartbeatMs: number
  /** No message from the peer for this long closes the connection with 1000 (0 = never). */
  readonly idleTimeoutMs: number
  /** Inbound messages per second allowed per connection, with a burst of the same size (0 = no limit). */
  readonly ratePerSecond: number
  /** Binary frames: hand them to the bot, or close with 1003. */
  readonly binary: "accept" | "reject"
  /** How long a close handshake may take before the socket is terminated. */
  readonly closeTimeoutMs: number
}

export const defaultLimits: Limits = {
  outboundCapacity: 256,
  outboundPolicy: "backpressure",
  slowConsumerGraceMs: 5_000,
  highWaterMark: 1 << 20,
  inboundCapacity: 64,
  heartbeatMs: 30_000,
  idleTimeoutMs: 0,
  ratePerSecond: 0,
  binary: "accept",
  closeTimeoutMs: 2_000
}

/** Counters of one adapter instance, shared by its connections. */
export interface Counters {
  opened: number
  open: number
  messagesIn: number
  messagesOut: number
  dropped: number
  closedClean: number
  terminated: number
  /** Closes by code sent or received (1000, 1001, 1007, 1008, 1009 ...). */
  readonly closeCodes: Record<number, number>
}

export const makeCounters = (): Counters => ({
  opened: 0,
  open: 0,
  messagesIn: 0,
  messagesOut: 0,
  dropped: 0,
  closedClean: 0,
  terminated: 0,
  closeCodes: {}
})

/** One text or binary frame: strings are text, byte arrays binary (no wrapper object per frame). */
export type Frame = string | Uint8Array

/**
 * How a server drives connections without a fiber per idle connection: the `ws` callbacks call
 * these, and the driver starts a reader only while frames wait, and a closer when the connection ends.
 */
export interface Driver {
  /**
   * A frame arrived with none buffered ahead of it: hand it to the bot right away if it has room
   * (`true`: taken), else it is buffered and `frame` follows.
   */
  readonly deliver: (conn: Connection, frame: Frame) => boolean
  /** A frame was buffered. */
  readonly frame: (conn: Connection) => void
  /** The peer's socket closed. */
  readonly peerClose: (conn: Connection) => void
  /** The connection must end (its close code is set). */
  readonly end: (conn: Connection) => void
}

export interface Hooks<A> {
  /** A decoded text frame or a binary frame arrived. */
  readonly onMessage: (conn: Connection, data: A | Uint8Array, text: string | undefined, binary: boolean) => Effect.Effect<unknown>
  readonly onOpen: (conn: Connection) => Effect.Effect<unknown>
  readonly onClose: (conn: Connection) => Effect.Effect<unknown>
}

const OPEN = 1
const CLOSED = 3

/** The state of one connection; plain mutable fields, touched only from its callbacks and fibers. */
export class Connection {
  readonly id: string
  readonly ws: WebSocket
  readonly limits: Limits
  readonly counters: Counters
  /** Inbound frames for a long-lived read fiber (client); a server uses `buffer` and its driver. */
  readonly inbound: Queue.Queue<Frame, Cause.Done> | undefined
  /** Set at construction, or (driver mode) by the first reader, before any frame can arrive. */
  outbound: Queue.Queue<Frame> | undefined = undefined
  /** Creates `outbound` on first need (driver mode): most connections never queue a frame. */
  createOutbound: (() => Queue.Queue<Frame>) | undefined = undefined
  /**
   * Driver mode: inbound frames waiting for the reader. Client: frames the full `inbound` queue
   * could not take, in order behind it. Either way reading pauses at `inboundCapacity`, so beyond
   * it this holds at most the rest of one socket read.
   */
  readonly buffer: Array<Frame> = []
  driver: Driver | undefined = undefined
  /** Waiting in the server's ready list for its reader (driver mode). */
  queued = false
  closer: Fiber.Fiber<unknown, unknown> | undefined = undefined
  closing = false
  opened = false
  peerClosed = false
  prefix = ""
  readonly socketClosed: Deferred.Deferred<void> = Deferred.makeUnsafe<void>()
  /** The close code we will send (or terminate when `terminate`); first reason wins. */
  closeCode: number | undefined = undefined
  closeReason = ""
  terminate = false
  /** The close code the peer sent, when it closed first. */
  peerCode: number | undefined = undefined
  main: Fiber.Fiber<unknown, unknown> | undefined = undefined
  rttMs: number | undefined = undefined
  lastMessageAt = performance.now()
  pingSentAt = 0
  awaitingPong = false
  messagesIn = 0
  tokens: number
  tokensAt = performance.now()
  paused = false
  /** The writer is waiting for the socket to drain: new frames must queue behind it. */
  draining = false
  lastPing = performance.now()
  /** The running writer fiber, when frames are queued (lazy writer mode). */
  writer: Fiber.Fiber<unknown, unknown> | undefined = undefined
  /** Starts a writer for queued frames (lazy writer mode); set by the server. */
  startWriter: ((this: Connection) => void) | undefined = undefined

  constructor(id: string, ws: WebSocket, limits: Limits, counters: Counters, inbound: Queue.Queue<Frame, Cause.Done> | undefined, outbound: Queue.Queue<Frame> | undefined) {
    this.id = id
    this.ws = ws
    this.limits = limits
    this.counters = counters
    this.inbound = inbound
    if (outbound !== undefined) this.outbound = outbound
    this.tokens = limits.ratePerSecond
  }

  /** Ends the connection with `code` (or a terminate): the read fiber is interrupted, its scope closes the socket. */
  end(code: number, reason: string, terminate = false): void {
    if (this.closeCode === undefined) {
      // settled here, not at the send, so the close update and the counters show what is sent
      // (a terminate sends nothing: its code, 1006 say, is only counted)
      this.closeCode = terminate || isValidCloseCode(code) ? code : 1011
      this.closeReason = closeReason(reason)
      this.terminate = terminate
    }
    if (this.driver !== undefined) this.driver.end(this)
    else if (this.main !== undefined) this.main.interruptUnsafe()
    else if (this.inbound !== undefined) Queue.endUnsafe(this.inbound)
  }

  /** Whether the connection still accepts outbound messages. */
  get writable(): boolean {
    return this.closeCode === undefined && this.ws.readyState === OPEN
  }
}

/**
 * A code a close frame may carry (RFC 6455 7.4, as `ws` checks it; `ws.close` throws on any other):
 * 1000-1014 but 1004 (reserved), 1005 and 1006 (only ever reported, never sent), or 3000-4999.
 */
export const isValidCloseCode = (code: number): boolean =>
  Number.isInteger(code) && ((code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999))

/** Longest close reason in UTF-8 bytes: a control frame's payload is at most 125, 2 of them the code. */
export const maxCloseReasonBytes = 123

/**
 * `reason` cut to what a close frame can carry (`ws.close` throws on more), at a character
 * boundary so the peer, which must reject invalid UTF-8 with 1007, still gets a valid one.
 */
export const closeReason = (reason: string): string => {
  // a UTF-16 unit is at most 3 UTF-8 bytes: most reasons need no encoding to be known short
  if (reason.length * 3 <= maxCloseReasonBytes) return reason
  const bytes = Buffer.from(reason)
  if (bytes.length <= maxCloseReasonBytes) return reason
  let end = maxCloseReasonBytes
  // a continuation byte (10xxxxxx) right after the cut means the cut splits a character: drop it whole
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--
  return bytes.toString("utf8", 0, end)
}

/**
 * `send` without waiting: `true` when the frame went to the socket or its queue, `false` when the
 * connection no longer takes frames, `undefined` when it has to wait for room (then `sendWhenRoom`).
 */
export const sendNow = (conn: Connection, frame: Frame): boolean | undefined => {
  if (!conn.writable) return false
  if (writeThrough(conn, frame)) return true
  if (Queue.offerUnsafe(outboundOf(conn), frame)) return kick(conn)
  kick(conn)
  // a sliding queue never refuses: only reached when the queue is shut
  return conn.limits.outboundPolicy === "drop-oldest" ? false : undefined
}

/**
 * The waiting part of `send`, for a frame `sendNow` could not place: `backpressure` waits for
 * room; `close` waits up to the grace period and then closes the slow consumer with 1008.
 */
export const sendWhenRoom = (conn: Connection, frame: Frame): Effect.Effect<boolean> => {
  const offer = Queue.offer(outboundOf(conn), frame)
  if (conn.limits.outboundPolicy !== "close") return offer
  return offer.pipe(
    Effect.timeoutOption(Duration.millis(conn.limits.slowConsumerGraceMs)),
    Effect.map((r) => {
      if (r._tag === "Some") return r.value
      conn.end(1008, "slow consumer")
      return false
    })
  )
}

/**
 * Queues an outbound frame under the connection's policy. `backpressure` waits for room; `close`
 * waits up to the grace period and then closes the slow consumer with 1008; `drop-oldest` never waits.
 * Answers `false` when the frame was not queued.
 */
export const send = (conn: Connection, frame: Frame): Effect.Effect<boolean> => {
  const now = sendNow(conn, frame)
  return now === undefined ? sendWhenRoom(conn, frame) : Effect.succeed(now)
}

const outboundOf = (conn: Connection): Queue.Queue<Frame> => {
  if (conn.outbound === undefined) conn.outbound = conn.createOutbound!()
  return conn.outbound
}

/**
 * The fast path: with nothing queued ahead, the writer not waiting for a drain and the socket under
 * its high-water mark, the frame goes straight to the socket. Order is kept (nothing is ahead of
 * it) and a scheduler hop to the write fiber is saved; everything else goes through the queue.
 */
const writeThrough = (conn: Connection, frame: Frame): boolean => {
  if (conn.draining || (conn.outbound !== undefined && Queue.sizeUnsafe(conn.outbound) > 0) || conn.ws.bufferedAmount > conn.limits.highWaterMark) return false
  write(conn, frame)
  conn.counters.messagesOut++
  return true
}

const TEXT = { binary: false } as const

/**
 * A server's text frame goes to `ws` as bytes: given a string, `ws` hands it to the socket as a
 * string, and the socket then writes a header buffer and a string in one `writev`, encoding the
 * string in C++ on every write. Encoding it here first (from Node's buffer pool) lets the socket
 * take its all-buffers path: ws-echo measured 3.5 % more throughput (alternating runs with and
 * without). A client masks every frame, and `ws` masks bytes it is given into a copy (they are the
 * caller's), while a string it encodes into a buffer of its own and masks in place: a client keeps
 * sending strings.
 */
const write = (conn: Connection, frame: Frame): void => {
  if (typeof frame === "string" && conn.driver !== undefined) conn.ws.send(Buffer.from(frame), TEXT)
  else conn.ws.send(frame)
}

/** Makes sure a writer will drain what was just queued (lazy writer mode). */
const kick = (conn: Connection): true => {
  if (conn.writer === undefined && conn.startWriter !== undefined) conn.startWriter.call(conn)
  return true
}

/** Queues without waiting (broadcast): a full queue counts as dropped, or closes under `close`. */
export const trySend = (conn: Connection, frame: Frame): boolean => {
  if (!conn.writable) return false
  if (writeThrough(conn, frame)) return true
  if (Queue.offerUnsafe(outboundOf(conn), frame)) return kick(conn)
  conn.counters.dropped++
  if (conn.limits.outboundPolicy === "close") conn.end(1008, "slow consumer")
  return false
}

export const makeOutbound = (limits: Limits) =>
  limits.outboundPolicy === "drop-oldest" ? Queue.sliding<Frame>(limits.outboundCapacity) : Queue.bounded<Frame>(limits.outboundCapacity)

export const makeQueues = (limits: Limits) =>
  Effect.all([Queue.bounded<Frame, Cause.Done>(limits.inboundCapacity), makeOutbound(limits)])

/** The connection a socket serves, kept on the socket so one set of listener functions serves all. */
const CONNECTION: unique symbol = Symbol.for("fiberbot/websocket/Connection") as never
type Tagged = WebSocket & { [CONNECTION]: Connection }

function onMessage(this: WebSocket, data: Buffer | ArrayBuffer | Array<Buffer>, isBinary: boolean): void {
  const conn = (this as Tagged)[CONNECTION]
  if (conn.closeCode !== undefined) return
  const limits = conn.limits
  // the clock only when a limit needs it: most servers set neither
  if (limits.idleTimeoutMs > 0 || limits.ratePerSecond > 0) {
    const now = performance.now()
    conn.lastMessageAt = now
    if (limits.ratePerSecond > 0) {
      conn.tokens = Math.min(limits.ratePerSecond, conn.tokens + ((now - conn.tokensAt) / 1000) * limits.ratePerSecond)
      conn.tokensAt = now
      if (conn.tokens < 1) return conn.end(1008, "rate limit exceeded")
      conn.tokens -= 1
    }
  }
  if (isBinary && limits.binary === "reject") return conn.end(1003, "binary frames are not accepted")
  const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data)
  const frame = isBinary ? buf : buf.toString()
  let waiting: number
  if (conn.inbound === undefined) {
    // Nothing ahead of it: straight to the bot when it has room. The frame never touches the
    // connection's buffer then (storing a new object into a long-lived one costs a GC write barrier).
    if (conn.buffer.length === 0 && conn.driver!.deliver(conn, frame)) return
    conn.buffer.push(frame)
    waiting = conn.buffer.length
    conn.driver!.frame(conn)
  } else {
    // `ws` emits every frame of a read it has begun even after `pause()`: what the full queue
    // cannot take waits in `buffer`, and later frames queue behind it so order holds, until the
    // reader takes both (the queue first)
    if (conn.buffer.length > 0 || !Queue.offerUnsafe(conn.inbound, frame)) conn.buffer.push(frame)
    waiting = Queue.sizeUnsafe(conn.inbound) + conn.buffer.length
  }
  if (!conn.paused && waiting >= limits.inboundCapacity) {
    // The bot is behind: stop reading this socket (TCP pushes back on the peer) until it catches up.
    conn.paused = true
    this.pause()
  }
}

function onPong(this: WebSocket): void {
  const conn = (this as Tagged)[CONNECTION]
  conn.awaitingPong = false
  conn.rttMs = performance.now() - conn.pingSentAt
}

function onError(): void {
  // ws closes the socket itself after an error (1009 oversized, 1007 bad UTF-8, resets); the
  // 'close' event that follows ends the connection.
}

function onClose(this: WebSocket, code: number): void {
  const conn = (this as Tagged)[CONNECTION]
  conn.peerCode = code
  Deferred.doneUnsafe(conn.socketClosed, Exit.void)
  // Frames already queued are still handed to the bot; the reader ends after them.
  conn.peerClosed = true
  if (conn.inbound === undefined) conn.driver!.peerClose(conn)
  else Queue.endUnsafe(conn.inbound)
}

/**
 * Wires the `ws` callbacks of a freshly opened socket to the connection. Callbacks only update
 * counters and push into the bounded inbound buffer; they never start a fiber themselves. The
 * listeners are shared functions (no closures per connection).
 */
export const attach = (conn: Connection): void => {
  const ws = conn.ws as Tagged
  ws[CONNECTION] = conn
  ws.on("message", onMessage)
  ws.on("pong", onPong)
  ws.on("error", onError)
  ws.on("close", onClose)
}

const countClose = (counters: Counters, code: number | undefined) => {
  if (code !== undefined) counters.closeCodes[code] = (counters.closeCodes[code] ?? 0) + 1
}

/** Closes the socket exactly once: a close frame and a bounded wait, else a terminate. */
export const closeSocket = (conn: Connection, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> =>
  Effect.gen(function*() {
    const { ws, counters } = conn
    counters.open--
    if (ws.readyState === CLOSED) {
      countClose(counters, conn.closeCode ?? conn.peerCode)
      counters.closedClean++
      return
    }
    if (conn.closeCode === undefined) {
      // Interrupted from outside: the adapter is stopping.
      conn.closeCode = Exit.isSuccess(exit) ? 1000 : 1001
      conn.closeReason = Exit.isSuccess(exit) ? "" : "going away"
    }
    countClose(counters, conn.closeCode)
    if (conn.terminate) {
      ws.terminate()
      counters.terminated++
      return
    }
    // A socket paused because the bot was behind stays paused until someone resumes it, and the
    // peer's close reply is behind the data it holds: without reading on, every such close would
    // wait out closeTimeout and terminate. The data frames before the reply are dropped
    // (`onMessage` takes nothing once a close code is set), and so are those still buffered.
    conn.buffer.length = 0
    if (conn.paused) {
      conn.paused = false
      ws.resume()
    }
    if (ws.readyState === OPEN) {
      try {
        ws.close(conn.closeCode, conn.closeReason)
      } catch {
        // `end` settles code and reason, but a throw here must not leave the socket open
        ws.terminate()
        counters.terminated++
        return
      }
    }
    const answered = yield* Effect.timeoutOption(Deferred.await(conn.socketClosed), Duration.millis(conn.limits.closeTimeoutMs))
    if (answered._tag === "None") {
      ws.terminate()
      counters.terminated++
    } else {
      counters.closedClean++
    }
  })

/** Sends one batch; while the peer is not reading, waits for the socket to drain (bounded under `close`). */
const writeBatch = (conn: Connection, batch: ReadonlyArray<Frame>): Effect.Effect<void> =>
  Effect.gen(function*() {
    const { ws, counters } = conn
    for (let i = 0; i < batch.length; i++) {
      write(conn, batch[i]!)
      counters.messagesOut++
    }
    if (ws.bufferedAmount > conn.limits.highWaterMark) {
      conn.draining = true
      const started = performance.now()
      while (ws.bufferedAmount > conn.limits.highWaterMark) {
        if (conn.limits.outboundPolicy === "close" && performance.now() - started > conn.limits.slowConsumerGraceMs) {
          conn.end(1008, "slow consumer")
          return yield* Effect.never
        }
        yield* Effect.sleep(Duration.millis(10))
      }
      conn.draining = false
    }
  })

/** The long-lived writer (client): drains the outbound queue for as long as the connection lives. */
const writeLoop = (conn: Connection): Effect.Effect<never> =>
  Effect.forever(Effect.flatMap(Queue.takeAll(conn.outbound!), (batch) => writeBatch(conn, batch)))

/**
 * The lazy writer (server): runs only while frames are queued and ends when the queue is empty, so
 * an idle or quickly answered connection holds no write fiber.
 */
export const drain = (conn: Connection): Effect.Effect<void> =>
  Effect.gen(function*() {
    const outbound = conn.outbound!
    while (Queue.sizeUnsafe(outbound) > 0 && conn.closeCode === undefined) {
      yield* writeBatch(conn, yield* Queue.takeAll(outbound))
    }
  }).pipe(Effect.ensuring(Effect.sync(() => {
    conn.writer = undefined
  })))

/**
 * One heartbeat step for a connection at time `now`: closes it when idle, terminates it when the
 * previous ping is still unanswered, else pings when due. The server runs this for every
 * connection from one sweeping fiber; the client from its connection's heartbeat fiber.
 */
export const heartbeatCheck = (conn: Connection, now: number): void => {
  const { heartbeatMs, idleTimeoutMs } = conn.limits
  if (conn.closeCode !== undefined) return
  if (idleTimeoutMs > 0 && now - conn.lastMessageAt >= idleTimeoutMs) return conn.end(1000, "idle timeout")
  if (heartbeatMs > 0 && now - conn.lastPing >= heartbeatMs - 1) {
    if (conn.awaitingPong) return conn.end(1006, "missed pong", true)
    conn.awaitingPong = true
    conn.pingSentAt = now
    conn.lastPing = now
    conn.ws.ping()
  }
}

/** How often heartbeat checks must run for `limits` (ms), or undefined when there is nothing to check. */
export const heartbeatTick = (limits: Limits): number | undefined => {
  const tick = Math.min(limits.heartbeatMs > 0 ? limits.heartbeatMs : Infinity, limits.idleTimeoutMs > 0 ? Math.max(10, limits.idleTimeoutMs / 2) : Infinity)
  return Number.isFinite(tick) ? tick : undefined
}

const heartbeatLoop = (conn: Connection, tick: number): Effect.Effect<never> =>
  Effect.forever(Effect.andThen(Effect.sleep(Duration.millis(tick)), Effect.sync(() => heartbeatCheck(conn, performance.now()))))

/**
 * One inbound frame to the bot: binary as is, text through the codec. A malformed message closes
 * the connection with 1007 or is answered with an error frame, per the codec. `false`: stop reading.
 */
const handleFrame = <A>(conn: Connection, frame: Frame, codec: Codec.Codec<A>, hooks: Hooks<A>): Effect.Effect<boolean> =>
  Effect.suspend(() => {
    conn.counters.messagesIn++
    if (typeof frame !== "string") return Effect.as(hooks.onMessage(conn, frame, undefined, true), true)
    const decoded = codec.decode(frame)
    if (Exit.isSuccess(decoded)) return Effect.as(hooks.onMessage(conn, decoded.value, frame, false), true)
    if (codec.onMalformed === "close") {
      conn.end(1007, "malformed message")
      return Effect.succeed(false)
    }
    trySend(conn, JSON.stringify({ error: "malformed message", reason: String(Cause.squash(decoded.cause)) }))
    return Effect.succeed(true)
  })

/**
 * Hands a driven (server) connection's buffered frames to the bot, in order: the `open` update
 * first, once. Ends the connection when the peer has closed and nothing is left. The server's one
 * reader fiber runs this for every connection with frames waiting.
 */
export const readBuffered = <A>(conn: Connection, codec: Codec.Codec<A>, hooks: Hooks<A>): Effect.Effect<void> =>
  Effect.gen(function*() {
    if (!conn.opened) {
      conn.opened = true
      yield* hooks.onOpen(conn)
    }
    const buffer = conn.buffer
    while (buffer.length > 0) {
      if (conn.closeCode !== undefined) {
        buffer.length = 0
        return
      }
      if (!(yield* handleFrame(conn, buffer.shift()!, codec, hooks))) return
    }
    if (conn.paused) {
      conn.paused = false
      conn.ws.resume()
    }
    if (conn.peerClosed && conn.closeCode === undefined) conn.driver!.end(conn)
  })

/**
 * Serves one connection until it ends: this effect is the read fiber. It owns the connection's
 * scope; the write and heartbeat fibers live in it, and its finalizer closes the socket.
 */
export const serve = <A>(
  conn: Connection,
  codec: Codec.Codec<A>,
  hooks: Hooks<A>,
  names: {
    readonly write: string
    /** A heartbeat fiber for this connection; undefined when someone else sweeps heartbeats. */
    readonly heartbeat: string | undefined
    /** Start the writer only while frames are queued (server); else one writer for the whole connection. */
    readonly lazyWriter: boolean
  },
  named: (name: string) => <X, E, R>(effect: Effect.Effect<X, E, R>) => Effect.Effect<X, E, R>
): Effect.Effect<void> =>
  Effect.scoped(Effect.gen(function*() {
    const fiber = Fiber.getCurrent()
    if (fiber !== undefined) conn.main = fiber
    conn.counters.opened++
    conn.counters.open++
    yield* Effect.addFinalizer((exit) => closeSocket(conn, exit))
    // The close update is offered on every way out, bounded so a full intake cannot hold the socket.
    yield* Effect.addFinalizer(() =>
      Effect.timeoutOption(hooks.onClose(conn), Duration.millis(conn.limits.closeTimeoutMs))
    )
    if (names.lazyWriter) {
      // a lazy writer lives outside this scope (it is started from reply paths): stop it here
      yield* Effect.addFinalizer(() => Effect.suspend(() => (conn.writer === undefined ? Effect.void : Fiber.interrupt(conn.writer))))
    } else {
      yield* Effect.forkScoped(named(names.write)(writeLoop(conn)), { startImmediately: true })
    }
    const tick = heartbeatTick(conn.limits)
    if (names.heartbeat !== undefined && tick !== undefined) {
      yield* Effect.forkScoped(named(names.heartbeat)(heartbeatLoop(conn, tick)), { startImmediately: true })
    }
    if (conn.closeCode !== undefined) return
    yield* hooks.onOpen(conn)
    while (true) {
      const batch = yield* Queue.takeAll(conn.inbound!)
      // the overflow of a read is behind everything the queue held, and is taken in the same
      // step: a frame that comes later finds it empty and goes to the queue, after it
      const overflow = conn.buffer.length === 0 ? undefined : conn.buffer.splice(0)
      if (conn.paused) {
        conn.paused = false
        conn.ws.resume()
      }
      for (let i = 0; i < batch.length; i++) {
        if (!(yield* handleFrame(conn, batch[i]!, codec, hooks))) return
      }
      if (overflow !== undefined) {
        for (let i = 0; i < overflow.length; i++) {
          if (!(yield* handleFrame(conn, overflow[i]!, codec, hooks))) return
        }
      }
    }
    // the inbound queue ended: the peer closed
  }).pipe(Effect.catch(() => Effect.void)))
