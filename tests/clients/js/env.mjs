// Connection settings handed over by scripts/client-tests.
import fs from "node:fs";

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set; run the suites through scripts/client-tests`);
  return value;
}

export const RPC = required("TRELLIS_RPC");
export const WS = RPC.replace(/^http/, "ws");
export const CHAIN_ID = Number(required("TRELLIS_CHAIN_ID"));
// The chain, for viem clients.
export const chain = {
  id: CHAIN_ID,
  name: "Trellis",
  nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
  rpcUrls: { default: { http: [RPC] } },
};
export const artifact = (name) =>
  JSON.parse(fs.readFileSync(new URL(`../../../contracts/artifacts/${name}.json`, import.meta.url), "utf8"));
export const SINK = "0x000000000000000000000000000000000000dEaD";
export const SUPPLY = 1_000_000n * 10n ** 18n;
