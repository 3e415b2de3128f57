async (png) => {
  /* Green on a wall, two ways. (1) Every visible element's computed colours (text, background,
   borders, SVG fill and stroke) after the grayscale() filters of it and its ancestors, as they
   are painted; (2) when `png` (a data URL of a screenshot) is given, its pixels. Green: a hue of
   75–165°, saturated and bright enough to read as green from across a room. */
  const isGreen = (r, g, b) => {
    const max = Math.max(r, g, b), min = Math.min(r, g, b), d = max - min;
    if (max < 70 || d / max < 0.35 || d < 40) return false;
    let h = max === r ? ((g - b) / d) % 6 : max === g ? (b - r) / d + 2 : (r - g) / d + 4;
    h = (h * 60 + 360) % 360;
    return h >= 75 && h <= 165;
  };
  const parse = (c) => {
    const m = /rgba?\(([^)]+)\)/.exec(c || "");
    if (!m) return null;
    const p = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number);
    return p.length > 3 && p[3] === 0 ? null : p.slice(0, 3);
  };
  // how grey an element is painted: grayscale(a) of itself and its ancestors, compounded
  const greyed = (el) => {
    let keep = 1;
    for (let a = el; a && a.nodeType === 1; a = a.parentElement) {
      const m = /grayscale\(([\d.]+)(%?)\)/.exec(getComputedStyle(a).filter || "");
      if (m) keep *= 1 - Math.min(1, Number(m[1]) / (m[2] ? 100 : 1));
    }
    return keep;
  };
  const paint = (rgb, keep) => {
    const y = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2];
    return rgb.map((v) => y + (v - y) * keep);
  };
  const visible = (el) => {
    const r = el.getBoundingClientRect();
    if (r.width < 1 || r.height < 1 || r.right < 0 || r.bottom < 0 || r.left > innerWidth || r.top > innerHeight) return false;
    for (let a = el; a && a.nodeType === 1; a = a.parentElement) {
      const s = getComputedStyle(a);
      if (s.display === "none" || s.visibility === "hidden" || Number(s.opacity) === 0) return false;
    }
    return true;
  };
  const elements = [];
  const root = document.querySelector(".os-wall-canvas") || document.body;
  for (const el of root.querySelectorAll("*")) {
    if (el.closest("#js-plotly-tester")) continue;
    const s = getComputedStyle(el);
    const own = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
    const colours = [["background", s.backgroundColor], ["fill", s.fill], ["stroke", s.stroke]];
    if (own) colours.push(["color", s.color]);
    if (parseFloat(s.borderLeftWidth) > 0) colours.push(["border", s.borderLeftColor]);
    if (parseFloat(s.borderTopWidth) > 0) colours.push(["border", s.borderTopColor]);
    const found = colours.filter(([prop, c]) => {
      if ((prop === "fill" || prop === "stroke") && !(el instanceof SVGElement)) return false;
      if (prop === "stroke" && s.strokeWidth === "0px") return false;
      const rgb = parse(c);
      return rgb && isGreen(...rgb);
    });
    if (!found.length || !visible(el)) continue;
    const keep = greyed(el);
    for (const [prop, c] of found) {
      if (isGreen(...paint(parse(c), keep))) {
        elements.push(`${el.tagName}.${String(el.getAttribute("class") || "").slice(0, 50)} ${prop} ${c}` +
          (own ? ` "${el.textContent.trim().slice(0, 20)}"` : ""));
      }
    }
  }
  let pixels = null, total = null;
  if (png) {
    const img = new Image();
    await new Promise((done, fail) => { img.onload = done; img.onerror = fail; img.src = png; });
    const c = document.createElement("canvas");
    c.width = img.width; c.height = img.height;
    const ctx = c.getContext("2d");
    ctx.drawImage(img, 0, 0);
    const data = ctx.getImageData(0, 0, c.width, c.height).data;
    pixels = 0; total = c.width * c.height;
    for (let i = 0; i < data.length; i += 4) { if (isGreen(data[i], data[i + 1], data[i + 2])) pixels += 1; }
  }
  return {elements: elements.slice(0, 30), count: elements.length, pixels, total};
}
