/**
 * The `faultline` command: serve | validate | flags | report | help.
 * Exit codes: 0 ok, 1 invalid config or runtime failure, 2 usage error.
 */
import { readFileSync } from 'node:fs'
import type { Readable } from 'node:stream'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { flagList, type FlagDefinition } from '@faultline/core'
import { ConfigError } from './config/config-error.js'
import { InputError } from './report/read-input.js'
import { parseReportOptions, ReportUsageError } from './report/report-options.js'
import { runReport } from './report/run-report.js'
import { tuneGatewayRuntime } from './runtime.js'

export interface CliIo {
  stdout?: { write: (text: string) => unknown }
  stderr?: { write: (text: string) => unknown }
  /** Environment for `${NAME}` in the config. Default `process.env`. */
  env?: NodeJS.ProcessEnv
  /** What `report` reads for `-` or when given no file. Default `process.stdin`. */
  stdin?: Readable
}

/** The io with defaults, except stdin: only `report` touches it (process.stdin is created on first use). */
type FullIo = Required<Omit<CliIo, 'stdin'>> & Pick<CliIo, 'stdin'>

const EXIT_OK = 0
const EXIT_FAILURE = 1
const EXIT_USAGE = 2

const USAGE = `Usage: faultline <command> [options]

Commands:
  serve --config FILE      run the gateway; access lines go to the configured destination
                           (stdout by default), the listening address to stderr;
                           SIGTERM/SIGINT drain in-flight requests and exit 0
  validate --config FILE   check a config file; prints "ok: N APIs", or every problem and exits 1
  flags [--json]           print the response-flag catalogue (--json: as a JSON array)
  report [FILE...]         summarise access logs (NDJSON, .gz too; none or "-": stdin):
                           totals, who to page, top flags with their first check, targets,
                           latency, the error timeline; "faultline report --help" for options
  help                     print this help

Options:
  -c, --config FILE        the gateway config (.yaml, .yml or .json)
  -h, --help               print help
  -v, --version            print the version

Exit codes: 0 ok, 1 invalid config or failure, 2 usage error.
`

const REPORT_USAGE = `Usage: faultline report [options] [FILE...]

Reads access-log lines (NDJSON; gzip is detected; no FILE or "-" reads stdin) and prints a summary:
totals and error rate, errors by side (who to page), category and source, the top flags with
their first check, the top error targets, upstream vs gateway latency, the error timeline.
Malformed lines and lines that are not access lines are counted, never fatal.

Options:
  --since TIME             only requests at or after TIME
  --until TIME             only requests before TIME
                           TIME: 2026-11-23, 2026-11-23T10:00 (UTC unless a zone is given),
                           2026-11 (a month), epoch ms, or a duration back from now: 30m, 2h, 7d
  --api NAME               only this API (api_name); repeat for several
  --by DIMENSION           a breakdown table by flag, source (error_source), category, side,
                           api, target, hour or day (instead of the full summary in table/md)
  -f, --format FORMAT      table (default), md, csv (the breakdown; by flag unless --by),
                           json, html (one self-contained file, printable)
  -o, --out FILE           write to FILE (the format follows its extension unless --format)
  --top N                  rows in the flag, target and API tables (default 10)
  -h, --help               print this help

Exit codes: 0 ok, 1 an input is missing or could not be read to the end, 2 usage error.
`

class UsageError extends Error {}

const configOptions = {
  config: { type: 'string', short: 'c' },
  help: { type: 'boolean', short: 'h' }
} as const satisfies ParseArgsConfig['options']

const reportOptions = {
  since: { type: 'string' },
  until: { type: 'string' },
  api: { type: 'string', multiple: true },
  by: { type: 'string' },
  format: { type: 'string', short: 'f' },
  out: { type: 'string', short: 'o' },
  top: { type: 'string' },
  help: { type: 'boolean', short: 'h' }
} as const satisfies ParseArgsConfig['options']

const flagsOptions = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' }
} as const satisfies ParseArgsConfig['options']

/** parseArgs, with its errors turned into short usage errors. */
function parse<O extends NonNullable<ParseArgsConfig['options']>> (command: string, args: string[], options: O) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: true })
  } catch (err) {
    const e = err as Error & { code?: string }
    const quoted = /'([^']+)'/.exec(e.message)?.[1]
    if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new UsageError(`${command}: unknown option ${quoted ?? ''}`.trimEnd())
    if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      throw new UsageError(`${command}: ${quoted === undefined ? 'an option' : `option ${quoted.replace(/ <value>$/, '')}`} needs a value`)
    }
    throw new UsageError(`${command}: ${e.message.split('. ')[0]}`)
  }
}

function requireConfig (command: string, args: string[]): string | undefined {
  const { values, positionals } = parse(command, args, configOptions)
  if (values.help === true) return undefined
  if (positionals.length > 0) {
    throw new UsageError(`${command}: unexpected argument "${positionals[0]}"` +
      (values.config === undefined ? ` (did you mean --config ${positionals[0]}?)` : ''))
  }
  if (values.config === undefined || values.config === '') throw new UsageError(`${command}: --config FILE is required`)
  return values.config
}

function readVersion (): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

function statusText (flag: FlagDefinition): string {
  const status = flag.status === null ? "upstream's" : String(flag.status)
  return flag.retryAfter ? `${status} + Retry-After` : status
}

/** The catalogue as a table: one header row per flag, its meaning and first check beneath. */
export function formatFlagTable (list: readonly FlagDefinition[] = flagList): string {
  const rows = list.map((f) => [f.code, statusText(f), f.category, f.sources.join(' / '), f.details])
  const header = ['CODE', 'STATUS', 'CATEGORY', 'SOURCE', 'DETAILS']
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (cells: string[]): string => cells.map((c, i) => i === cells.length - 1 ? c : c.padEnd(widths[i])).join('  ')
  const indent = ' '.repeat(widths[0] + 2)
  let out = line(header) + '\n'
  list.forEach((f, i) => {
    out += '\n' + line(rows[i]) + '\n'
    if (f.alternativeDetails.length > 0) out += `${indent}also:    ${f.alternativeDetails.join(', ')}\n`
    out += `${indent}meaning: ${f.meaning}\n`
    out += `${indent}check:   ${f.check}\n`
  })
  return out
}

// The config loader and the gateway load Fastify, the plugins and Ajv (about a second): imported
// when a command needs them, so that `flags` and `report` start at once.
async function loadConfig (file: string, env: NodeJS.ProcessEnv): ReturnType<typeof import('./config/load-config.js').loadConfig> {
  const { loadConfig } = await import('./config/load-config.js')
  return await loadConfig(file, env)
}

async function runValidate (file: string, io: FullIo): Promise<number> {
  try {
    const config = await loadConfig(file, io.env)
    const n = config.apis.length
    io.stdout.write(`ok: ${n} ${n === 1 ? 'API' : 'APIs'}\n`)
    return EXIT_OK
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr.write(err.message + '\n')
      return EXIT_FAILURE
    }
    throw err
  }
}

async function runServe (file: string, io: FullIo): Promise<number> {
  let config
  try {
    config = await loadConfig(file, io.env)
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr.write(err.message + '\n')
      return EXIT_FAILURE
    }
    throw err
  }
  const { serve } = await import('./serve.js')
  // This process is the gateway: V8 is tuned for it before anything is built (see runtime.ts).
  tuneGatewayRuntime()
  const running = await serve(config, { stderr: io.stderr })
  return await running.closed
}

async function runReportCommand (args: string[], io: FullIo): Promise<number> {
  const { values, positionals } = parse('report', args, reportOptions)
  if (values.help === true) {
    io.stdout.write(REPORT_USAGE)
    return EXIT_OK
  }
  try {
    return await runReport(parseReportOptions(values, positionals), io)
  } catch (err) {
    if (err instanceof ReportUsageError) throw new UsageError(`report: ${err.message}`)
    if (err instanceof InputError) {
      io.stderr.write(`faultline report: ${err.message}\n`)
      return EXIT_FAILURE
    }
    throw err
  }
}

async function run (argv: string[], io: FullIo): Promise<number> {
  const [command, ...rest] = argv
  switch (command) {
    case undefined:
      io.stderr.write(USAGE)
      return EXIT_USAGE
    case 'help':
    case '--help':
    case '-h':
      io.stdout.write(USAGE)
      return EXIT_OK
    case 'version':
    case '--version':
    case '-v':
      io.stdout.write(readVersion() + '\n')
      return EXIT_OK
    case 'validate':
    case 'serve': {
      const file = requireConfig(command, rest)
      if (file === undefined) {
        io.stdout.write(USAGE)
        return EXIT_OK
      }
      return command === 'validate' ? await runValidate(file, io) : await runServe(file, io)
    }
    case 'flags': {
      const { values, positionals } = parse('flags', rest, flagsOptions)
      if (values.help === true) {
        io.stdout.write(USAGE)
        return EXIT_OK
      }
      if (positionals.length > 0) throw new UsageError(`flags: unexpected argument "${positionals[0]}"`)
      io.stdout.write(values.json === true ? JSON.stringify(flagList, null, 2) + '\n' : formatFlagTable())
      return EXIT_OK
    }
    case 'report':
      return await runReportCommand(rest, io)
    default:
      throw new UsageError(command.startsWith('-') ? `unknown option ${command}` : `unknown command "${command}"`)
  }
}

/** Runs the command line; resolves with the exit code. */
export async function main (argv: string[], io: CliIo = {}): Promise<number> {
  const full: FullIo = {
    stdout: io.stdout ?? process.stdout,
    stderr: io.stderr ?? process.stderr,
    env: io.env ?? process.env,
    stdin: io.stdin
  }
  try {
    return await run(argv, full)
  } catch (err) {
    if (err instanceof UsageError) {
      full.stderr.write(`faultline: ${err.message}\nRun "faultline help" for usage.\n`)
      return EXIT_USAGE
    }
    full.stderr.write(`faultline: ${(err as Error).message ?? String(err)}\n`)
    return EXIT_FAILURE
  }
}
