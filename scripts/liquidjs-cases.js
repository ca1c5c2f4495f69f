// Renders Liquid templates with liquidjs configured exactly as Segment's mapping-kit does
// (same limits, same disabled tags and filters) and prints conformance cases in the format of
// tests/conformance/mapping-kit-sample.json.
//
//   npm install liquidjs@10
//   node scripts/liquidjs-cases.js tests/conformance/liquidjs-event.json TEMPLATES.jsonl > cases.json
//
// TEMPLATES.jsonl holds one JSON string (a template) per line.
const { Liquid } = require('liquidjs')
const fs = require('fs')

const engine = new Liquid({ renderLimit: 500, parseLimit: 1000, memoryLimit: 1e8 })
const disabledTags = ['case', 'for', 'include', 'layout', 'render', 'tablerow']
const disabledFilters = ['array_to_sentence_string', 'concat', 'find', 'find_exp', 'find_index',
  'find_index_exp', 'group_by', 'group_by_exp', 'has', 'has_exp', 'map', 'newline_to_br', 'reject',
  'reject_exp', 'reverse', 'sort', 'sort_natural', 'uniq', 'where_exp', 'type']
disabledTags.forEach((tag) => engine.registerTag(tag, { parse () { throw new Error(`tag "${tag}" is disabled`) } }))
disabledFilters.forEach((f) => engine.registerFilter(f, () => { throw new Error(`filter "${f}" is disabled`) }))

function evaluateLiquid (template, event) {
  if (template.length === 0) return ''
  if (template.length > 1000) throw new Error('liquid template values are limited to 1000 characters')
  const res = engine.parseAndRenderSync(template, event)
  return typeof res === 'string' ? res : 'error'
}

const event = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))
const templates = fs.readFileSync(process.argv[3], 'utf8').split('\n').filter((l) => l.length).map((l) => JSON.parse(l))
const cases = templates.map((t) => {
  const c = { directive: '@liquid', mapping: { '@liquid': t } }
  try {
    // A fresh copy each time: liquidjs writes increment/decrement counters into the scope.
    c.expect = evaluateLiquid(t, JSON.parse(JSON.stringify(event)))
  } catch (e) {
    c.expect_error = true
  }
  return c
})
console.log(JSON.stringify(cases, null, 1))
