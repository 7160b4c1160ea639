// sdk_client.js — drives Adobe's official JavaScript SDK (npm
// @adobe/acc-js-sdk), unmodified, against campaign's HTTP endpoint, as a
// Campaign integration would; run by test/t/041_sdk.pl.
//
//   node sdk_client.js <sdk module dir> <endpoint> <login> <password> <tag>
//
// Prints one line per step, "step: value", for the test to check; a step
// that throws prints "step: ERROR <what the SDK reports>" and the script
// goes on, so that every step is reported.
'use strict';

const [sdkDir, endpoint, login, password, tag] = process.argv.slice(2);
const sdk = require(sdkDir);

function report(step, value) {
  console.log(`${step}: ${typeof value === 'string' ? value : JSON.stringify(value)}`);
}

async function step(name, fn) {
  try {
    report(name, await fn());
  } catch (ex) {
    const what = ex && ex.faultString !== undefined
      ? `${ex.statusCode} ${ex.faultCode} | ${ex.faultString} | ${ex.detail}`
      : String(ex);
    report(name, `ERROR ${what.replace(/\n/g, ' / ')}`);
  }
}

async function main() {
  const params = sdk.ConnectionParameters.ofUserAndPassword(endpoint, login, password);
  const client = await sdk.init(params);

  await step('logon', async () => {
    await client.logon();
    return client.isLogged() ? 'logged' : 'not logged';
  });
  await step('server', async () => {
    const app = client.application;
    return `${app.instanceName} ${app.version} build ${app.buildNumber} operator ${app.operator.login}`;
  });
  await step('ingest', async () =>
    client.NLWS.xtkSession.ingest({ xtkschema: 'dem:sampleTableStg', id: `${tag}1`, testcol1: 'from the SDK' }));
  await step('ingest_key', async () =>
    client.NLWS.xtkSession.ingest({ xtkschema: 'dem:sampleTableStg', _key: '@id', id: `${tag}2`, testcol1: 'keyed' }));
  await step('ingestExt', async () =>
    client.NLWS.xtkSession.ingestExt({
      xtkschema: 'dem:sampleTableStg', _key: '@id', _operation: 'update', id: `${tag}2`, testcol1: 'updated',
    }));
  await step('subscribe', async () =>
    client.NLWS.nmsSubscription.subscribe('news', { email: `${tag}@example.com` }, true));
  await step('unsubscribe', async () =>
    client.NLWS.nmsSubscription.unsubscribe('news', { email: `${tag}@example.com` }));
  // A Fault: an attribute the schema does not have.
  await step('fault', async () =>
    client.NLWS.xtkSession.ingest({ xtkschema: 'dem:sampleTableStg', id: `${tag}3`, nosuch: 'x' }));
  await step('logoff', async () => {
    await client.logoff();
    return client.isLogged() ? 'still logged' : 'logged off';
  });
}

main().catch((ex) => {
  console.log(`fatal: ${ex && ex.stack ? ex.stack : ex}`);
  process.exit(1);
});
