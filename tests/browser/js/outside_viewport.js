() => {
  /* Every visible element's box, clipped by its clipping ancestors, against the viewport;
   and whether the document scrolls. */
  const W = window.innerWidth, H = window.innerHeight, bad = [];
  for (const el of document.body.querySelectorAll("*")) {
    // plotly measures text in an invisible SVG parked at -10000 px
    if (el.closest("#js-plotly-tester")) continue;
    const style = getComputedStyle(el);
    if (style.display === "none" || style.visibility === "hidden") continue;
    let r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    let left = r.left, top = r.top, right = r.right, bottom = r.bottom, hidden = false;
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      const s = getComputedStyle(a);
      if (s.display === "none" || s.visibility === "hidden" || s.opacity === "0") { hidden = true; break; }
      if (s.overflow !== "visible" || s.overflowX !== "visible" || s.overflowY !== "visible") {
        const c = a.getBoundingClientRect();
        left = Math.max(left, c.left); top = Math.max(top, c.top);
        right = Math.min(right, c.right); bottom = Math.min(bottom, c.bottom);
      }
    }
    if (hidden || right - left <= 0 || bottom - top <= 0) continue;
    if (left < -1 || top < -1 || right > W + 1 || bottom > H + 1) {
      bad.push(`${el.tagName}.${String(el.className).slice(0, 60)} ${[left, top, right, bottom].map(Math.round)}`);
    }
  }
  const doc = document.scrollingElement;
  return {bad: bad.slice(0, 20), count: bad.length,
          scroll: [doc.scrollWidth, doc.clientWidth, doc.scrollHeight, doc.clientHeight]};
}
