/**
 * V8 settings for a process whose only job is to be a gateway. `faultline serve` applies them
 * before it builds anything; an application that composes the plugins itself can call
 * `tuneGatewayRuntime()` first thing, or start Node with the same flag.
 *
 * Allocation-site pretenuring: when the objects made at one place in the code all survive a young
 * collection, V8 starts allocating that place's objects straight in the old generation. A gateway
 * with 1,000 APIs trips it (`--trace-pretenuring-statistics` shows sites turning to "tenure" and
 * staying there under load): per-request objects then die in the old generation, where they keep
 * young objects alive, so every young collection copies more and the heap grows until a full
 * collection. Measured under the same load, 1,000 APIs against 1 (10 s after a warm-up): young
 * collection time per request 27.5 against 4.2 ms per 1,000 requests, heap 466 against 42 MiB;
 * with pretenuring off, 5.5 ms and 163 MiB, and the harness's 1,000-APIs row went from about 0.5
 * of one API to 0.93. With one API the flag changes nothing measurable.
 */
import { setFlagsFromString } from 'node:v8'

export const gatewayV8Flags: readonly string[] = Object.freeze(['--no-allocation-site-pretenuring'])

let applied = false

/** Applies `gatewayV8Flags` to this process (once). Best called before the gateway is built. */
export function tuneGatewayRuntime (): void {
  if (applied) return
  applied = true
  for (const flag of gatewayV8Flags) setFlagsFromString(flag)
}

const PRIME_ROUNDS = 3
const PRIME_TICKS = 100_000

let primed: Promise<void> | undefined

/**
 * Runs `process.nextTick` hot (3 x 100,000 empty ticks, ~50 ms once per process) so that V8
 * optimizes it before the gateway's routes are built. Optimized only after building 1,000 APIs,
 * Node 20's nextTick stays on a slow path for good: 0.9 µs a call instead of 0.15 (a loop of
 * chained ticks, bench/), most of it in the object literal of its tick, and it was 4.9% of the
 * 1,000-APIs row's CPU against 0.6% with one API. Clearing the function's feedback
 * (`%ClearFunctionFeedback`) makes it fast again, and so does this, done first.
 * `registerApi()` awaits it first (so `buildGateway()` does, once per API: at once after the first
 * time); an application that builds many routes of its own can await it before.
 */
export async function primeNextTick (): Promise<void> {
  primed ??= (async () => {
    for (let round = 0; round < PRIME_ROUNDS; round++) {
      await new Promise<void>((resolve) => {
        let left = PRIME_TICKS
        const step = (): void => {
          if (--left === 0) resolve()
          else process.nextTick(step)
        }
        process.nextTick(step)
      })
    }
  })()
  await primed
}
