// Governance through viem: the system contract answers like any contract (reads, simulated
// writes with revert reasons), and a Solidity contract calls it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPublicClient, createWalletClient, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { RPC, CHAIN_ID, artifact, chain } from "./env.mjs";

const GOVERNANCE = "0x0000000000000000000000000000000000001000";
const member = privateKeyToAccount(process.env.TRELLIS_KEY_VIEM);
const publicClient = createPublicClient({ chain, transport: http(RPC) });
const wallet = createWalletClient({ account: member, chain, transport: http(RPC) });
const governance = { address: GOVERNANCE, abi: artifact("ITrellisGovernance").abi };

test("viem: governance reads and refusals", async () => {
  const count = await publicClient.readContract({ ...governance, functionName: "organizationCount" });
  assert.ok(count >= 1n);
  // Registries page: offset and limit (at most 1,000 per call).
  const orgs = await publicClient.readContract({ ...governance, functionName: "organizationIds", args: [0n, count] });
  assert.equal(BigInt(orgs.length), count);
  await assert.rejects(
    publicClient.readContract({ ...governance, functionName: "organizationIds", args: [0n, 1001n] }),
    (e) => /limit 1001 is above 1000/.test(e.message),
  );
  const org = await publicClient.readContract({
    ...governance,
    functionName: "accountOrganization",
    args: [member.address],
  });
  assert.ok(orgs.includes(org), `${org} is one of ${orgs}`);
  const details = await publicClient.readContract({ ...governance, functionName: "getOrganization", args: [org] });
  assert.equal(details.id, org);
  assert.equal(details.member, true);
  const [numerator, denominator] = await publicClient.readContract({ ...governance, functionName: "threshold" });
  assert.deepEqual([numerator, denominator], [2n, 3n]);
  // An ordinary member account is not an admin: the contract says so.
  await assert.rejects(
    publicClient.simulateContract({
      ...governance,
      functionName: "proposeSetThreshold",
      args: [3n, 4n, 0n],
      account: member,
    }),
    (e) => /is not an admin of any organisation/.test(e.message),
  );
});

test("viem: a Solidity contract reads governance", async () => {
  const { abi, bytecode } = artifact("OrgNotes");
  const hash = await wallet.deployContract({ abi, bytecode });
  const deployed = await publicClient.waitForTransactionReceipt({ hash });
  assert.equal(deployed.status, "success");
  const notes = { address: deployed.contractAddress, abi };
  const count = await publicClient.readContract({ ...governance, functionName: "organizationCount" });
  assert.equal(await publicClient.readContract({ ...notes, functionName: "organizationCount" }), count);
  const receipt = await publicClient.waitForTransactionReceipt({
    hash: await wallet.writeContract({ ...notes, functionName: "note", args: [5n] }),
  });
  assert.equal(receipt.status, "success");
  const org = await publicClient.readContract({ ...governance, functionName: "accountOrganization", args: [member.address] });
  assert.equal(await publicClient.readContract({ ...notes, functionName: "notes", args: [org] }), 5n);
});
