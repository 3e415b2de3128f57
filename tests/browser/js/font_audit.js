() => {
  /* Text sized for the room: every visible text of a wall (HTML, map labels, plotly's SVG) as
   drawn on screen (computed font-size × the canvas's scale) against `RATIO` of the screen's
   height (its short side on a portrait screen); and the feed: rows fully visible, unresolved
   紧急 pinned first. Returns the offenders' text so a failure says what is too small. */
  const RATIO = 0.022;
  const W = window.innerWidth, H = window.innerHeight;
  const least = RATIO * Math.min(W, H);
  const canvas = document.querySelector(".os-wall-canvas");
  if (!canvas) return {error: "no .os-wall-canvas"};
  const scale = canvas.getBoundingClientRect().width / canvas.offsetWidth;
  const hidden = (el) => {
    for (let a = el; a && a !== document.body; a = a.parentElement) {
      const s = getComputedStyle(a);
      if (s.display === "none" || s.visibility === "hidden" || Number(s.opacity) === 0) return true;
    }
    return false;
  };
  // the part of a box left after every clipping ancestor (overflow other than visible)
  const clipped = (el, r) => {
    let [left, top, right, bottom] = [r.left, r.top, r.right, r.bottom];
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      const s = getComputedStyle(a);
      if (s.overflowX !== "visible" || s.overflowY !== "visible") {
        const c = a.getBoundingClientRect();
        left = Math.max(left, c.left); top = Math.max(top, c.top);
        right = Math.min(right, c.right); bottom = Math.min(bottom, c.bottom);
      }
    }
    left = Math.max(left, 0); top = Math.max(top, 0); right = Math.min(right, W); bottom = Math.min(bottom, H);
    return right - left > 1 && bottom - top > 1;
  };
  const offenders = [];
  let checked = 0, smallest = Infinity;
  const walker = document.createTreeWalker(canvas, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent.trim();
    const el = node.parentElement;
    if (!text || !el || el.closest("#js-plotly-tester, style, script")) continue;
    let r;
    if (el instanceof SVGElement) {
      r = el.getBoundingClientRect();
    } else {
      const range = document.createRange();
      range.selectNodeContents(node);
      r = range.getBoundingClientRect();
    }
    if (r.width < 1 || r.height < 1 || !clipped(el, r) || hidden(el)) continue;
    const px = parseFloat(getComputedStyle(el).fontSize) * scale;
    checked += 1;
    smallest = Math.min(smallest, px);
    if (px < least - 0.05) {
      offenders.push(`${text.slice(0, 24)} [${String(el.getAttribute("class") || el.tagName).slice(0, 40)}] ${px.toFixed(1)}px`);
    }
  }
  // the feed: a row counts when it is whole inside the panel and above the fade at its foot
  const feed = document.querySelector(".os-wall-slot-active .os-wall-feed");
  const rows = feed ? Array.from(feed.querySelectorAll(".os-feed-row")) : [];
  const box = feed ? feed.getBoundingClientRect() : null;
  const whole = rows.filter((row) => {
    const r = row.getBoundingClientRect();
    return r.height > 0 && r.top >= box.top - 1 && r.bottom <= box.bottom + 1 &&
      (r.top + r.bottom) / 2 <= box.top + 0.88 * box.height;
  });
  const pinned = (row) => !!row.querySelector(".os-sev-critical") && !row.classList.contains("os-feed-resolved");
  const firstOther = rows.findIndex((row) => !pinned(row));
  const late = firstOther < 0 ? [] : rows.slice(firstOther).filter(pinned);
  return {
    least: Math.round(least * 10) / 10, scale, checked,
    smallest: Math.round(smallest * 10) / 10, offenders: offenders.slice(0, 40), count: offenders.length,
    feed: {rows: rows.length, visible: whole.length, critical: rows.filter(pinned).length,
           criticalAfterOthers: late.map((row) => row.textContent.slice(0, 40))},
  };
}
