/**
 * HTML built with a tagged template that escapes every interpolated value unless it is already
 * SafeHtml: text from a log can only ever end up as text, never as markup.
 */

export class SafeHtml {
  constructor (readonly html: string) {}
  toString (): string {
    return this.html
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

// Control characters other than tab and newline are not allowed in HTML text.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g

/** Text for an HTML text node or a quoted attribute value. */
export function escapeHtml (text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ESCAPES[ch]).replace(CONTROL, '\ufffd')
}

type Value = SafeHtml | string | number | null | undefined | false | readonly Value[]

function render (value: Value): string {
  if (value === null || value === undefined || value === false) return ''
  if (value instanceof SafeHtml) return value.html
  if (Array.isArray(value)) return value.map(render).join('')
  return escapeHtml(String(value))
}

export function html (strings: TemplateStringsArray, ...values: Value[]): SafeHtml {
  let out = strings[0]
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1]
  return new SafeHtml(out)
}
