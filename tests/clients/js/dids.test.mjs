// DIDs through viem: create a did:trellis by transaction, read it with eth_call, see the
// controller check refuse a stranger, and resolve it over the Universal Resolver endpoint.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPublicClient, createWalletClient, http } from "viem";
import { privateKeyToAccount, generatePrivateKey } from "viem/accounts";
import { RPC, CHAIN_ID, artifact, chain } from "./env.mjs";

const DIDS = "0x0000000000000000000000000000000000001003";
const member = privateKeyToAccount(process.env.TRELLIS_KEY_VIEM);
const publicClient = createPublicClient({ chain, transport: http(RPC) });
const wallet = createWalletClient({ account: member, chain, transport: http(RPC) });
const dids = { address: DIDS, abi: artifact("ITrellisDids").abi };

const documentWith = (key) => ({
  controller: member.address,
  verificationMethods: [{ id: "key-1", methodType: "Ed25519VerificationKey2020", publicKeyMultibase: key }],
  authentication: ["key-1"],
  assertionMethod: [],
  services: [{ id: "hub", serviceType: "LinkedDomains", endpoint: "https://viem.example" }],
});

test("viem: create, read, refuse a stranger, resolve over HTTP", async () => {
  const key = `z6Mk${Date.now()}`;
  const exists = await publicClient
    .readContract({ ...dids, functionName: "resolve", args: [member.address] })
    .then(() => true, () => false);
  const hash = exists
    ? await wallet.writeContract({ ...dids, functionName: "update", args: [member.address, documentWith(key)] })
    : await wallet.writeContract({ ...dids, functionName: "create", args: [documentWith(key)] });
  const receipt = await publicClient.waitForTransactionReceipt({ hash });
  assert.equal(receipt.status, "success");

  const latest = await publicClient.readContract({ ...dids, functionName: "resolve", args: [member.address] });
  assert.equal(latest.document.verificationMethods[0].publicKeyMultibase, key);
  assert.equal(latest.deactivated, false);

  const stranger = privateKeyToAccount(generatePrivateKey());
  await assert.rejects(
    publicClient.simulateContract({ ...dids, functionName: "deactivate", args: [member.address], account: stranger }),
    (e) => /is not the controller/.test(e.message),
  );

  const did = `did:trellis:${CHAIN_ID}:${member.address.toLowerCase()}`;
  const response = await fetch(`${RPC}/1.0/identifiers/${did}`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type"), /did-resolution/);
  const body = await response.json();
  assert.equal(body.didDocument.id, did);
  assert.equal(body.didDocumentMetadata.versionId, String(latest.version));
  assert.ok(body.didDocument.verificationMethod.some((m) => m.publicKeyMultibase === key));
  const unsupported = await fetch(`${RPC}/1.0/identifiers/did:web:example.com`);
  assert.equal(unsupported.status, 501);
  assert.equal((await unsupported.json()).didResolutionMetadata.error, "methodNotSupported");
});
