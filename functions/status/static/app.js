// The mint page. Talks only to its own API (relative URLs, so a stage prefix works):
// GET config.json, POST mint, GET queue/item/{id} every 2 s, GET queue/status every 5 s.
// The wallet and x402 parts are the bundled official client (window.MintqX402).
(() => {
  "use strict";

  const POLL_MS = 2000;
  const MAX_BACKOFF_MS = 30000;
  const STATS_MS = 5000;
  const FINAL = new Set(["completed", "failed"]);
  const LABELS = {
    awaiting_payment: "Awaiting payment settlement",
    pending: "Pending: waiting in line",
    processing: "Processing: in a batch being mined",
    completed: "Completed: minted",
    failed: "Failed",
  };

  const $ = (id) => document.getElementById(id);
  const config = { paymentMode: null, explorerTxUrl: null };
  const tracking = { queueId: null, timer: null, failures: 0, deadline: null };
  let statsTimer = null;
  let statsFailures = 0;

  // --- talking to the API ----------------------------------------------------

  async function call(path, init = {}) {
    const response = await fetch(path, { cache: "no-store", ...init });
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    return { response, body };
  }

  function apiMessage(response, body) {
    if (body && body.error && typeof body.error === "object" && body.error.message) return body.error.message;
    if (body && typeof body.message === "string") return body.message;
    return `The API answered HTTP ${response.status}`;
  }

  function backoff(failures) {
    return Math.min(POLL_MS * 2 ** failures, MAX_BACKOFF_MS);
  }

  // One banner for "the API cannot be reached", cleared as soon as a call succeeds.
  const down = new Set();
  function apiDown(what, delayMs) {
    down.add(what);
    const banner = $("connection");
    banner.textContent = `Cannot reach the mint API (${what}). Retrying in ${Math.round(delayMs / 1000)} s…`;
    banner.hidden = false;
  }
  function apiUp(what) {
    down.delete(what);
    if (down.size === 0) $("connection").hidden = true;
  }

  // --- small DOM helpers -----------------------------------------------------

  function setText(id, text) {
    $(id).textContent = text;
  }

  // A transaction hash, linked to the explorer when one is configured; `short` shows 0x1234…abcd.
  function txNode(hash, short = false) {
    if (!hash) return document.createTextNode("–");
    const shown = short ? `${hash.slice(0, 6)}…${hash.slice(-4)}` : hash;
    const template = config.explorerTxUrl;
    if (!template) {
      const code = document.createElement("code");
      code.textContent = shown;
      code.title = hash;
      return code;
    }
    const link = document.createElement("a");
    link.href = template.replace("{hash}", encodeURIComponent(hash));
    link.textContent = shown;
    link.title = hash;
    link.className = "hash";
    link.rel = "noopener noreferrer";
    link.target = "_blank";
    link.setAttribute("aria-label", `Transaction ${hash} on the explorer (opens in a new tab)`);
    return link;
  }

  function showTx(id, hash) {
    $(id).replaceChildren(txNode(hash));
  }

  function seconds(total) {
    if (total <= 0) return "any moment now";
    if (total < 90) return `about ${total} s`;
    const minutes = Math.floor(total / 60);
    return `about ${minutes} min ${total % 60} s`;
  }

  // --- tracking one request --------------------------------------------------

  function setUrl(queueId) {
    const url = new URL(window.location.href);
    if (queueId) url.searchParams.set("queueId", queueId);
    else url.searchParams.delete("queueId");
    window.history.replaceState(null, "", url);
  }

  function track(queueId, first) {
    stopTracking();
    tracking.queueId = queueId;
    tracking.failures = 0;
    setUrl(queueId);
    $("free-section").hidden = true;
    $("pay-section").hidden = true;
    $("tracker").hidden = false;
    setText("t-id", queueId);
    setText("t-status", "Looking up your request…");
    if (first) render(first);
    $("tracker-title").focus();
    poll();
  }

  function stopTracking() {
    if (tracking.timer) clearTimeout(tracking.timer);
    tracking.timer = null;
  }

  async function poll() {
    const queueId = tracking.queueId;
    if (!queueId) return;
    let next = POLL_MS;
    try {
      const { response, body } = await call(`queue/item/${encodeURIComponent(queueId)}`);
      if (queueId !== tracking.queueId) return;
      if (response.status === 404 || response.status === 400) {
        apiUp("request status");
        finish(`No such request: ${apiMessage(response, body)}`);
        return;
      }
      if (!response.ok || !body) throw new Error(apiMessage(response, body));
      apiUp("request status");
      tracking.failures = 0;
      render(body);
      if (FINAL.has(body.status)) {
        finish(body.status === "completed" ? "Done: your token is minted." : "This request is final.");
        return;
      }
      setText("t-poll", "Checking every 2 s.");
    } catch (error) {
      tracking.failures += 1;
      next = backoff(tracking.failures);
      apiDown("request status", next);
      setText("t-poll", `Last check failed (${error.message || error}); retrying in ${Math.round(next / 1000)} s.`);
    }
    tracking.timer = setTimeout(poll, next);
  }

  function finish(message) {
    stopTracking();
    tracking.deadline = null;
    setText("t-poll", `${message} Polling stopped.`);
    $("t-poll").dataset.final = "true";
  }

  function render(item) {
    const status = item.status || "pending";
    const label = $("t-status");
    label.textContent = LABELS[status] || status;
    label.dataset.status = status;
    const position = item.queue_position ?? item.queuePosition;
    setText("t-position", status === "pending" && position ? String(position) : "–");
    const wait = item.estimatedWaitSeconds;
    if (FINAL.has(status) || typeof wait !== "number") {
      tracking.deadline = null;
      setText("t-eta", FINAL.has(status) ? "–" : "unknown");
    } else {
      tracking.deadline = Date.now() + wait * 1000;
      tick();
    }
    showTx("t-tx", item.mint_tx_hash);
    const paid = item.payment_type === "x402" || item.paymentType === "x402";
    $("t-settlement-label").hidden = !paid;
    $("t-settlement").hidden = !paid;
    if (paid) showTx("t-settlement", item.settlement_tx_hash);
    const failed = status === "failed";
    $("t-reason-label").hidden = !failed;
    $("t-reason").hidden = !failed;
    if (failed) {
      setText("t-reason", item.error_message || `The payment ended as ${item.payment_status || "failed"}.`);
    }
  }

  // The ETA counts down between polls; each poll resets it from the API's estimate.
  function tick() {
    if (tracking.deadline === null) return;
    const left = Math.max(0, Math.ceil((tracking.deadline - Date.now()) / 1000));
    setText("t-eta", seconds(left));
  }

  // --- free mode -------------------------------------------------------------

  function showAddressProblem(message) {
    const input = $("address");
    setText("address-error", message || "");
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  function checkField() {
    const value = $("address").value.trim();
    if (!value) return showAddressProblem("");
    const verdict = window.MintqX402.checkAddress(value);
    showAddressProblem(verdict.ok ? "" : verdict.message);
  }

  async function submitFree(event) {
    event.preventDefault();
    const value = $("address").value.trim();
    if (!value) {
      showAddressProblem("Enter the address that should receive the token.");
      $("address").focus();
      return;
    }
    // The field's check mirrors the API's; the API has the last word, and its message is shown.
    const button = $("submit");
    button.disabled = true;
    button.textContent = "Sending…";
    try {
      const { response, body } = await call("mint", {
        method: "POST",
        headers: { "content-type": "application/json", "Idempotency-Key": crypto.randomUUID() },
        body: JSON.stringify({ payer: value }),
      });
      if (response.status === 202 && body && body.queueId) {
        showAddressProblem("");
        track(body.queueId, { status: "pending", ...body });
      } else {
        showAddressProblem(apiMessage(response, body));
        $("address").focus();
      }
    } catch (error) {
      showAddressProblem(`Cannot reach the mint API: ${error.message || error}. Try again.`);
    } finally {
      button.disabled = false;
      button.textContent = "Mint";
    }
  }

  // --- x402 mode -------------------------------------------------------------

  function formatAmount(amount, assetName) {
    // USDC (and its test twins) has 6 decimals; for other assets show atomic units.
    if (/usd/i.test(assetName || "")) {
      const units = BigInt(amount);
      const whole = units / 1000000n;
      const fraction = (units % 1000000n).toString().padStart(6, "0").replace(/0+$/, "");
      return `${whole}${fraction ? "." + fraction : ""} ${assetName}`;
    }
    return `${amount} atomic units`;
  }

  let terms = null;

  async function loadTerms() {
    // An unpaid POST gets the 402 challenge; it creates nothing.
    const { response, body } = await call("mint", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    if (response.status !== 402) throw new Error(apiMessage(response, body));
    const required = window.MintqX402.readChallenge(response, body);
    const accept = (required.accepts || []).find((a) => a.scheme === "exact") || required.accepts[0];
    const name = (accept.extra && accept.extra.name) || "the asset";
    terms = accept;
    setText("term-price", formatAmount(accept.amount ?? accept.maxAmountRequired, name));
    setText("term-asset", `${name} (${accept.asset})`);
    setText("term-network", accept.network);
    setText("term-payto", accept.payTo);
    $("pay").disabled = false;
  }

  async function loadTermsWithRetry(failures = 0) {
    try {
      await loadTerms();
      apiUp("payment terms");
    } catch (error) {
      const delay = backoff(failures + 1);
      apiDown("payment terms", delay);
      setText("pay-error", `Cannot read the price: ${error.message || error}`);
      setTimeout(() => loadTermsWithRetry(failures + 1), delay);
      return;
    }
    setText("pay-error", "");
  }

  async function payAndMint() {
    const button = $("pay");
    button.disabled = true;
    setText("pay-error", "");
    try {
      setText("pay-progress", "Connecting to your wallet…");
      const address = await window.MintqX402.connectWallet(window.ethereum);
      const paying = window.MintqX402.payingFetch(window.ethereum, address, terms, () => {
        setText("pay-progress", `Sign the payment in your wallet: ${$("term-price").textContent} from ${address}.`);
      });
      setText("pay-progress", "Reading the payment terms…");
      const response = await paying("mint", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      let body = null;
      try {
        body = await response.json();
      } catch (_) {
        body = null;
      }
      if (response.status === 202 && body && body.queueId) {
        setText("pay-progress", "");
        track(body.queueId, { status: "pending", ...body });
        return;
      }
      setText("pay-progress", "");
      setText("pay-error", `The payment was refused: ${apiMessage(response, body)}`);
    } catch (error) {
      setText("pay-progress", "");
      const reason = (error && (error.shortMessage || error.message)) || String(error);
      setText(
        "pay-error",
        window.MintqX402.isUserRejection(error)
          ? `Your wallet declined to sign the payment (${reason}). Nothing was paid and no request was made.`
          : `The payment could not be made: ${reason}`,
      );
    } finally {
      button.disabled = false;
    }
  }

  // --- the queue panel -------------------------------------------------------

  async function refreshStats() {
    let next = STATS_MS;
    try {
      const { response, body } = await call("queue/status");
      if (!response.ok || !body) throw new Error(apiMessage(response, body));
      statsFailures = 0;
      apiUp("queue statistics");
      const stats = body.stats || {};
      setText("q-pending", String(stats.pending_count ?? "–"));
      setText("q-processing", String(stats.processing_count ?? "–"));
      setText("q-completed", String(stats.completed_count ?? "–"));
      setText("q-failed", String(stats.failed_count ?? "–"));
      const rate = body.throughput && body.throughput.mintsPerSecond;
      setText("q-rate", rate ? `${rate.toFixed(2)} mints/s over the last ${body.throughput.windowSeconds} s` : "not measured yet (needs two recent batches)");
      setText("q-eta", typeof body.estimatedWaitSeconds === "number" ? seconds(body.estimatedWaitSeconds) : "–");
      renderBatches(body.recentBatches || []);
      setText("q-updated", `Updated ${new Date().toLocaleTimeString()}.`);
    } catch (error) {
      statsFailures += 1;
      next = backoff(statsFailures);
      apiDown("queue statistics", next);
    }
    statsTimer = setTimeout(refreshStats, next);
  }

  function renderBatches(batches) {
    const body = $("batches");
    if (batches.length === 0) {
      const row = document.createElement("tr");
      const cell = document.createElement("td");
      cell.colSpan = 4;
      cell.className = "muted";
      cell.textContent = "No batches yet.";
      row.append(cell);
      body.replaceChildren(row);
      return;
    }
    body.replaceChildren(
      ...batches.map((batch) => {
        const row = document.createElement("tr");
        const cells = [batch.status, String(batch.mint_count), null, batch.confirmed_at ? new Date(batch.confirmed_at).toLocaleTimeString() : "–"];
        cells.forEach((text, index) => {
          const cell = document.createElement("td");
          if (index === 2) cell.append(txNode(batch.batch_tx_hash, true));
          else cell.textContent = text;
          row.append(cell);
        });
        return row;
      }),
    );
  }

  // --- start -----------------------------------------------------------------

  async function loadConfig(failures = 0) {
    try {
      const { response, body } = await call("config.json");
      if (!response.ok || !body) throw new Error(apiMessage(response, body));
      Object.assign(config, body);
      apiUp("configuration");
      start();
    } catch (error) {
      const delay = backoff(failures + 1);
      apiDown("configuration", delay);
      setText("mode-line", "Waiting for the mint API…");
      setTimeout(() => loadConfig(failures + 1), delay);
    }
  }

  function showForms() {
    const paid = config.paymentMode === "x402";
    $("free-section").hidden = paid;
    $("pay-section").hidden = !paid;
    $("tracker").hidden = true;
  }

  function start() {
    const paid = config.paymentMode === "x402";
    setText("mode-line", paid ? "Each mint is paid with your browser wallet (x402)." : "Minting is free: enter the address that should receive the token.");
    $("free-form").addEventListener("submit", submitFree);
    $("address").addEventListener("blur", checkField);
    $("address").addEventListener("input", () => {
      if ($("address").getAttribute("aria-invalid")) checkField();
    });
    $("pay").addEventListener("click", payAndMint);
    $("new-request").addEventListener("click", () => {
      stopTracking();
      tracking.queueId = null;
      tracking.deadline = null;
      setUrl(null);
      showForms();
      (paid ? $("pay") : $("address")).focus();
    });
    setInterval(tick, 1000);
    const resumed = new URL(window.location.href).searchParams.get("queueId");
    if (paid) loadTermsWithRetry();
    if (resumed) track(resumed, null);
    else showForms();
    refreshStats();
  }

  document.addEventListener("DOMContentLoaded", () => loadConfig());
})();
