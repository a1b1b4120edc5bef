// Pay for one mint with npm x402-fetch (an x402 v1 client) against the local stack.
//
//   PAYMENT_MODE=x402 make dev                 # in another terminal
//   node examples/x402_fetch_mint.mjs [API_URL] [PRIVATE_KEY]
//
// API_URL defaults to .local/stack.json's api_url; PRIVATE_KEY to anvil's account 1, which the
// local stack funds with test USDC. Prints one JSON line: the status, the body and the decoded
// X-PAYMENT-RESPONSE. x402-fetch only signs for networks in its fixed v1 table, which is why the
// local chain runs under Base Sepolia's chain id (84532, "base-sepolia").
import { readFileSync } from "node:fs";
import { createWalletClient, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { baseSepolia } from "viem/chains";
import { decodeXPaymentResponse, wrapFetchWithPayment } from "x402-fetch";

const DEV_PAYER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const stackFile = new URL("../.local/stack.json", import.meta.url);
const apiUrl = process.argv[2] ?? JSON.parse(readFileSync(stackFile, "utf8")).api_url;
const account = privateKeyToAccount(process.argv[3] ?? DEV_PAYER_KEY);
// The wallet only signs (EIP-712); it never sends a transaction, so its transport is never used.
const wallet = createWalletClient({ account, chain: baseSepolia, transport: http() });

const fetchWithPayment = wrapFetchWithPayment(fetch, wallet);
const response = await fetchWithPayment(`${apiUrl}/mint`, {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: "{}",
});
const header = response.headers.get("x-payment-response");
console.log(
  JSON.stringify({
    status: response.status,
    body: await response.json(),
    paymentResponse: header ? decodeXPaymentResponse(header) : null,
  }),
);
process.exit(response.status === 202 ? 0 : 1);
