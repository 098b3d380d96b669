// Evidence through viem: submit digests by transaction, read records with eth_call, see the
// contract's refusal reasons, and fetch the same record with its proof over REST.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPublicClient, createWalletClient, encodePacked, http, keccak256, sha256, toHex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { RPC, CHAIN_ID, artifact, chain } from "./env.mjs";

const EVIDENCE = "0x0000000000000000000000000000000000001001";
const member = privateKeyToAccount(process.env.TRELLIS_KEY_VIEM);
const publicClient = createPublicClient({ chain, transport: http(RPC) });
const wallet = createWalletClient({ account: member, chain, transport: http(RPC) });
const evidence = { address: EVIDENCE, abi: artifact("ITrellisEvidence").abi };

test("viem: notarize, read back, refuse a duplicate, fetch over REST", async () => {
  const documents = [`delivery note ${Date.now()}`, `carbon report ${Math.random()}`];
  const digests = documents.map((d) => sha256(toHex(d)));
  const before = await publicClient.readContract({ ...evidence, functionName: "count" });
  const hash = await wallet.writeContract({ ...evidence, functionName: "submitDigests", args: [1, digests] });
  const receipt = await publicClient.waitForTransactionReceipt({ hash });
  assert.equal(receipt.status, "success");
  assert.equal(receipt.logs.length, 2);
  assert.equal(await publicClient.readContract({ ...evidence, functionName: "count" }), before + 2n);

  const id = keccak256(encodePacked(["uint8", "bytes32"], [1, digests[0]]));
  assert.equal(await publicClient.readContract({ ...evidence, functionName: "evidenceId", args: [1, digests[0]] }), id);
  const record = await publicClient.readContract({ ...evidence, functionName: "get", args: [id] });
  assert.equal(record.digest, digests[0]);
  assert.equal(record.submitter, member.address);
  assert.equal(record.height, receipt.blockNumber);

  await assert.rejects(
    publicClient.simulateContract({ ...evidence, functionName: "submitDigests", args: [1, [digests[1]]], account: member }),
    (e) => /item 0: digest already notarized/.test(e.message),
  );
  await assert.rejects(
    publicClient.readContract({ ...evidence, functionName: "get", args: [keccak256("0x01")] }),
    (e) => /not found/.test(e.message),
  );

  const response = await fetch(`${RPC}/v1/evidence/sha256/${digests[0]}`);
  assert.equal(response.status, 200);
  const body = await response.json();
  assert.equal(body.record.id, id);
  assert.equal(body.record.submitter.toLowerCase(), member.address.toLowerCase());
  assert.equal(body.proof.address, EVIDENCE);
  assert.ok(body.proof.storageProofs.length >= 4);
  const missing = await fetch(`${RPC}/v1/evidence/${keccak256("0x02")}`);
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).error.code, "notFound");
});

test("viem: a Solidity contract uses evidence and identifiers", async () => {
  const { abi, bytecode } = artifact("CertifiedShipments");
  const deployed = await publicClient.waitForTransactionReceipt({ hash: await wallet.deployContract({ abi, bytecode }) });
  assert.equal(deployed.status, "success");
  const shipments = { address: deployed.contractAddress, abi };

  const unknown = sha256(toHex(`never notarized ${Math.random()}`));
  await assert.rejects(
    publicClient.simulateContract({ ...shipments, functionName: "accept", args: [unknown], account: member }),
    (e) => /certificate of origin is not notarized/.test(e.message),
  );

  const certificate = sha256(toHex(`certificate of origin ${Date.now()} ${Math.random()}`));
  await publicClient.waitForTransactionReceipt({
    hash: await wallet.writeContract({ ...evidence, functionName: "submitDigests", args: [1, [certificate]] }),
  });
  const receipt = await publicClient.waitForTransactionReceipt({
    hash: await wallet.writeContract({ ...shipments, functionName: "accept", args: [certificate] }),
  });
  assert.equal(receipt.status, "success");
  const certificateId = keccak256(encodePacked(["uint8", "bytes32"], [1, certificate]));
  const acceptanceId = await publicClient.readContract({ ...shipments, functionName: "acceptanceOf", args: [certificateId] });
  const acceptance = await publicClient.readContract({ ...evidence, functionName: "get", args: [acceptanceId] });
  // The contract is the submitter; the organisation is that of the transaction's sender.
  assert.equal(acceptance.submitter.toLowerCase(), deployed.contractAddress.toLowerCase());
  assert.equal(acceptance.contentType, "application/x-acceptance");
  const memberRecord = await publicClient.readContract({
    ...evidence,
    functionName: "get",
    args: [certificateId],
  });
  assert.equal(acceptance.org, memberRecord.org);

  // A system contract's revert reason reaches the caller through Solidity.
  await assert.rejects(
    publicClient.readContract({ ...shipments, functionName: "holderOf", args: ["NOPE"] }),
    (e) => /prefix NOPE is not delegated/.test(e.message),
  );
});
