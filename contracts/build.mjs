// Compiles every contract in src/ with the pinned solc-js and writes artifacts/<Name>.json
// ({contractName, abi, bytecode}). With --check, fails if the committed artifacts differ
// from what the sources compile to, so artifacts stay reproducible from source.
import fs from "node:fs";
import path from "node:path";
import solc from "solc";

const here = path.dirname(new URL(import.meta.url).pathname);
const srcDir = path.join(here, "src");
const outDir = path.join(here, "artifacts");
const check = process.argv.includes("--check");

const sources = {};
for (const file of fs.readdirSync(srcDir).filter((f) => f.endsWith(".sol")).sort()) {
  sources[file] = { content: fs.readFileSync(path.join(srcDir, file), "utf8") };
}
const input = {
  language: "Solidity",
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "cancun",
    metadata: { bytecodeHash: "none" },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors ?? []).filter((e) => e.severity === "error");
if (errors.length > 0) {
  for (const e of errors) console.error(e.formattedMessage);
  process.exit(1);
}

fs.mkdirSync(outDir, { recursive: true });
let stale = 0;
for (const file of Object.keys(output.contracts).sort()) {
  for (const [name, c] of Object.entries(output.contracts[file]).sort()) {
    const artifact = JSON.stringify(
      { contractName: name, compiler: `solc ${solc.version()}`, abi: c.abi, bytecode: `0x${c.evm.bytecode.object}` },
      null,
      2,
    ) + "\n";
    const target = path.join(outDir, `${name}.json`);
    if (check) {
      const current = fs.existsSync(target) ? fs.readFileSync(target, "utf8") : "";
      if (current !== artifact) {
        console.error(`artifacts/${name}.json is stale: run "npm run build" in contracts/`);
        stale += 1;
      }
    } else {
      fs.writeFileSync(target, artifact);
      console.log(`wrote artifacts/${name}.json`);
    }
  }
}
process.exit(stale > 0 ? 1 : 0);
