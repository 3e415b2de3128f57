/* The offline map context (sea, coast, rivers, metro, roads; issue 19 item 5): faint, under the
   data. Served by /geo/context.geojson; components/area_map.py puts the sea in a pane under the
   areas and the rest in one above their fills but below every marker and label. Station dots
   appear from zoom 12 and their names from 13 (a class on the map, set on zoom), so the city view
   stays quiet; the river's name sits on the part of it nearest the middle of the view. */
(function () {
  const NEAR = 12, NAMES = 13;

  function zoomClasses(map) {
    if (map._osContext) {
      return;
    }
    map._osContext = true;
    const apply = function () {
      const z = map.getZoom(), box = map.getContainer().classList;
      box.toggle("os-ctx-near", z >= NEAR);
      box.toggle("os-ctx-names", z >= NAMES);
    };
    map.on("zoomend", apply);
    apply();
  }

  function placeRiverName(layer) {
    const map = layer._map;
    if (!map) {
      return;
    }
    const view = map.getBounds().pad(-0.15), centre = map.getCenter();
    let best = null, bestDistance = Infinity;
    layer.getLatLngs().flat(3).forEach(function (point) {
      const d = view.contains(point) ? centre.distanceTo(point) : Infinity;
      if (d < bestDistance) {
        best = point;
        bestDistance = d;
      }
    });
    if (best) {
      layer.openTooltip(best);
    } else {
      layer.closeTooltip();
    }
  }

  function english(context) {
    return ((context && context.hideout) || {}).lang === "en";
  }

  const STYLES = {
    water: {stroke: false, fillColor: "#2a6fb0", fillOpacity: 0.16},
    coast: {color: "#5b8fc0", weight: 1, opacity: 0.5, fill: false},
    river: {color: "#3d8fe0", weight: 8, opacity: 0.32, lineCap: "round", fill: false},
    road: {color: "#c8d3e3", weight: 1.5, opacity: 0.28, fill: false},
    metro_line: {weight: 2, opacity: 0.4, fill: false},
  };

  window.onescreen = Object.assign({}, window.onescreen, {
    context: {
      isWater: function (feature) {
        return feature.properties.kind === "water";
      },
      notWater: function (feature) {
        return feature.properties.kind !== "water";
      },
      style: function (feature) {
        const p = feature.properties;
        const style = Object.assign({interactive: false}, STYLES[p.kind] || STYLES.road);
        if (p.kind === "metro_line") {
          style.color = p.color || "#8a9bb5";
        }
        style.className = "os-ctx os-ctx-" + p.kind;
        return style;
      },
      station: function (feature, latlng, context) {
        const p = feature.properties;
        const name = (english(context) && p.name_en) || p.name_zh || "";
        const marker = L.marker(latlng, {
          pane: "os-context",
          interactive: false,
          keyboard: false,
          icon: L.divIcon({
            className: "os-ctx-station",
            html: "<span class='os-ctx-station-dot'></span>" +
                  "<span class='os-ctx-station-name'>" + name + "</span>",
            iconSize: null,
          }),
        });
        marker.on("add", function () {
          zoomClasses(marker._map);
        });
        return marker;
      },
      label: function (feature, layer, context) {
        const p = feature.properties;
        if (p.kind !== "river" || !p.name_zh) {
          return;
        }
        const text = (english(context) && p.name_en) || p.name_zh;
        layer.bindTooltip(text, {
          permanent: true,
          direction: "center",
          pane: "os-context",
          className: "os-ctx-river-name",
        });
        const place = function () {
          placeRiverName(layer);
        };
        layer.on("add", function () {
          zoomClasses(layer._map);
          layer._map.on("moveend", place);
          place();
        });
        // a refetched layer is removed and added again: one listener per map at a time
        layer.on("remove", function () {
          layer._map.off("moveend", place);
        });
      },
    },
  });
})();
