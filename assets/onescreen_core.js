/* The inset of the 中心城区 (components/core_inset.py), and maps that keep their framing when
   their box changes size (a wall's canvas grows to its screen after the maps were fitted; a
   window is resized; the inset appears or goes).

   Every Leaflet map made on the page is seen here (an init hook): the bounds it was last fitted
   to are kept, and fitted again when its container changes size. A city map with an inset
   leaves room for it on the side where the city loses least. */
(function () {
  if (!window.L || !window.L.Map) {
    return;
  }
  const GAP = 16;
  const maps = [];

  function insetOf(map) {
    const container = map.getContainer();
    if (container.classList.contains("os-core-map")) {
      return null;  // the inset itself
    }
    const wrap = container.closest(".os-map-wrap");
    const inset = wrap && wrap.querySelector(":scope > .os-core-inset");
    return inset && !inset.classList.contains("os-core-inset-off") ? inset : null;
  }

  /* Padding that keeps the city clear of the inset: beside it on a wide map, above it on a
     tall one (the inset's place follows, by a class of the map's box). Where the whole inset's
     room would cost the city zoom, the inset may cover part of the sea east of the city. */
  function room(map, bounds, options) {
    const inset = insetOf(map);
    map._osInset = !!inset;
    if (!inset) {
      return options;
    }
    const size = map.getSize();
    const below = size.x < size.y * 1.15;
    inset.parentNode.classList.toggle("os-core-below", below);
    const pad = L.point((options && options.padding) || [0, 0]);
    const box = L.latLngBounds(bounds);
    const space = function (share) {
      return below
        ? L.point(pad.x, pad.y + share * (inset.offsetHeight + GAP))
        : L.point(pad.x + share * (inset.offsetWidth + GAP), pad.y);
    };
    inset.style.width = "";
    const free = map.getBoundsZoom(box, false, pad.multiplyBy(2));
    // a wall's column (inset and legend) is never covered by the city: it keeps its whole room
    const share = !below && stackable(map) ? 1 : [1, 0.75, 0.5].find(function (s) {
      return map.getBoundsZoom(box, false, pad.add(space(s))) >= free - 0.3;
    }) || 0.5;
    let corner = space(share);
    if (!below) {
      // the inset takes whatever width the city leaves (the city then keeps to the left)
      const zoom = map.getBoundsZoom(box, false, pad.add(corner));
      const city = map.project(box.getNorthEast(), zoom).x - map.project(box.getSouthWest(), zoom).x;
      const spare = size.x - 2 * pad.x - city - GAP;
      if (spare > inset.offsetWidth) {
        inset.style.width = Math.min(spare, size.x * 0.62) + "px";
        corner = L.point(pad.x + spare + GAP - 1, pad.y);
      }
    }
    return Object.assign({}, options, {paddingTopLeft: pad, paddingBottomRight: corner});
  }

  /* The inset narrowed to end left of the city's east edge, should the city reach under it. */
  function clear(map, bounds) {
    const inset = insetOf(map);
    if (!inset || inset.parentNode.classList.contains("os-core-below")) { return; }
    // the drawn areas' east edge (the box of the bounds reaches over the sea)
    const box = map.getContainer().getBoundingClientRect();
    const scale = box.width / (map.getContainer().offsetWidth || box.width);
    let east = -Infinity;
    map.getContainer().querySelectorAll("path.os-area").forEach(function (path) {
      east = Math.max(east, (path.getBoundingClientRect().right - box.left) / scale);
    });
    if (east === -Infinity) {
      east = map.latLngToContainerPoint(L.latLngBounds(bounds).getNorthEast()).x;
    }
    const room = map.getSize().x - east - GAP;
    if (room < inset.offsetWidth) {
      inset.style.width = Math.max(room, 0) + "px";
    }
    stack(map);
  }

  /* On a wall or a kiosk, the legend stands under the inset in one column beside the city:
     the inset takes the column's height the legend leaves, the legend the inset's width, clear
     of the scale and attribution (a kiosk's legend at the map's foot covered the city's west). */
  function stackable(map) {
    return !!map.getContainer().closest(".os-wall");
  }

  function stack(map) {
    const inset = insetOf(map);
    if (!inset || !stackable(map)) { return; }
    const wrap = inset.parentNode;
    const legend = wrap.querySelector(":scope > .os-legend");
    const column = !wrap.classList.contains("os-core-below") && !!legend;
    wrap.classList.toggle("os-core-stacked", column);
    if (!column) {
      inset.style.height = "";
      if (legend) { legend.style.width = ""; legend.style.bottom = ""; }
      return;
    }
    const controls = map.getContainer().querySelector(".leaflet-bottom.leaflet-right");
    const foot = (controls ? controls.offsetHeight : 0) + 8;
    legend.style.width = inset.offsetWidth + "px";
    legend.style.bottom = foot + "px";
    const free = map.getSize().y - inset.offsetTop - foot - legend.offsetHeight - GAP;
    inset.style.height = Math.max(free, 120) + "px";
    later(map);
  }

  /* Labels of one map set apart (Leaflet positions a marker by a transform, so by margins):
     each, top to bottom, takes the nearest free spot around its place that stays inside its
     map and off what covers the map (the inset, a wall's legend), else the one that hides
     the least. */
  function obstacles(map) {
    const container = map.getContainer();
    if (container.classList.contains("os-core-map")) { return []; }
    const wrap = container.closest(".os-map-wrap");
    const inset = insetOf(map);
    const legend = wrap && wrap.querySelector(":scope > .os-legend");
    return [inset, legend].filter(function (el) {
      return el && el.offsetWidth && el.offsetHeight;
    }).map(function (el) { return el.getBoundingClientRect(); });
  }

  function overlap(a, b) {
    const w = Math.min(a.right, b.right + 2) - Math.max(a.left, b.left - 2);
    const h = Math.min(a.bottom, b.bottom + 1) - Math.max(a.top, b.top - 1);
    return w > 0 && h > 0 ? w * h : 0;
  }

  function cost(r, bounds, taken) {
    let hidden = taken.reduce(function (sum, q) { return sum + overlap(r, q); }, 0);
    const outside = Math.max(0, bounds.left - r.left) + Math.max(0, r.right - bounds.right) +
      Math.max(0, bounds.top - r.top) + Math.max(0, r.bottom - bounds.bottom);
    hidden += outside * (r.bottom - r.top + r.right - r.left);
    return hidden;
  }

  function moves(width, height) {
    const steps = [];
    // no further than a label and a half: a name far from its area would mislead
    for (let dy = -6; dy <= 6; dy += 1) {
      for (let dx = -3; dx <= 3; dx += 1) {
        steps.push([dx * width / 4, dy * height / 4]);
      }
    }
    return steps.sort(function (a, b) { return Math.hypot(a[0], a[1] * 1.3) - Math.hypot(b[0], b[1] * 1.3); });
  }

  function declutter(map) {
    const container = map.getContainer();
    const labels = Array.prototype.slice.call(container.querySelectorAll(".os-map-label"));
    labels.forEach(function (el) { el.style.marginTop = "0px"; el.style.marginLeft = "0px"; });
    const bounds = container.getBoundingClientRect();
    const taken = obstacles(map);
    // every size read before any margin is written: a read after a write forces a layout per label
    labels.map(function (el) { return [el, el.getBoundingClientRect(), el.offsetWidth]; })
      .sort(function (a, b) { return a[1].top - b[1].top; })
      .forEach(function (read) {
        const el = read[0];
        const r = read[1];
        if (!r.width) { return; }
        const scale = r.width / (read[2] || r.width);
        let best = null;
        moves(r.width, r.height).some(function (step) {
          const box = {left: r.left + step[0], right: r.right + step[0],
                       top: r.top + step[1], bottom: r.bottom + step[1]};
          const c = cost(box, bounds, taken);
          if (!best || c < best.c) { best = {c: c, box: box, step: step}; }
          return c === 0;
        });
        el.style.marginLeft = (best.step[0] / scale) + "px";
        el.style.marginTop = (best.step[1] / scale) + "px";
        taken.push(best.box);
      });
  }

  function later(map) {
    if (map._osDeclutter) { return; }
    map._osDeclutter = window.requestAnimationFrame(function () {
      map._osDeclutter = null;
      declutter(map);
    });
  }

  function refit(map) {
    if (!map._osFit || !map.getContainer().isConnected) {
      return;
    }
    if (!map._loaded) {
      // a map never shown (an inset in a hidden slot) keeps the size it had then, 0 × 0:
      // Leaflet's invalidateSize skips a map without a view, so its size is read afresh here
      map._sizeChanged = true;
    }
    map.invalidateSize({pan: false});
    if (!map.getSize().x || !map.getSize().y) {
      return;
    }
    map.fitBounds(map._osFit[0], map._osFit[1]);
  }

  // a map removed while its zoom animates (a page left in the middle of its first fit) still
  // gets the animation's end a moment later, and Leaflet then reads the pane it has deleted
  // (and any other late step that asks where the deleted pane was)
  const zoomEnd = L.Map.prototype._onZoomTransitionEnd;
  L.Map.prototype._onZoomTransitionEnd = function () {
    if (!this._mapPane) { return; }
    return zoomEnd.apply(this, arguments);
  };
  const panePos = L.Map.prototype._getMapPanePos;
  L.Map.prototype._getMapPanePos = function () {
    return this._mapPane ? panePos.apply(this, arguments) : L.point(0, 0);
  };

  L.Map.addInitHook(function () {
    const map = this;
    const fit = map.fitBounds;
    // walls, kiosks and insets keep their framing; a page's map once its user moved it does not
    let moved = false;
    map.fitBounds = function (bounds, options) {
      // a layer redrawn with new colours fits its map again (dash-leaflet's zoomToBounds re-adds
      // the data on a hideout change): a map its user moved ignores a fit to the same bounds,
      // while a new framing (an incident's, another district's) still applies
      const same = map._osFit && L.latLngBounds(bounds).equals(L.latLngBounds(map._osFit[0]), 1e-9);
      if (moved && same) {
        return map;
      }
      map._osFit = [bounds, options];
      // a hidden slot's map has no size: fitting it gives NaN centres; it refits when shown
      const size = map.getSize();
      if (!size.x || !size.y) {
        return map;
      }
      const result = fit.call(map, bounds, room(map, bounds, options));
      // wherever the city came to lie, the inset keeps clear of it
      clear(map, bounds);
      map.once("moveend", function () { clear(map, bounds); });
      return result;
    };
    maps.push(map);
    map.on("zoomend moveend resize", function () { later(map); });
    // a wall's legend that changes size (its classes arrive, its language changes) restacks
    const wrap = map.getContainer().closest(".os-map-wrap");
    const legend = wrap && wrap.querySelector(":scope > .os-legend");
    if (legend && window.ResizeObserver && !map.getContainer().classList.contains("os-core-map")) {
      new ResizeObserver(function () { stack(map); }).observe(legend);
    }
    map.on("unload", function () {
      maps.splice(maps.indexOf(map), 1);
    });
    map.on("dragstart", function () { moved = true; });
    map.getContainer().addEventListener("wheel", function () { moved = true; }, {passive: true});
    if (window.ResizeObserver) {
      let last = "";
      new ResizeObserver(function () {
        const box = map.getContainer();
        const size = box.offsetWidth + "x" + box.offsetHeight;
        if (size === last || !box.offsetWidth) {
          return;
        }
        last = size;
        const keeps = box.closest(".os-wall") || box.classList.contains("os-core-map") || !moved;
        if (keeps) { refit(map); } else { map.invalidateSize(); }
      }).observe(map.getContainer());
    }
  });

  // a label (re)drawn: its map's labels are set apart again
  L.Marker.addInitHook(function () {
    const icon = this.options.icon;
    if (icon && /os-map-label/.test(icon.options.className || "")) {
      this.on("add", function (event) { later(event.target._map); });
    }
  });

  /* City maps whose inset appeared or went since they were fitted: fitted again. */
  function refitChanged() {
    maps.forEach(function (map) {
      if (map._osFit && !!insetOf(map) !== !!map._osInset) {
        refit(map);
      }
    });
  }

  window.onescreen = Object.assign({}, window.onescreen, {
    core: {
      maps: maps,
      refit: refit,
      declutter: declutter,
      coreStyle: function (feature, context) {
        // the city map's style (colours from the same hideout), with a class of the inset's
        // own; the districts around the core stay as faint context
        const style = window.onescreen.map.areaStyle(feature, context);
        const h = (context && context.hideout) || {};
        const code = feature.properties.code;
        style.className = "os-core-area os-core-area-" + code;
        if ((h.core || []).indexOf(code) < 0) {
          style.fillOpacity = 0.25;
          style.opacity = 0.35;
        }
        return style;
      },
      coreOnly: function (feature) { return !!feature.properties.core; },
      outerOnly: function (feature) { return !feature.properties.core; },
    },
  });

  window.dash_clientside = window.dash_clientside || {};
  window.dash_clientside.onescreen_core = {
    hideout: function (hideout, current) {
      return Object.assign({}, hideout, {core: (current || {}).core || []});
    },
    labels: function (labels) {
      const features = (labels && labels.features) || [];
      const shown = features.some(function (f) { return f.properties && f.properties.core; });
      // once the class is applied, the city map makes room for the inset (or takes it back)
      window.setTimeout(refitChanged, 60);
      return [labels, "os-core-inset" + (shown ? "" : " os-core-inset-off")];
    },
  };
})();
