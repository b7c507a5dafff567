/**
 * ZlibStream: one deflate context for the life of a connection, flushed per message.
 *
 * Discord's `zlib-stream` transport keeps a single zlib context per connection and ends every
 * message with a sync flush (`00 00 ff ff`). node:zlib's stream API delivers output through
 * events that can trail the flush callback (the truncated-JSON bug of discord.js#10414), and its
 * `*Sync` helpers close the context after one call. So we drive the zlib handle synchronously
 * ourselves, exactly like node's own sync path does, but keep the context open.
 *
 * The adapter's inflate side (`@fiberbot/adapters/discord`) drives the handle the same way. The
 * emulator keeps its own copy on purpose: the testkit depends on no adapter, so a bug in the
 * client's code cannot hide itself by being on both ends of the socket.
 */
import * as zlib from "node:zlib"

interface ZlibInternals {
  readonly _writeState: Uint32Array
  readonly _handle: {
    writeSync(flush: number, input: Buffer, inOff: number, inLen: number, out: Buffer, outOff: number, outLen: number): void
  }
  readonly _chunkSize: number
  _outBuffer: Buffer
  _outOffset: number
}

/** Runs `input` through `engine` with a sync flush and returns everything it produced. */
export const processSync = (engine: zlib.Deflate | zlib.Inflate, input: Buffer): Buffer => {
  const self = engine as unknown as ZlibInternals
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
    self._handle.writeSync(zlib.constants.Z_SYNC_FLUSH, input, inOff, availIn, buffer, offset, availOutBefore)
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

export const makeDeflate = (): zlib.Deflate => zlib.createDeflate({ chunkSize: 64 * 1024 })
