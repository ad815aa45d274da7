/**
 * Streams access-log inputs (files, `-` for stdin, gzip detected by its magic bytes) line by line
 * into the aggregate. Memory stays bounded: one chunk at a time, and a line longer than
 * MAX_LINE_BYTES is skipped (counted as malformed) instead of buffered.
 */
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { isAscii } from 'node:buffer'
import { createGunzip } from 'node:zlib'
import { createLineParser, LINE_ACCESS, LINE_BLANK, LINE_MALFORMED, LINE_OTHER } from './access-line.js'
import type { ReportAggregate } from './aggregate.js'
import type { InputTally } from './summary.js'

export const STDIN = '-'
export const MAX_LINE_BYTES = 1024 * 1024
const TOO_LONG = `line longer than ${MAX_LINE_BYTES} bytes`
const MAX_SAMPLES = 5
const CHUNK_BYTES = 1024 * 1024

export interface ReadProgress {
  /** Bytes read so far (compressed bytes for gzip) and lines so far. */
  update: (bytes: number, lines: number) => void
}

export class InputError extends Error {}

/** Sizes of the files (stdin: unknown), checked before anything is read: a typo fails at once. */
export async function inputSizes (inputs: readonly string[]): Promise<number | undefined> {
  let total: number | undefined = 0
  for (const input of inputs) {
    if (input === STDIN) {
      total = undefined
      continue
    }
    let info
    try {
      info = await stat(input)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      throw new InputError(`cannot read ${input}: ${code === 'ENOENT' ? 'no such file' : code ?? (err as Error).message}`)
    }
    if (info.isDirectory()) throw new InputError(`cannot read ${input}: it is a directory`)
    if (total !== undefined) total += info.size
  }
  return total
}

function displayName (input: string): string {
  return input === STDIN ? 'stdin' : input
}

/** UTF-8 text of `bytes`; pure ASCII (the usual log) through the much cheaper latin1 decoder. */
function decode (bytes: Buffer): string {
  return bytes.toString(isAscii(bytes) ? 'latin1' : 'utf8')
}

function isGzip (chunk: Buffer): boolean {
  return chunk.length >= 2 && chunk[0] === 0x1f && chunk[1] === 0x8b
}

/** The bytes of `raw`, gunzipped when they start with gzip's magic number. */
async function * decoded (raw: Readable, counted: (n: number) => void): AsyncGenerator<Buffer> {
  const it = raw[Symbol.asyncIterator]() as AsyncIterator<Buffer>
  let head: Buffer = Buffer.alloc(0)
  // The magic number needs two bytes; a pipe may deliver one.
  while (head.length < 2) {
    const next = await it.next()
    if (next.done === true) break
    head = head.length === 0 ? next.value : Buffer.concat([head, next.value])
  }
  if (head.length === 0) return
  async function * rest (): AsyncGenerator<Buffer> {
    counted(head.length)
    yield head
    for (;;) {
      const next = await it.next()
      if (next.done === true) return
      counted(next.value.length)
      yield next.value
    }
  }
  if (!isGzip(head)) {
    yield * rest()
    return
  }
  const gunzip = createGunzip({ chunkSize: CHUNK_BYTES })
  const source = Readable.from(rest(), { objectMode: false })
  source.on('error', (err) => gunzip.destroy(err))
  source.pipe(gunzip)
  yield * gunzip
}

/** Reads every input into `agg`; returns what was seen besides access lines. */
export async function readInputs (
  inputs: readonly string[],
  agg: ReportAggregate,
  options: { stdin?: Readable, progress?: ReadProgress } = {}
): Promise<InputTally> {
  const parser = createLineParser()
  const tally: InputTally = { inputs: inputs.map(displayName), lines: 0, blank: 0, notAccess: 0, malformed: 0, samples: [], errors: [] }
  const progress = options.progress
  let bytes = 0
  const counted = (n: number): void => {
    bytes += n
  }

  function malformed (input: string, line: number, problem: string): void {
    tally.malformed++
    if (tally.samples.length < MAX_SAMPLES) tally.samples.push({ input, line, problem })
  }

  for (const input of inputs) {
    const raw = input === STDIN
      ? (options.stdin ?? process.stdin)
      : createReadStream(input, { highWaterMark: CHUNK_BYTES })
    const name = displayName(input)
    let lineNo = 0
    // Bytes of a line that the next chunk finishes (kept undecoded: a chunk may end inside a
    // UTF-8 sequence, never inside a newline).
    let pending: Buffer | null = null
    let skipping = false

    const handle = (line: string): void => {
      if (line.length === 0) {
        tally.blank++
        return
      }
      tally.lines++
      if (line.length > MAX_LINE_BYTES) {
        malformed(name, lineNo, TOO_LONG)
        return
      }
      const kind = parser.parse(line)
      if (kind === LINE_ACCESS) agg.add(parser.fields)
      else if (kind === LINE_OTHER) tally.notAccess++
      else if (kind === LINE_BLANK) {
        tally.lines--
        tally.blank++
      } else if (kind === LINE_MALFORMED) malformed(name, lineNo, parser.problem)
    }

    // CRLF files: the \r is not part of the JSON.
    const endLine = (line: string): void => handle(line.charCodeAt(line.length - 1) === 13 ? line.slice(0, -1) : line)

    try {
      for await (const chunk of decoded(raw, counted)) {
        const firstNl = chunk.indexOf(10)
        if (firstNl === -1) {
          if (!skipping) pending = pending === null ? chunk : Buffer.concat([pending, chunk])
        } else {
          let start = 0
          if (pending !== null || skipping) {
            // The line begun in an earlier chunk ends here (only its bytes are joined).
            lineNo++
            if (skipping) skipping = false
            else endLine(decode(pending === null ? chunk.subarray(0, firstNl) : Buffer.concat([pending, chunk.subarray(0, firstNl)])))
            pending = null
            start = firstNl + 1
          }
          const lastNl = chunk.lastIndexOf(10)
          if (lastNl >= start) {
            // Whole lines only: one decode for all of them, then split.
            const text = decode(chunk.subarray(start, lastNl))
            let pos = 0
            let nl = text.indexOf('\n')
            while (nl !== -1) {
              lineNo++
              endLine(text.slice(pos, nl))
              pos = nl + 1
              nl = text.indexOf('\n', pos)
            }
            lineNo++
            endLine(pos === 0 ? text : text.slice(pos))
          }
          // A copy: the tail is small, and the chunk's memory is not held on to.
          if (lastNl + 1 < chunk.length) pending = Buffer.from(chunk.subarray(lastNl + 1))
        }
        if (pending !== null && pending.length > MAX_LINE_BYTES) {
          if (!skipping) {
            tally.lines++
            malformed(name, lineNo + 1, TOO_LONG)
          }
          skipping = true
          pending = null
        }
        progress?.update(bytes, tally.lines)
      }
    } catch (err) {
      tally.errors.push(`${name}: ${(err as Error).message}`)
    }
    if (skipping) lineNo++
    else if (pending !== null) {
      lineNo++
      endLine(decode(pending))
    }
  }
  progress?.update(bytes, tally.lines)
  return tally
}
