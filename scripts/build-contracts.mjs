#!/usr/bin/env node
// Compile every contracts/**/*.sol with the npm `solc` package (standard JSON) into
// contracts/artifacts/<ContractName>.json. Output is deterministic so the artifacts can be committed
// and a rebuild on a clean checkout produces no diff.
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const solc = require("solc");

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const CONTRACTS_DIR = path.join(ROOT, "contracts");
const ARTIFACTS_DIR = path.join(CONTRACTS_DIR, "artifacts");
const NODE_MODULES = path.join(ROOT, "node_modules");

// Prague: supported by anvil 1.7.1's default hardfork (Bpo1, post-Osaka) and by current L2s; solc's
// own default (osaka) would tie the bytecode to chains that already activated Osaka for no gain here.
const SETTINGS = {
  evmVersion: "prague",
  optimizer: { enabled: true, runs: 200 },
  metadata: { bytecodeHash: "ipfs" },
};

// The MintToken hot path writes OpenZeppelin's private ERC20 storage directly (see MintToken.sol);
// fail the build if the inherited layout ever moves away from the slots the assembly hard-codes.
// (solc's layout names the most-derived contract, not the declaring one, so match on label + type.)
const EXPECTED_ERC20_SLOTS = {
  _balances: { slot: "0", type: "t_mapping(t_address,t_uint256)" },
  _totalSupply: { slot: "2", type: "t_uint256" },
};
const MINT_TOKEN_SOURCE = "contracts/MintToken.sol";

function findSources(dir) {
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (full !== ARTIFACTS_DIR) out.push(...findSources(full));
    } else if (entry.name.endsWith(".sol")) {
      out.push(full);
    }
  }
  return out;
}

function toSourceName(file) {
  return path.relative(ROOT, file).split(path.sep).join("/");
}

// Resolve `@openzeppelin/...` (and any other package import) from node_modules; project-relative
// names resolve against the repo root.
function findImports(importPath) {
  for (const base of [NODE_MODULES, ROOT]) {
    const candidate = path.join(base, importPath);
    if (candidate.startsWith(base + path.sep) && fs.existsSync(candidate)) {
      return { contents: fs.readFileSync(candidate, "utf8") };
    }
  }
  return { error: `File not found: ${importPath} (run npm ci?)` };
}

function sha256OfSources(names, contents) {
  const hash = createHash("sha256");
  for (const name of [...names].sort()) {
    hash.update(name);
    hash.update("\0");
    hash.update(contents(name));
    hash.update("\0");
  }
  return hash.digest("hex");
}

function main() {
  const files = findSources(CONTRACTS_DIR).sort();
  if (files.length === 0) throw new Error(`no .sol files under ${CONTRACTS_DIR}`);

  const sources = {};
  for (const file of files) sources[toSourceName(file)] = { content: fs.readFileSync(file, "utf8") };

  const input = {
    language: "Solidity",
    sources,
    settings: {
      ...SETTINGS,
      outputSelection: {
        "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "metadata", "storageLayout"] },
      },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));

  const errors = (output.errors ?? []).filter((e) => e.severity === "error");
  for (const e of output.errors ?? []) console.error(e.formattedMessage ?? e.message);
  if (errors.length > 0) process.exit(1);

  // Every source solc saw (ours plus resolved imports), for the per-contract sourceHash.
  const allSources = { ...Object.fromEntries(Object.entries(sources).map(([k, v]) => [k, v.content])) };
  const contentOf = (name) => {
    if (!(name in allSources)) {
      const resolved = findImports(name);
      if (resolved.error) throw new Error(resolved.error);
      allSources[name] = resolved.contents;
    }
    return allSources[name];
  };

  const version = solc.version();
  const artifacts = new Map();
  for (const sourceName of Object.keys(sources).sort()) {
    const contracts = output.contracts?.[sourceName] ?? {};
    for (const contractName of Object.keys(contracts).sort()) {
      const c = contracts[contractName];
      if (!c.evm.bytecode.object) continue; // interfaces and abstract contracts
      if (artifacts.has(contractName)) {
        throw new Error(`duplicate contract name ${contractName} in ${sourceName} and ${artifacts.get(contractName).sourceName}`);
      }
      const metadata = JSON.parse(c.metadata);
      const usedSources = Object.keys(metadata.sources);
      if (usedSources.includes(MINT_TOKEN_SOURCE)) {
        for (const [label, { slot, type }] of Object.entries(EXPECTED_ERC20_SLOTS)) {
          const entries = c.storageLayout.storage.filter((s) => s.label === label);
          const entry = entries[0];
          if (entries.length !== 1 || entry.slot !== slot || entry.offset !== 0 || entry.type !== type) {
            throw new Error(`${contractName}: ERC20.${label} is not at slot ${slot}; update MintToken's assembly`);
          }
        }
      }
      artifacts.set(contractName, {
        contractName,
        sourceName,
        abi: c.abi,
        bytecode: `0x${c.evm.bytecode.object}`,
        deployedBytecode: `0x${c.evm.deployedBytecode.object}`,
        compiler: { version, settings: SETTINGS },
        sourceHash: sha256OfSources(usedSources, contentOf),
      });
    }
  }

  fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
  // Drop artifacts of contracts that no longer exist so the directory mirrors the sources.
  for (const stale of fs.readdirSync(ARTIFACTS_DIR)) {
    if (stale.endsWith(".json") && !artifacts.has(stale.slice(0, -5))) fs.rmSync(path.join(ARTIFACTS_DIR, stale));
  }
  for (const [name, artifact] of artifacts) {
    fs.writeFileSync(path.join(ARTIFACTS_DIR, `${name}.json`), `${JSON.stringify(artifact, null, 2)}\n`);
    console.log(`compiled ${artifact.sourceName}:${name} (${(artifact.deployedBytecode.length - 2) / 2} bytes)`);
  }
}

main();
