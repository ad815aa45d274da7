/**
 * The part of opossum 9's API this package uses. There is no @types/opossum for 9 (the latest is
 * 8.1.x), so these are declared here, checked against opossum 9.0.0's lib/circuit.js and
 * lib/status.js. Internal: no public type of @faultline/breaker refers to opossum.
 */
declare module 'opossum' {
  import { EventEmitter } from 'node:events'

  namespace CircuitBreaker {
    interface Options {
      /** ms before an action is failed with ETIMEDOUT; `false` (or 0) arms no timer at all. */
      timeout?: number | false
      resetTimeout?: number
      errorThresholdPercentage?: number
      volumeThreshold?: number
      rollingCountTimeout?: number
      rollingCountBuckets?: number
      rollingPercentilesEnabled?: boolean
      /** Default true: a second interval per breaker emitting 'snapshot'. */
      enableSnapshots?: boolean
      /** Rotates the buckets on its 'rotate' events instead of an interval per breaker. */
      rotateBucketController?: EventEmitter
      capacity?: number
      name?: string
      errorFilter?: (err: unknown, ...args: unknown[]) => boolean
    }

    /** Totals over the rolling window. */
    interface Stats {
      failures: number
      successes: number
      fires: number
      rejects: number
      timeouts: number
      fallbacks: number
      semaphoreRejections: number
      latencyTimes: number[]
    }

    interface Status extends EventEmitter {
      readonly stats: Stats
      /** Pushes a fresh bucket and drops the oldest (an own property, bound to the window). */
      rotateBucket: () => void
      /** Adds one to a counter of the current bucket (what the breaker's own event listeners call). */
      increment: (property: 'fires' | 'successes' | 'failures', latencyRunTime?: number) => void
    }
  }

  class CircuitBreaker<TArgs extends unknown[] = unknown[], TResult = unknown> extends EventEmitter {
    constructor (action: (...args: TArgs) => TResult | Promise<TResult>, options?: CircuitBreaker.Options)
    static isOurError (error: unknown): boolean
    fire (...args: TArgs): Promise<TResult>
    open (): void
    close (): void
    shutdown (): void
    readonly name: string
    readonly closed: boolean
    readonly opened: boolean
    readonly halfOpen: boolean
    readonly pendingClose: boolean
    readonly isShutdown: boolean
    readonly volumeThreshold: number
    readonly status: CircuitBreaker.Status
    readonly stats: CircuitBreaker.Stats
  }

  export = CircuitBreaker
}
