import net from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { Redis } from 'ioredis'
import { startRedis } from '../../../test/helpers/redis-server.js'

async function refused (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' })
    socket.once('connect', () => { socket.destroy(); resolve(false) })
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'))
  })
}

// First in the file: the helper remembers a successful check for the rest of the process.
t.test('without redis-server on PATH, startRedis fails saying what is missing and how to install it', async (t) => {
  const empty = mkdtempSync(join(tmpdir(), 'no-redis-'))
  const path = process.env.PATH
  process.env.PATH = empty
  t.teardown(() => {
    process.env.PATH = path
    rmSync(empty, { recursive: true, force: true })
  })
  await t.rejects(startRedis(), /redis-server was not found on PATH.*apt-get install redis-server/s)
})

t.test('stop() kills the server, restart() brings an empty one back on the same port', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.close())
  t.equal(redis.url, `redis://127.0.0.1:${redis.port}`)
  const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  await client.connect()
  await client.set('k', 'v')
  client.disconnect()

  await redis.stop()
  t.ok(await refused(redis.port), 'nothing listens any more')
  await redis.restart()
  const again = new Redis(redis.url, { lazyConnect: true })
  t.teardown(() => again.disconnect())
  await again.connect()
  t.equal(await again.get('k'), null, 'no persistence: a fresh, empty server')
  await redis.close()
  await redis.close()
  t.ok(await refused(redis.port), 'closed for good (twice is harmless)')
})
