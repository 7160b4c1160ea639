// bench/http_client.js — the HTTP side of bench/http.sh: CLIENTS concurrent
// clients, each on its own keep-alive connection, send one-record SOAP
// Ingest calls to campaign's HTTP endpoint for SECONDS seconds, one at a
// time each (a request is sent when the previous answer arrived), as
// pgbench's clients do.
//
//   node http_client.js <url> <session token> <clients> <seconds>
//
// Prints "requests N failed N seconds S tps T".  A response that is not
// 200 with a UUID in pstrSUuids counts as failed (and the first is shown).
'use strict';

const http = require('http');

const [url, token, clients, seconds] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(clients) });
const target = new URL(url);

function envelope() {
  const id = 1 + Math.floor(Math.random() * 2000000000);
  const score = Math.floor(Math.random() * 1000001);
  return '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:xtk:session">'
    + `<soapenv:Body><urn:Ingest><urn:sessiontoken>${token}</urn:sessiontoken><urn:domDoc>`
    + `<sampleTableStg id="${id}" testcol1="value-${id} lorem ipsum" testcol2="second column ${score} with some text"`
    + ` score="${score}" xtkschema="dem:sampleTableStg"/></urn:domDoc></urn:Ingest></soapenv:Body></soapenv:Envelope>`;
}

function call() {
  return new Promise((resolve) => {
    const body = envelope();
    const req = http.request({
      host: target.hostname, port: target.port, path: target.pathname, method: 'POST', agent,
      headers: { 'Content-Type': 'text/xml; charset=utf-8', 'Content-Length': Buffer.byteLength(body) },
    }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { data += chunk; });
      res.on('end', () => resolve(res.statusCode === 200 && /<pstrSUuids[^>]*>[0-9a-f-]{36}</.test(data) ? null : `${res.statusCode} ${data}`));
    });
    req.on('error', (err) => resolve(String(err)));
    req.end(body);
  });
}

async function main() {
  const deadline = Date.now() + Number(seconds) * 1000;
  let requests = 0;
  let failed = 0;
  let firstFailure = null;
  const start = Date.now();
  async function client() {
    while (Date.now() < deadline) {
      const failure = await call();
      requests++;
      if (failure) {
        failed++;
        if (!firstFailure) firstFailure = failure;
      }
    }
  }
  await Promise.all(Array.from({ length: Number(clients) }, client));
  const elapsed = (Date.now() - start) / 1000;
  if (firstFailure) console.error(`first failure: ${firstFailure}`);
  console.log(`requests ${requests} failed ${failed} seconds ${elapsed.toFixed(2)} tps ${((requests - failed) / elapsed).toFixed(1)}`);
  agent.destroy();
}

main();
