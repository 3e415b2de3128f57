(seams) => {
  /* The layout of the display on screen: the city map's and its inset's labels (boxes,
     overlaps, out of their map), what crosses a seam between screens, and how much of each
     panel its content leaves empty. */
  const visible = (el) => {
    for (let a = el; a && a !== document.body; a = a.parentElement) {
      const s = getComputedStyle(a);
      if (s.display === "none" || s.visibility === "hidden" || s.opacity === "0") return false;
    }
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  const box = (r) => ({left: r.left, top: r.top, right: r.right, bottom: r.bottom});
  const meets = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  const inside = (a, b) => a.left >= b.left - 1 && a.right <= b.right + 1 && a.top >= b.top - 1 && a.bottom <= b.bottom + 1;
  const slot = document.querySelector(".os-wall-slot-active");
  const inset = slot.querySelector(".os-core-inset");
  const insetBox = inset && visible(inset) ? box(inset.getBoundingClientRect()) : null;

  const labels = [...slot.querySelectorAll(".os-map-label")].filter(visible).map((el) => {
    const map = el.closest(".leaflet-container");
    const name = el.querySelector(".os-map-label-name");
    const value = el.querySelector(".os-map-label-value");
    return {
      name: name ? name.textContent : "",
      value: value ? value.textContent : "",
      inset: !!el.closest(".os-core-inset"),
      box: box(el.getBoundingClientRect()),
      map: box(map.getBoundingClientRect()),
    };
  });
  const overlaps = [];
  labels.forEach((a, i) => labels.slice(i + 1).forEach((b) => {
    if (meets(a.box, b.box)) overlaps.push(a.name + " × " + b.name);
  }));
  const outside = labels.filter((l) => !inside(l.box, l.map)).map((l) => l.name);
  // a city-map label under the inset is hidden by it
  const covered = insetBox ? labels.filter((l) => !l.inset && meets(l.box, insetBox)).map((l) => l.name) : [];

  // seams: no panel, and no text anywhere (the text itself, not its box), spans one
  const crossing = [];
  const texts = [];
  const walker = document.createTreeWalker(document.querySelector(".os-wall-canvas"), NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (!n.textContent.trim() || !visible(n.parentElement)) continue;
    const range = document.createRange();
    range.selectNodeContents(n);
    texts.push({r: range.getBoundingClientRect(), what: n.parentElement.tagName + " " + n.textContent.slice(0, 30)});
  }
  const frames = [...slot.querySelectorAll(".os-panel")].filter(visible);
  const panels = frames.map((el) => ({
    r: el.getBoundingClientRect(), what: "panel " + el.className.slice(0, 50)}));
  seams.forEach((x) => {
    panels.concat(texts).forEach((item) => {
      if (item.r.width && item.r.left < x - 0.5 && item.r.right > x + 0.5) crossing.push(x + ": " + item.what);
    });
  });

  // each panel's body against the box around what it shows (not its legend or controls)
  const CONTENT = ".os-tile, .os-feed-row, .os-wall-rank-row, .js-plotly-plot, path.os-area, .os-core-inset, .os-empty";
  const empty = {};
  frames.forEach((panel) => {
    const body = panel.querySelector(".os-panel-body").getBoundingClientRect();
    let left = Infinity, top = Infinity, right = -Infinity, bottom = -Infinity;
    panel.querySelectorAll(".os-panel-body " + CONTENT.split(", ").join(", .os-panel-body ")).forEach((el) => {
      if (!visible(el)) return;
      const r = el.getBoundingClientRect();
      left = Math.min(left, Math.max(r.left, body.left));
      top = Math.min(top, Math.max(r.top, body.top));
      right = Math.max(right, Math.min(r.right, body.right));
      bottom = Math.max(bottom, Math.min(r.bottom, body.bottom));
    });
    const area = (body.right - body.left) * (body.bottom - body.top);
    const filled = right > left && bottom > top ? (right - left) * (bottom - top) : 0;
    const key = [...panel.classList].find((c) => c.startsWith("os-wall-area-")) || panel.className;
    empty[key] = Math.round((1 - filled / area) * 1000) / 1000;
  });
  return {labels, overlaps, outside, covered, crossing: crossing.slice(0, 20), empty,
          inset: !!insetBox};
}
