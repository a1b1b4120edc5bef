// The mint page's wallet and x402 client, bundled by `make page` (esbuild) into
// functions/status/static/x402-client.js as the global `MintqX402`. Everything x402 here is
// the x402 project's own client (@x402/fetch, @x402/evm); the wallet is the user's EIP-1193
// provider (window.ethereum), reached through viem.
import { ExactEvmScheme } from "@x402/evm/exact/client";
import { wrapFetchWithPayment, x402Client, x402HTTPClient } from "@x402/fetch";
import { createWalletClient, custom, getAddress } from "viem";

const HEX40 = /^0x[0-9a-fA-F]{40}$/;
const ZERO = "0x0000000000000000000000000000000000000000";

// The API's rule (mintq.addresses.parse): 0x and 40 hex digits; a mixed-case address must
// match its EIP-55 checksum; never the zero address. Same messages, field "payer".
export function checkAddress(value) {
  if (!HEX40.test(value)) {
    return { ok: false, message: "payer must be 0x followed by 40 hexadecimal digits" };
  }
  const checksummed = getAddress(value.toLowerCase());
  const body = value.slice(2);
  if (body !== body.toLowerCase() && body !== body.toUpperCase() && value !== checksummed) {
    return { ok: false, message: `payer fails its EIP-55 checksum (expected ${checksummed})` };
  }
  if (checksummed.toLowerCase() === ZERO) {
    return { ok: false, message: "payer must not be the zero address" };
  }
  return { ok: true, address: checksummed };
}

// The 402 challenge decoded by the x402 client (v2 PAYMENT-REQUIRED header, or a v1 body).
export function readChallenge(response, body) {
  return new x402HTTPClient(new x402Client()).getPaymentRequiredResponse(
    (name) => response.headers.get(name),
    body,
  );
}

// The wallet's first account, asking the user to connect if needed.
export async function connectWallet(ethereum) {
  if (!ethereum || typeof ethereum.request !== "function") {
    throw new Error("No browser wallet found (window.ethereum); install or unlock one");
  }
  const accounts = await ethereum.request({ method: "eth_requestAccounts" });
  if (!accounts || accounts.length === 0) {
    throw new Error("The wallet shared no account");
  }
  return getAddress(accounts[0]);
}

// fetch(url, init), paying a 402 with an EIP-3009 authorization the wallet signs
// (eth_signTypedData_v4). `shown` is the PaymentRequirements the page showed the user: the
// client may pay only those terms (same network, asset, payee, at most that amount), so the
// wallet is never asked to sign anything else. `onSign` runs just before the wallet is asked.
export function payingFetch(ethereum, address, shown, onSign) {
  const wallet = createWalletClient({ account: address, transport: custom(ethereum) });
  // @x402/fetch rethrows a signer's failure as a plain Error without its cause; keep the
  // wallet's own error so the page can tell "the user declined" from a fault.
  let walletError = null;
  const signer = {
    address,
    async signTypedData(typedData) {
      if (onSign) onSign(typedData);
      try {
        return await wallet.signTypedData({ account: address, ...typedData });
      } catch (error) {
        walletError = error;
        throw error;
      }
    },
  };
  const amount = String(shown.amount ?? shown.maxAmountRequired);
  const client = new x402Client()
    .register("eip155:*", new ExactEvmScheme(signer))
    .setSpendControls({
      allowedAssets: [{ network: shown.network, asset: shown.asset, maxAmountPerPayment: amount }],
    })
    .registerPolicy((version, accepts) =>
      accepts.filter(
        (r) =>
          r.network === shown.network &&
          r.asset.toLowerCase() === shown.asset.toLowerCase() &&
          r.payTo.toLowerCase() === shown.payTo.toLowerCase(),
      ),
    );
  const paying = wrapFetchWithPayment(fetch, client);
  return async (input, init) => {
    walletError = null;
    try {
      return await paying(input, init);
    } catch (error) {
      throw walletError || error;
    }
  };
}

// True when the wallet (EIP-1193 code 4001, viem's UserRejectedRequestError) declined.
export function isUserRejection(error) {
  for (let e = error; e; e = e.cause) {
    if (e.code === 4001 || e.name === "UserRejectedRequestError") return true;
  }
  return false;
}
