/**
 * The `faultline` command: serve | validate | flags | report | help.
 * Exit codes: 0 ok, 1 invalid config or runtime failure, 2 usage error.
 */
import { readFileSync } from 'node:fs'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { flagList, type FlagDefinition } from '@faultline/core'
import { ConfigError } from './config/config-error.js'
import { loadConfig } from './config/load-config.js'
import { serve } from './serve.js'

export interface CliIo {
  stdout?: { write: (text: string) => unknown }
  stderr?: { write: (text: string) => unknown }
  /** Environment for `${NAME}` in the config. Default `process.env`. */
  env?: NodeJS.ProcessEnv
}

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
  report FILE...           summarise access logs (not implemented yet)
  help                     print this help

Options:
  -c, --config FILE        the gateway config (.yaml, .yml or .json)
  -h, --help               print help
  -v, --version            print the version

Exit codes: 0 ok, 1 invalid config or failure, 2 usage error.
`

class UsageError extends Error {}

const configOptions = {
  config: { type: 'string', short: 'c' },
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

async function runValidate (file: string, io: Required<CliIo>): Promise<number> {
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

async function runServe (file: string, io: Required<CliIo>): Promise<number> {
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
  const running = await serve(config, { stderr: io.stderr })
  return await running.closed
}

async function run (argv: string[], io: Required<CliIo>): Promise<number> {
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
      io.stderr.write('faultline report: not implemented yet (see issue 8)\n')
      return EXIT_USAGE
    default:
      throw new UsageError(command.startsWith('-') ? `unknown option ${command}` : `unknown command "${command}"`)
  }
}

/** Runs the command line; resolves with the exit code. */
export async function main (argv: string[], io: CliIo = {}): Promise<number> {
  const full: Required<CliIo> = {
    stdout: io.stdout ?? process.stdout,
    stderr: io.stderr ?? process.stderr,
    env: io.env ?? process.env
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
