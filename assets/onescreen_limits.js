/* Callbacks the server refused for coming too fast: a discreet notice and "no update" for Dash,
   so no panel breaks and nothing reaches the console; the next refresh asks again.
   The page says it handles refusals (X-OneScreen-Refusal: quiet) and is then answered 204 with
   X-OneScreen-Refused (a 429 would be logged by the browser as an error); a plain 429 (from a
   proxy, or without the header) is turned into the same "no update".

   Pacing: when the server says its renewals of answers fall behind (X-OneScreen-Busy: N), the
   page asks on every N-th refresh tick only, until CALM_MS pass without being told so again.
   The other ticks are answered "no update" here (a tick that also carries a change of the
   viewer's is always asked), and the freshness badges show the data's true age meanwhile: a
   fleet of screens eases off an overloaded server instead of piling on, and comes back to its
   full pace by itself. The server sends N only where asking that seldom keeps the badges
   within their stale mark (web/shared_answers.pace_every). */
(function () {
  if (window.onescreenLimits || typeof window.fetch !== "function") { return; }
  const CALLBACK = "/_dash-update-component";
  const FALLBACK = {zh: "请求过于频繁，稍后自动重试", en: "Too many requests — retrying shortly"};
  const REFRESH = "os-refresh";
  const CALM_MS = 30000, MOST_EVERY = 4;
  const original = window.fetch.bind(window);
  let hideTimer = null;
  let pressedAt = -Infinity, every = 1;

  function lang() {
    // the URL says it from the first moment (a refusal can come before the page has drawn)
    if (new URLSearchParams(window.location.search).get("lang") === "en") { return "en"; }
    if (document.querySelector(".os-lang-en")) { return "en"; }
    return (document.documentElement.lang || "").indexOf("en") === 0 ? "en" : "zh";
  }

  function notice(refusal) {
    let box = document.getElementById("os-limit-notice");
    if (!box) {
      box = document.createElement("div");
      box.id = "os-limit-notice";
      box.className = "os-limit-notice";
      box.setAttribute("role", "status");
      box.setAttribute("aria-live", "polite");
      document.body.appendChild(box);
    }
    const texts = (refusal && refusal.message) || FALLBACK;
    box.textContent = texts[lang()] || FALLBACK[lang()];
    box.hidden = false;
    window.onescreenLimits.refused += 1;
    const retry = Math.min(30, Math.max(1, Number(refusal && refusal.retry_after) || 1));
    clearTimeout(hideTimer);
    hideTimer = setTimeout(function () { box.hidden = true; }, (retry + 3) * 1000);
  }

  function isCallback(input) {
    const url = typeof input === "string" ? input : (input && input.url) || String(input || "");
    return url.indexOf(CALLBACK) !== -1;
  }

  function parsed(text) {
    try { return JSON.parse(text); } catch (error) { return null; }
  }

  window.onescreenLimits = {refused: 0, skipped: 0};

  /* The refresh tick that alone triggered a callback, or null. */
  function refreshTick(options) {
    if (typeof options.body !== "string" || options.body.indexOf(REFRESH) === -1) { return null; }
    const body = parsed(options.body);
    const changed = (body && body.changedPropIds) || [];
    if (changed.length !== 1 || changed[0] !== REFRESH + ".n_intervals") { return null; }
    const inputs = [];
    (function collect(items) {
      items.forEach(function (item) { Array.isArray(item) ? collect(item) : inputs.push(item); });
    })([].concat(body.inputs || []));
    const found = inputs.find(function (item) {
      return item && item.id === REFRESH && item.property === "n_intervals";
    });
    return found && typeof found.value === "number" ? found.value : null;
  }

  function paced() { return every > 1 && performance.now() - pressedAt < CALM_MS; }

  function notePace(response) {
    const told = parseInt(response.headers.get("X-OneScreen-Busy") || "", 10);
    if (told >= 2) {
      every = Math.min(told, MOST_EVERY);
      pressedAt = performance.now();
    }
  }

  /* The router's callback (the page's content) runs once per address, never on a refresh: a
     refused one is asked again after the wait the server gave, or the page would stay blank. */
  function isPage(options) {
    return typeof options.body === "string" && options.body.indexOf("_pages_content") !== -1;
  }

  function ask(input, options, tries) {
    return original(input, options).then(function (response) {
      notePace(response);
      const quiet = response.headers.get("X-OneScreen-Refused");
      const refusal = quiet ? Promise.resolve(parsed(quiet))
        : response.status === 429 ? response.clone().text().then(parsed) : null;
      if (!refusal) { return response; }
      return refusal.then(function (body) {
        notice(body);
        if (isPage(options) && tries < 10) {
          const wait = Math.min(30, Math.max(1, Number(body && body.retry_after) || 1)) * 1000;
          return new Promise(function (resolve) { window.setTimeout(resolve, wait); })
            .then(function () { return ask(input, options, tries + 1); });
        }
        // Dash leaves every output as it is; the next refresh asks again
        return quiet ? response : new Response(null, {status: 204, statusText: "No Content"});
      });
    });
  }

  window.fetch = function (input, init) {
    if (!isCallback(input)) { return original(input, init); }
    const options = Object.assign({}, init || {});
    const headers = new Headers(options.headers || {});
    headers.set("X-OneScreen-Refusal", "quiet");
    options.headers = headers;
    let tick = null;
    try { tick = refreshTick(options); } catch (error) { tick = null; }
    if (tick !== null && paced() && tick % every !== 0) {
      window.onescreenLimits.skipped += 1;
      return Promise.resolve(new Response(null, {status: 204, statusText: "No Content"}));
    }
    return ask(input, options, 0);
  };
})();
