// Times OpenMined's ECDH-PSI (@openmined/psi.js, WebAssembly under Node) on the bench's two generated CSVs:
// party 1 (server) and party 2 (client) each hold the e-mail column of their table; the client learns the
// intersection size only (revealIntersection = false), which is the semi-honest MPC counterpart of
// TwinSeal's MatchCount result. Messages are serialised and parsed again as they would be on the wire.
//
// usage: node psi-bench.js <party1.csv> <party2.csv> [fpr]
// prints one JSON object on stdout: sizes, intersection size, and milliseconds per step.
'use strict'
const fs = require('fs')
const { performance } = require('perf_hooks')
const PSI = require('@openmined/psi.js')

function emails(path) {
  // The generated CSVs are simple (no quoting); the e-mail column is found by name in the header.
  const lines = fs.readFileSync(path, 'utf8').split('\n')
  const col = lines[0].split(',').indexOf('email')
  if (col < 0) throw new Error(`${path}: no email column`)
  const out = []
  for (let i = 1; i < lines.length; i++) {
    if (lines[i].length === 0) continue
    out.push(lines[i].split(',')[col])
  }
  return out
}

;(async () => {
  const [, , p1, p2, fprArg] = process.argv
  if (!p1 || !p2) {
    console.error('usage: node psi-bench.js <party1.csv> <party2.csv> [fpr]')
    process.exit(2)
  }
  const fpr = fprArg ? Number(fprArg) : 1e-6
  const ms = {}
  let t = performance.now()
  const lap = name => {
    const now = performance.now()
    ms[name] = now - t
    t = now
  }

  const serverInputs = emails(p1)
  const clientInputs = emails(p2)
  lap('read')
  const psi = await PSI()
  lap('load_wasm')
  const start = performance.now()
  t = start

  const server = psi.server.createWithNewKey(false)
  const client = psi.client.createWithNewKey(false)
  const setup = server.createSetupMessage(fpr, clientInputs.length, serverInputs, psi.dataStructure.GCS).serializeBinary()
  lap('server_setup')
  const request = client.createRequest(clientInputs).serializeBinary()
  lap('client_request')
  const response = server.processRequest(psi.request.deserializeBinary(request)).serializeBinary()
  lap('server_response')
  const size = client.getIntersectionSize(psi.serverSetup.deserializeBinary(setup), psi.response.deserializeBinary(response))
  lap('client_intersection')
  const total = performance.now() - start
  server.delete()
  client.delete()

  process.stdout.write(JSON.stringify({
    package: '@openmined/psi.js',
    version: require('@openmined/psi.js/package.json').version,
    node: process.version,
    serverElements: serverInputs.length,
    clientElements: clientInputs.length,
    fpr,
    intersectionSize: size,
    bytes: { setup: setup.length, request: request.length, response: response.length },
    milliseconds: ms,
    totalMilliseconds: total,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
  }) + '\n')
})().catch(e => {
  console.error(e && e.stack ? e.stack : String(e))
  process.exit(1)
})
