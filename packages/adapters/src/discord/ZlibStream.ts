/**
 * ZlibStream: Discord's `zlib-stream` transport decoding, one inflate context per connection.
 *
 * A message may arrive in several WebSocket frames; it is complete when the buffered bytes end
 * with the sync-flush marker `00 00 ff ff`. We then inflate it synchronously through the zlib
 * handle (node's own sync path, minus closing the context), so output can never trail behind a
 * callback and be read truncated (discord.js#10414).
 */
import * as zlib from "node:zlib"

interface ZlibInternals {
  readonly _writeState: Uint32Array
  readonly _handle: {
    writeSync(flush: number, input: Buffer, inOff: number, inLen: number, out: Buffer, outOff: number, outLen: number): void
  } | null
  readonly _chunkSize: number
  _outBuffer: Buffer
  _outOffset: number
}

const processSync = (engine: zlib.Inflate, input: Buffer): Buffer => {
  const self = engine as unknown as ZlibInternals
  const handle = self._handle
  if (handle === null) throw new Error("zlib context closed")
  const state = self._writeState
  const chunkSize = self._chunkSize
  let inOff = 0
  let availIn = input.byteLength
  const out: Array<Buffer> = []
  let total = 0
  while (true) {
    const buffer = self._outBuffer
    let offset = self._outOffset
    const availOutBefore = chunkSize - offset
    handle.writeSync(zlib.constants.Z_SYNC_FLUSH, input, inOff, availIn, buffer, offset, availOutBefore)
    // a zlib error closes the context from inside writeSync; writing to it again would abort the process
    if (engine.destroyed || self._handle === null) throw new Error("zlib-stream: corrupt compressed data")
    const availOutAfter = state[0]!
    const availInAfter = state[1]!
    const produced = availOutBefore - availOutAfter
    if (produced > 0) {
      out.push(Buffer.from(buffer.subarray(offset, offset + produced)))
      total += produced
      offset += produced
    }
    if (availOutAfter === 0 || offset >= chunkSize) {
      self._outBuffer = Buffer.allocUnsafe(chunkSize)
      offset = 0
    }
    self._outOffset = offset
    if (availOutAfter !== 0) break
    inOff += availIn - availInAfter
    availIn = availInAfter
  }
  return out.length === 1 ? out[0]! : Buffer.concat(out, total)
}

/** Largest compressed message we buffer while waiting for its end marker. */
const MAX_PENDING = 64 * 1024 * 1024

export interface Decoder {
  /** Feeds one frame; returns the decoded message text once complete, else `undefined`. */
  readonly push: (frame: Buffer) => string | undefined
  readonly close: () => void
}

/** The sync-flush marker `00 00 ff ff`, read from its last byte backwards. */
const MARKER_FROM_END = [0xff, 0xff, 0x00, 0x00] as const

/**
 * Whether the bytes buffered so far end with the marker. Only the last four bytes are read, across
 * frames when the newest is shorter (no frame is empty, so that is at most four frames): a message
 * split over many frames costs no copy until it is complete.
 */
const endsWithMarker = (frames: ReadonlyArray<Buffer>): boolean => {
  let k = 0
  for (let i = frames.length - 1; i >= 0 && k < 4; i--) {
    const frame = frames[i]!
    for (let j = frame.byteLength - 1; j >= 0 && k < 4; j--, k++) {
      if (frame[j] !== MARKER_FROM_END[k]) return false
    }
  }
  return k === 4
}

export const makeDecoder = (): Decoder => {
  const inflate = zlib.createInflate({ chunkSize: 128 * 1024 })
  inflate.on("error", () => {})
  let pending: Array<Buffer> = []
  let pendingBytes = 0
  return {
    push: (frame) => {
      if (frame.byteLength === 0) return undefined
      pending.push(frame)
      pendingBytes += frame.byteLength
      if (pendingBytes > MAX_PENDING) throw new Error(`zlib-stream message over ${MAX_PENDING} bytes`)
      if (!endsWithMarker(pending)) return undefined
      const input = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes)
      pending = []
      pendingBytes = 0
      return processSync(inflate, input).toString("utf8")
    },
    close: () => {
      if (!inflate.destroyed) inflate.close()
    }
  }
}
