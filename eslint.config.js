import neostandard from 'neostandard'

export default [
  ...neostandard({
    ts: true,
    ignores: ['**/dist/**', '**/node_modules/**', 'coverage/**', '.tap/**', 'bench/results/**']
  }),
  {
    // `${NAME}` in config strings is the environment substitution syntax, not a mistake.
    files: ['packages/gateway/**/*.ts'],
    rules: { 'no-template-curly-in-string': 'off' }
  }
]
