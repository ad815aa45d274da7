/**
 * The child side of the harness's protocol. Every process the harness starts (upstream, systems
 * under test, load generator) talks to it over the IPC channel:
 *   harness -> child  { type: 'start', config }        child -> harness { type: 'ready', url, execArgv }
 *   harness -> child  { type: 'memory', id }           child -> harness { type: 'reply', id, value }
 *   harness -> child  { type: 'stop' }                 the child closes and exits
 * A child whose harness died (IPC disconnected) exits too, so no server outlives a run.
 */

/**
 * @param {(config: any) => Promise<{ url?: string, close: () => Promise<void>, handle?: (msg: any) => Promise<any> }>} start
 */
export function serveChild (start) {
  let running
  process.on('disconnect', () => process.exit(0))
  process.on('message', async (msg) => {
    try {
      if (msg.type === 'start') {
        running = await start(msg.config)
        // What building the system left behind (for fl-1m-keys, the harness's own list of a million
        // keys) is collected before it is measured, the same for every system: otherwise that
        // garbage sat in the old generation for the whole run, no full GC being due.
        collect()
        process.send({ type: 'ready', url: running.url, execArgv: process.execArgv })
      } else if (msg.type === 'memory') {
        process.send({ type: 'reply', id: msg.id, value: measureMemory() })
      } else if (msg.type === 'stop') {
        await running?.close()
        process.exit(0)
      } else if (running?.handle !== undefined) {
        process.send({ type: 'reply', id: msg.id, value: await running.handle(msg) })
      }
    } catch (err) {
      process.send({ type: 'error', id: msg.id, message: err.stack ?? String(err) })
      if (msg.type === 'start') process.exit(1)
    }
  })
}

/** Full collections (the children run with --expose-gc). */
function collect () {
  if (typeof globalThis.gc === 'function') {
    globalThis.gc()
    globalThis.gc()
  }
}

/** Memory after a full collection, so runs compare like with like. */
function measureMemory () {
  collect()
  const m = process.memoryUsage()
  return { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers }
}

/**
 * Listens on a free loopback port; resolves with the URL and a close that cuts kept-alive
 * connections first (a child must exit promptly when the harness stops it).
 * @param {import('node:http').Server} server
 */
export async function listenLoopback (server) {
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: async () => {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
  }
}
