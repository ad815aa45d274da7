/**
 * Reading callgrind's counts of a gateway process (bench/callgrind.mjs): per-function events from
 * `callgrind_annotate`, JavaScript functions named from V8's `--perf-basic-prof` map, and the
 * split between the code that serves requests and the runtime's own work (garbage collection and
 * compilation), whose share of a short window depends on when a collection happens to fall.
 */

/**
 * Per-function totals from `callgrind_annotate --auto=no --threshold=100` output.
 * @param {string} text the annotate output
 * @returns {{ events: string[], totals: number[], functions: Array<{ name: string, counts: number[] }> }}
 */
export function parseAnnotate (text) {
  let events
  let totals
  const functions = []
  for (const line of text.split('\n')) {
    if (line.startsWith('Events shown:')) {
      events = line.slice('Events shown:'.length).trim().split(/\s+/)
      continue
    }
    if (events === undefined) continue
    // "1,234 (12.5%)  0  .  file:function [object]": one count per event (with its share unless
    // it is 0; "." for none).
    const match = /^\s*((?:(?:[\d,]+|\.)\s+(?:\(\s*[\d.]+%\)\s+)?)+)(\S.*)$/.exec(line)
    if (match === null) continue
    const counts = match[1].replace(/\(\s*[\d.]+%\)/g, ' ').trim().split(/\s+/).map((n) => n === '.' ? 0 : Number(n.replace(/,/g, '')))
    if (counts.length !== events.length || counts.some((n) => !Number.isFinite(n))) continue
    if (match[2].startsWith('PROGRAM TOTALS')) totals = counts
    else functions.push({ name: match[2].trim(), counts })
  }
  if (events === undefined || totals === undefined) throw new Error('callgrind: no "Events shown" and "PROGRAM TOTALS" in the annotate output')
  return { events, totals, functions }
}

/**
 * The entries of a `/tmp/perf-<pid>.map` (`<start hex> <size hex> <name>` per line), sorted by start.
 * @param {string} text
 * @returns {Array<{ start: number, end: number, name: string }>}
 */
export function parsePerfMap (text) {
  const entries = []
  for (const line of text.split('\n')) {
    const match = /^([0-9a-fA-F]+) ([0-9a-fA-F]+) (.+)$/.exec(line)
    if (match === null) continue
    const start = Number.parseInt(match[1], 16)
    entries.push({ start, end: start + Number.parseInt(match[2], 16), name: match[3] })
  }
  return entries.sort((a, b) => a.start - b.start)
}

/** The perf-map entry holding `address`, or undefined. */
export function lookupAddress (entries, address) {
  let low = 0
  let high = entries.length - 1
  let found
  while (low <= high) {
    const mid = (low + high) >> 1
    if (entries[mid].start <= address) {
      found = entries[mid]
      low = mid + 1
    } else {
      high = mid - 1
    }
  }
  return found !== undefined && address < found.end ? found : undefined
}

/**
 * A readable name for a function of the annotate output: JIT code (`???:0x... [???]`) named from the
 * perf map (`JS *find find-my-way@9.10.1:index.js:618:39`; `*` optimized, `^` baseline, `~` interpreted),
 * paths shortened to the package or the repository.
 */
export function functionName (raw, entries, root) {
  const jit = /^\?\?\?:0x([0-9a-f]+) \[\?\?\?\]$/.exec(raw)
  if (jit === null) return raw.replace(/^\?\?\?:/, '').replace(/ \[\/usr\/bin\/node\]$/, '')
  const entry = lookupAddress(entries, Number.parseInt(jit[1], 16))
  if (entry === undefined) return 'JS (unnamed JIT code)'
  let name = entry.name.replace(/^(?:LazyCompile|Function|JS|Builtin|Script|Eval):\s*/, '')
  // pnpm's store path to "package@version:path"; the repository's own files relative to it.
  name = name.replace(/\S*\/node_modules\/\.pnpm\/([^/\s]+)\/node_modules\/\S*?([^/\s]+\/[^/\s]+:\d+:\d+)$/, '$1:$2')
  if (root !== undefined) name = name.split(`file://${root}/`).join('').split(`${root}/`).join('')
  return `JS ${name}`
}

/**
 * The runtime's own work: V8's garbage collector and compilers. How much of it falls in a window
 * of a few thousand requests depends on when a full collection starts, so it is reported apart.
 */
const RUNTIME_WORK = /StringTableCleaner|PointersUpdating|SizeFromMap|Scaveng|Marking|Marker|Sweep|Evacuat|Compact|Heap::|MemoryAllocator|RememberedSet|SlotSet|GCTracer|Mark[A-Z]|Page::|PageMetadata|Worklist|heap::base|BodyDescriptor|Pretenuring|MemoryChunk|SemiSpace|FreeList|LiveObject|RecordMigrated|compiler::|Compiler|Maglev|interpreter::|Parser|Scanner|Deoptimizer|RelocIterator|IterateObjectCache|RootScavenge|OptimizedCompilationJob|Serializer|__popcount/

export function isRuntimeWork (name) {
  return RUNTIME_WORK.test(name)
}

/** Derived events: data-cache misses (reads + writes) at the first level and at the last. */
export function eventValue (events, counts, event) {
  const at = (name) => {
    const i = events.indexOf(name)
    return i === -1 ? undefined : counts[i]
  }
  if (event === 'D1miss') return sum(at('D1mr'), at('D1mw'))
  if (event === 'LLmiss') return sum(at('DLmr'), at('DLmw'))
  return at(event)
}

/** Whether the window counted `event` (the miss events need callgrind's --cache-sim=yes). */
export function hasEvent (events, event) {
  return eventValue(events, events.map(() => 0), event) !== undefined
}

function sum (a, b) {
  return a === undefined || b === undefined ? undefined : a + b
}

/**
 * Per-request figures of one window: every event, split into the runtime's own work (collector,
 * compilers) and the rest, the request path; `js` is the request path's JIT code.
 * @param {{ events: string[], functions: Array<{ name: string, counts: number[] }> }} parsed functions already named
 * @param {number} requests requests answered in the window
 */
export function perRequest (parsed, requests, wanted = ['Ir', 'D1miss', 'LLmiss']) {
  const parts = { all: {}, runtime: {}, requestPath: {}, js: {} }
  for (const event of wanted) {
    if (!hasEvent(parsed.events, event)) continue
    for (const part of Object.keys(parts)) parts[part][event] = 0
    for (const fn of parsed.functions) {
      const value = eventValue(parsed.events, fn.counts, event) / requests
      parts.all[event] += value
      if (isRuntimeWork(fn.name)) parts.runtime[event] += value
      else {
        parts.requestPath[event] += value
        if (fn.name.startsWith('JS ')) parts.js[event] += value
      }
    }
  }
  return parts
}

/**
 * Functions of the request path (not the runtime) whose per-request `event` differs most between two windows
 * (`b` minus `a`), largest first.
 */
export function diffFunctions (a, aRequests, b, bRequests, event, top = 30) {
  const values = (parsed, requests) => {
    const map = new Map()
    for (const fn of parsed.functions) {
      if (isRuntimeWork(fn.name)) continue
      map.set(fn.name, (map.get(fn.name) ?? 0) + eventValue(parsed.events, fn.counts, event) / requests)
    }
    return map
  }
  const va = values(a, aRequests)
  const vb = values(b, bRequests)
  return [...new Set([...va.keys(), ...vb.keys()])]
    .map((name) => ({ name, a: va.get(name) ?? 0, b: vb.get(name) ?? 0 }))
    .map((row) => ({ ...row, diff: row.b - row.a }))
    .sort((x, y) => Math.abs(y.diff) - Math.abs(x.diff))
    .slice(0, top)
}
