import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const demo = fileURLToPath(new URL('../examples/demo/demo.js', import.meta.url))

t.test('the demo tour shows one classified line per failure, then exits cleanly', async (t) => {
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, [demo, '--tour-only'], { timeout: 60000 }, (err, out, errOut) => {
      if (err !== null) reject(new Error(`demo failed: ${err.message}\n${errOut}`))
      else resolve(out)
    })
  })
  const tour = JSON.parse(/^TOUR (.*)$/m.exec(stdout)?.[1] ?? '[]') as Array<[string, number, string | null]>
  t.same(tour.map(([path, status, flag]) => `${path} ${status} ${flag ?? '-'}`), [
    '/ok/hello 200 -',
    '/expired/ 502 TLE',
    '/not-yet-valid/ 502 TLI',
    '/wrong-host/ 502 TLM',
    '/self-signed/ 502 TLN',
    '/no-intermediate/ 502 TLC',
    '/plaintext/ 502 TLP',
    '/wants-client-cert/ 502 TLA',
    '/refused/ 502 UCF',
    '/handshake-hangs/ 504 UCT',
    '/slow/slow 504 URT',
    '/reset/reset 502 URR',
    '/garbage/garbage 502 UPE',
    '/unavailable/status/503 503 URS',
    '/no-such-api 404 NRF',
    '/orders/hello 401 AMF',
    '/orders/hello 401 AKI',
    '/orders/hello 200 -',
    '/orders/hello 200 -',
    '/orders/hello 429 RLT',
    '/orders/hello 429 RLT',
    '/breaker/ 502 UCF',
    '/breaker/ 502 UCF',
    '/breaker/ 502 UCF',
    '/breaker/ 503 CBO'
  ])
  t.match(stdout, /What to check first/)
})
