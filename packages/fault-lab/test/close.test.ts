import { spawn } from 'node:child_process'
import http from 'node:http'
import tls from 'node:tls'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { startFaultLab } from '@faultline/fault-lab'
import { waitFor } from './fixtures/loopback-clients.js'

/** How many servers, sockets and timers this process holds right now. */
function openHandles (): Record<string, number> {
  const counts: Record<string, number> = { TCPServerWrap: 0, TCPSocketWrap: 0, Timeout: 0 }
  for (const type of process.getActiveResourcesInfo()) {
    if (type in counts) counts[type]++
  }
  return counts
}

t.test('close() releases servers, sockets and timers, even with requests in flight', async (t) => {
  const before = openHandles()
  const lab = await startFaultLab()
  const clientErrors: string[] = []
  const onError = (err: NodeJS.ErrnoException): void => { clientErrors.push(err.code ?? err.message) }

  const slow = http.get(`${lab.urls.ok}/slow?ms=60000`, { agent: false }).on('error', onError)
  const hanging = http.get(lab.urls.hangHeaders, { agent: false }).on('error', onError)
  const handshake = tls.connect({ host: '127.0.0.1', port: Number(new URL(lab.urls.tlsHang).port) }).on('error', onError)
  await waitFor(() => lab.hits.ok === 1 && lab.hits.hangHeaders === 1 && lab.hits.tlsHang === 1, 'requests to arrive')
  t.ok(openHandles().Timeout > before.Timeout, 'the /slow timer is pending')

  const closeStarted = Date.now()
  await lab.close()
  t.ok(Date.now() - closeStarted < 2000, 'close() does not wait for the hanging requests')

  await waitFor(() => slow.destroyed && hanging.destroyed && handshake.destroyed, 'client sockets to be closed by the lab')
  t.equal(clientErrors.length, 3, 'every hanging client saw its connection end')
  await waitFor(() => JSON.stringify(openHandles()) === JSON.stringify(before), 'handles to return to the baseline')
  t.same(openHandles(), before)

  await lab.close()
  t.pass('close() twice is harmless')
})

t.test('a process that started and closed the lab exits by itself', async (t) => {
  const fixture = fileURLToPath(new URL('./fixtures/start-use-close.ts', import.meta.url))
  // process.execArgv carries tap's TypeScript loader, so the child can run the .ts fixture.
  const child = spawn(process.execPath, [...process.execArgv, fixture], { stdio: ['ignore', 'pipe', 'inherit'] })
  let stdout = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  const killer = setTimeout(() => child.kill(), 60_000)
  const exitCode = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  clearTimeout(killer)
  t.equal(stdout, 'closed\n')
  t.equal(exitCode, 0, 'exited on its own (not killed after 60 s)')
})
